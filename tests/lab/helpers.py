"""Driving the lab from tests: run the real `fab` and shell commands on lab hosts over SSH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.lab import lab

REPO = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).parent / "fab")


@dataclass
class LabHost:
    host: lab.Host

    @property
    def address(self) -> str:
        return self.host.address

    def ssh_argv(self, user: str = "root") -> list[str]:
        return [
            "ssh",
            "-i",
            str(lab.key_path()),
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={lab.known_hosts_path()}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"{user}@{self.address}",
        ]

    def sh(
        self, script: str, user: str = "root", check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run a shell script on the lab host (the test's own hands, not the tool's)."""
        return subprocess.run(
            self.ssh_argv(user) + ["bash", "-s"],
            input=script,
            text=True,
            capture_output=True,
            check=check,
            timeout=120,
        )


class Load:
    """A bounded load on loopback: `clients` threads asking `url` until stopped (at most
    `seconds` and `per_client` requests each), counting answers that are not 200."""

    def __init__(self, url: str, clients: int = 4, seconds: float = 60, per_client: int = 20000):
        self.url, self.seconds, self.per_client = url, seconds, per_client
        self.ok = self.failed = 0
        self.stop = threading.Event()
        self.count = threading.Lock()
        self.threads = [threading.Thread(target=self.client) for _ in range(clients)]

    def client(self):
        end = time.monotonic() + self.seconds
        for _ in range(self.per_client):
            if self.stop.is_set() or time.monotonic() > end:
                return
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    good = r.status == 200
            except (urllib.error.URLError, OSError):
                good = False
            with self.count:
                self.ok += good
                self.failed += not good

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)
        self.stop.set()
        for t in self.threads:
            t.join()


def fab_argv(*args: str) -> list[str]:
    """`fab` of this repo with the lab's runtime config (unless the caller brings its own -f),
    so `--target lab` follows CYNOW_LAB_ROOT."""
    own = "-f" in args or not lab.fabric_config_path().exists()
    return [FAB, "-r", str(REPO), *([] if own else ["-f", str(lab.fabric_config_path())]), *args]


def fab(
    *args: str, home: str | Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """The real `fab` of this repo, in a clean HOME (so ~/.ssh is the test's, not root's)."""
    e = dict(os.environ)
    if home is not None:
        e["HOME"] = str(home)
    e.update(env or {})
    e.setdefault("COLUMNS", "120")
    return subprocess.run(
        fab_argv(*args),
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def fab_json(*args: str, **kw) -> tuple[dict, subprocess.CompletedProcess]:
    r = fab(*args, "--json", **kw)
    try:
        return json.loads(r.stdout), r
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}") from None


HARDENED = os.environ.get("CYNOW_LAB_HARDENED") == "1"
# The login the tests' `fab` uses: cynow (the app user, with sudo) or, in hardened mode, admin.
LOGIN = "admin" if HARDENED else "cynow"

# A hardened server: the app user cannot sudo at all (its sudoers file and sudo group gone).
DROP_APP_SUDO = "rm -f /etc/sudoers.d/cynow; gpasswd -d cynow sudo >/dev/null 2>&1 || true"


def drop_app_sudo(host: LabHost) -> None:
    """cynow loses sudo (as root); checked: `sudo -n true` as cynow must fail."""
    host.sh(DROP_APP_SUDO)
    assert host.sh("sudo -n true", user="cynow", check=False).returncode != 0


def lab_args(host: LabHost, user: str | None = None) -> list[str]:
    """-H/-i for a lab host, as a user would type them (the login: LOGIN unless given)."""
    user = user or LOGIN
    return ["-H", f"{user}@{host.address}", "-i", str(lab.key_path())]


def trusting_home(tmp_path: Path) -> Path:
    """A HOME whose ~/.ssh/known_hosts holds the lab's host keys (as after ssh-keyscan)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "known_hosts").write_text(lab.known_hosts_path().read_text())
    return home


APP = "/home/cynow/cynow"

# A typical change with a migration: a `note` field on Order (model and migration files).
NOTE_MODEL = (
    (REPO / "tests/lab/app/orders/models.py")
    .read_text()
    .replace(
        "    created = models.DateTimeField(auto_now_add=True)\n",
        "    created = models.DateTimeField(auto_now_add=True)\n"
        '    note = models.CharField(max_length=200, default="")\n',
    )
)
NOTE_MIGRATION = (
    "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
    '    dependencies = [("orders", "0001_initial")]\n'
    "    operations = [migrations.AddField(model_name='order', name='note', "
    "field=models.CharField(default='', max_length=200))]\n"
)


# The release after it: the note dropped again, a column holding data (a lossy migration).
NOTES_GONE = {
    "orders/models.py": (REPO / "tests/lab/app/orders/models.py").read_text(),
    "orders/migrations/0003_remove_note.py": (
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n"
        '    dependencies = [("orders", "0002_order_note")]\n'
        "    operations = [migrations.RemoveField(model_name='order', name='note')]\n"
    ),
}


def deploy_notes(host: LabHost) -> dict:
    """The note release pushed and deployed with `fab deploy` (which must succeed); its
    document."""
    files = {"orders/models.py": NOTE_MODEL, "orders/migrations/0002_order_note.py": NOTE_MIGRATION}
    push_commit(host, files, "orders: notes")
    doc, r = fab_json(*lab_args(host), "deploy", "--target", "lab")
    assert doc["result"] == "deployed", (doc.get("failed_step"), doc.get("error"), r.stderr)
    return doc


def push_commit(
    host: LabHost, files: dict[str, str | None], message: str, when: str | None = None
) -> str:
    """A developer's commit on origin/main (the lab's bare repo): path -> new text, None deletes.
    Returns the new commit id."""
    import base64

    lines = ["set -e", "tmp=$(mktemp -d)", 'git clone -q /srv/git/cynow.git "$tmp"', 'cd "$tmp"']
    for path, text in files.items():
        if text is None:
            lines.append(f"git rm -q -- '{path}'")
        else:
            blob = base64.b64encode(text.encode()).decode()
            lines.append(f"mkdir -p \"$(dirname '{path}')\" && echo {blob} | base64 -d > '{path}'")
    lines += [
        "git add -A",
        # `when` fixes the dates: the same change on the same parent is then the same commit.
        (f"GIT_AUTHOR_DATE='{when}' GIT_COMMITTER_DATE='{when}' " if when else "")
        + f"git commit -q -m '{message}'",
        "git push -q origin main",
        "git rev-parse HEAD",
        'rm -rf "$tmp"',
    ]
    return host.sh("\n".join(lines), user="cynow").stdout.strip()


def server_pull(host: LabHost) -> None:
    """What someone did by hand on the server: pull, nothing else."""
    host.sh(f"cd {APP} && git pull -q --ff-only origin main", user="cynow")


def restart_gunicorn(host: LabHost, settle: float = 1.5) -> None:
    """`systemctl restart gunicorn` as the guide does; a failing app makes it fail, not hang."""
    host.sh(f"systemctl restart gunicorn.service || true; sleep {settle}")


def wait_for(host: LabHost, shell_condition: str, timeout: float = 30) -> None:
    host.sh(
        f"for i in $(seq 1 {int(timeout * 10)}); do if {shell_condition}; then exit 0; fi; "
        f"sleep 0.1; done; echo 'timed out waiting for: {shell_condition}' >&2; exit 1"
    )


def curl_nginx(host: LabHost, path: str = "/cynow/orders/") -> int:
    """A user's request through nginx (so nginx logs what users saw)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host.address}{path}", timeout=20) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
