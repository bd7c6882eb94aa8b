"""What the steps' tests share: a stand-in for the SSH runner that runs each command with `sh`
here, a temporary git checkout with its origin and developer clone, fakes of systemctl,
journalctl, ss, curl and pip. Fixtures are in conftest.py."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from tasks.runner import Output

GIT_ENV = {
    "GIT_AUTHOR_NAME": "dev",
    "GIT_AUTHOR_EMAIL": "dev@example.invalid",
    "GIT_COMMITTER_NAME": "dev",
    "GIT_COMMITTER_EMAIL": "dev@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


class LocalRemote:
    """Stands in for tasks.runner.Remote: each command runs with `sh` here, as the test's user
    (root= and user= change nothing; a fake `sudo` on PATH runs its command as is), and is
    kept, one entry per round trip. Its stdin is a pipe held open until the command ends, as an
    SSH channel's is (the lock's supervisor stops a step when its input ends)."""

    name = "local"

    def __init__(self, settings):
        self.settings = settings
        self.sent: list[tuple[str, bool, str | None]] = []

    def run(self, command, *, root=False, user=None, timeout=None, stdin=None) -> Output:
        self.sent.append((command, root, user))
        t0 = time.monotonic()
        if stdin is not None:  # sent whole, then its end: as Remote.run does without a password
            r = subprocess.run(
                ["sh", "-c", command], input=stdin, capture_output=True, text=True, timeout=60
            )
            return Output(command, r.stdout, r.stderr, r.returncode, time.monotonic() - t0)
        r_fd, w_fd = os.pipe()
        try:
            r = subprocess.run(
                ["sh", "-c", command], stdin=r_fd, capture_output=True, text=True, timeout=60
            )
        finally:
            os.close(r_fd)
            os.close(w_fd)
        return Output(command, r.stdout, r.stderr, r.returncode, time.monotonic() - t0)


SETTINGS_PY = """SECRET_KEY = "unit"
INSTALLED_APPS = ["django.contrib.contenttypes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB}}
ROOT_URLCONF = "config.urls"
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(clone: Path, files: dict[str, str | None], message: str) -> str:
    """A developer's commit pushed to origin/main; None deletes a file."""
    for name, text in files.items():
        path = clone / name
        if text is None:
            git(clone, "rm", "-q", "--", name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            git(clone, "add", "--", name)
    git(clone, "commit", "-q", "-m", message)
    git(clone, "push", "-q", "origin", "HEAD:main")
    return git(clone, "rev-parse", "HEAD")


def replace_ctx(ctx, **settings):
    ctx.s = replace(ctx.s, **settings)
    return ctx


FAKE_SYSTEMCTL = r"""#!/bin/sh
echo "systemctl $*" >> "$FAKE_DIR/calls"
case "$*" in
  *"-p NeedDaemonReload --value"*) echo "$FAKE_NEED" ;;
  *"-p ActiveState --value"*) echo "$FAKE_ACTIVE" ;;
  *"-p MainPID --value"*) cat "$FAKE_DIR/main" ;;
  *"-p ControlGroup --value"*) echo "$FAKE_CG" ;;
  "show --no-pager"*)
    printf 'ActiveState=%s\nSubState=x\nMainPID=%s\nNeedDaemonReload=%s\n' \
      "$FAKE_ACTIVE" "$(cat "$FAKE_DIR/main")" "$FAKE_NEED" ;;
  kill*) exit "${FAKE_HUP_EXIT:-0}" ;;
  restart*) exit "${FAKE_RESTART_EXIT:-0}" ;;
esac
exit 0
"""
FAKE_JOURNALCTL = r"""#!/bin/sh
echo "journalctl $*" >> "$FAKE_DIR/calls"
case "$*" in
  *--show-cursor*) echo "-- cursor: s=abc;i=1'2" ;;
  *--after-cursor*) cat "$FAKE_DIR/journal" ;;
esac
"""
FAKE_SS = r"""#!/bin/sh
echo 'LISTEN 0 511 127.0.0.1:80 0.0.0.0:* users:(("nginx",pid=9,fd=6))'
"""
FAKE_CURL = r"""#!/bin/sh
echo "curl $*" >> "$FAKE_DIR/calls"
printf '%s 0.010' "$(cat "$FAKE_DIR/code")"
"""


FAKE_PIP = r"""#!/bin/sh
db="$(dirname "$0")/../packages"
touch "$db"
case "$1" in
freeze) sort "$db" ;;
install)
  shift; while [ "$1" != "-r" ]; do shift; done
  while read -r line; do
    [ "$line" = fail ] && exit 1
    name=${line%%==*}; grep -v "^$name==" "$db" > "$db.new"; echo "$line" >> "$db.new"
    mv "$db.new" "$db"
  done < "$2" ;;
uninstall)
  shift
  for a in "$@"; do
    case "$a" in -*) ;; *) grep -iv "^$a==" "$db" > "$db.new"; mv "$db.new" "$db";; esac
  done ;;
esac
"""


def fake_pip(ctx, packages: str) -> Path:
    pip = Path(ctx.s.venv) / "bin" / "pip"
    pip.write_text(FAKE_PIP)
    pip.chmod(0o755)
    (Path(ctx.s.venv) / "packages").write_text(packages)
    return Path(ctx.s.venv) / "packages"
