"""The deploy's steps against this machine: each step's real script, run with `sh` in a temporary
git checkout (with systemctl, journalctl, curl and ss replaced by fakes on PATH), counted in
round trips. What only a booted server shows is in tests/lab/test_deploy.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tasks import deploy, deploy_commands, restart, systemd
from tasks.runner import Output
from tasks.settings import resolve

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

    def run(self, command, *, root=False, user=None, timeout=None) -> Output:
        self.sent.append((command, root, user))
        t0 = time.monotonic()
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


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A checkout of origin/main in a directory whose name needs quoting, a developer's clone,
    a venv whose python is this one, a Django project whose settings are not in git (an
    untracked file outside `git status --untracked-files=no`) with its database migrated, and
    a state directory."""
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    dev = tmp_path / "dev"
    subprocess.run(["git", "clone", "-q", str(origin), str(dev)], check=True)
    git(dev, "checkout", "-q", "-b", "main")
    commit(
        dev,
        {
            "orders/urls.py": "urls\n",
            "requirements.txt": "Django\n",
            "config/__init__.py": "",
            "config/urls.py": "urlpatterns = []\n",
            "config/wsgi.py": "from django.core.wsgi import get_wsgi_application\n\n"
            "application = get_wsgi_application()\n",
        },
        "first",
    )
    app = tmp_path / "the app's dir"
    subprocess.run(["git", "clone", "-q", str(origin), str(app)], check=True)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    # This interpreter, with its packages (Django): a symlink would lose the venv.
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    # The settings stay out of git, as a server's often do: the database is outside the tree.
    db = tmp_path / "db.sqlite3"
    (app / "config" / "settings.py").write_text(f"DB = {str(db)!r}\n" + SETTINGS_PY)
    (app / ".git" / "info" / "exclude").write_text("config/settings.py\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sudo = bin_dir / "sudo"  # sudo -n [-u USER] -- CMD...: CMD as this user
    sudo.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
    sudo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); "
            "from django.core.management import call_command; call_command('migrate', verbosity=0)",
        ],
        cwd=app,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        check=True,
    )
    s = resolve(
        {
            "project_dir": str(app),
            "venv": str(venv),
            "state_dir": str(tmp_path / "state"),
        }
    )
    remote = LocalRemote(s)
    ctx = deploy.Ctx(remote, s, "alice@laptop")
    return ctx, remote, dev, app


def test_preflight_is_one_script_then_the_state_in_the_lock(server):
    ctx, remote, dev, app = server
    deploy.take_lock(ctx)
    remote.sent.clear()
    detail = deploy.preflight(ctx)
    assert ctx.old_commit == git(app, "rev-parse", "HEAD")
    assert detail.startswith(f"at {ctx.old_commit[:12]}")
    # Under the lock every command is a supervised step run by root; the app's script goes
    # through sudo to the app user inside it. Two round trips: the script, the state write.
    assert [root for _, root, _ in remote.sent] == [True, True]
    assert all("setsid -w sh -c" in cmd for cmd, _, _ in remote.sent)
    assert "sudo -n -u cynow" in remote.sent[0][0] and "sudo -n -u" not in remote.sent[1][0]
    state = json.loads((Path(ctx.s.state_dir) / "deploy.lock" / "state").read_text())
    assert state["from"] == ctx.old_commit and state["by"] == "alice@laptop"


def test_preflight_records_the_state_of_a_server_whose_urls_do_not_import(server):
    """The guide's own 502: the URLconf imports a module that is missing. The state comes from
    the migration table all the same (it once came back empty, and a rollback then migrated
    every app to zero)."""
    ctx, remote, dev, app = server
    (app / "config" / "urls.py").write_text("from orders import missing_module  # noqa\n")
    git(app, "commit", "-q", "-am", "urls: import a module that is not there")
    deploy.take_lock(ctx)
    deploy.preflight(ctx)
    assert ctx.migrations_before == {"contenttypes": "0002_remove_content_type_name"}
    assert ctx.applied_before["contenttypes"] == [
        "0001_initial",
        "0002_remove_content_type_name",
    ]


def test_preflight_refuses_when_the_state_cannot_be_read(server):
    ctx, remote, dev, app = server
    (app / "config" / "settings.py").write_text("raise RuntimeError('settings broken')\n")
    deploy.take_lock(ctx)
    with pytest.raises(deploy.Refused, match="cannot read which migrations are applied") as e:
        deploy.preflight(ctx)
    assert "settings broken" in e.value.message
    state = Path(ctx.s.state_dir) / "deploy.lock" / "state"
    assert not state.exists()  # nothing recorded: nothing a rollback could act on


def test_preflight_refuses_uncommitted_changes_before_writing_anything(server):
    ctx, remote, dev, app = server
    (app / "orders" / "urls.py").write_text("edited on the server\n")
    with pytest.raises(deploy.Refused, match="uncommitted changes") as e:
        deploy.preflight(ctx)
    assert "orders/urls.py" in e.value.message
    assert len(remote.sent) == 1


def test_preflight_says_which_command_failed(server):
    ctx, remote, dev, app = server
    subprocess.run(["rm", "-rf", str(app / ".git")], check=True)
    with pytest.raises(deploy.StepFailed, match=r"reading the deployed commit failed \(exit 128\)"):
        deploy.preflight(ctx)


def test_fetch_reads_the_new_commit_its_log_and_files_in_one_script(server):
    ctx, remote, dev, app = server
    deploy.take_lock(ctx)
    deploy.preflight(ctx)
    new = commit(dev, {"requirements.txt": "Django\nMarkdown\n"}, "markdown")
    remote.sent.clear()
    detail = deploy.fetch(ctx)
    assert ctx.new_commit == new
    assert [c.split(" ", 1)[1] for c in ctx.commits] == ["markdown"]
    assert ctx.requirements_changed
    assert detail.startswith("1 new commit(s): ")
    assert [root for _, root, _ in remote.sent] == [True, True]
    assert "sudo -n -u cynow" in remote.sent[0][0]
    state = json.loads((Path(ctx.s.state_dir) / "deploy.lock" / "state").read_text())
    assert state["to"] == new and state["requirements_changed"] is True
    # The checkout itself did not move.
    assert git(app, "rev-parse", "HEAD") == ctx.old_commit


def test_fetch_up_to_date_writes_nothing(server):
    ctx, remote, dev, app = server
    ctx.old_commit = git(app, "rev-parse", "HEAD")
    assert deploy.fetch(ctx) == "already up to date"
    assert len(remote.sent) == 1


def test_fetch_refuses_a_diverged_history(server):
    ctx, remote, dev, app = server
    git(app, "commit", "-q", "--allow-empty", "-m", "hotfix made on the server")
    ctx.old_commit = git(app, "rev-parse", "HEAD")
    commit(dev, {"README": "x\n"}, "docs")
    with pytest.raises(deploy.Refused, match="has diverged from the deployed commit"):
        deploy.fetch(ctx)
    assert len(remote.sent) == 1


def test_fetch_refuses_an_unreachable_origin_and_runs_nothing_after_the_fetch(server):
    ctx, remote, dev, app = server
    ctx.old_commit = git(app, "rev-parse", "HEAD")
    git(app, "remote", "set-url", "origin", str(app.parent / "gone.git"))
    parts = deploy.Parts(
        remote.run(deploy_commands.fetch_script(str(app), "origin", "main", "x" * 40))
    )
    assert parts.get("fetch").exited != 0 and list(parts.parts) == ["fetch"]
    with pytest.raises(deploy.Refused, match="cannot fetch origin main: and the repository exists"):
        deploy.fetch(ctx)


def test_required_files_one_script_for_all_files(server):
    ctx, remote, dev, app = server
    ctx.s = replace(ctx.s, required_files=["orders/urls.py", "docs/a file; $(id).txt", "reqs"])
    ctx.new_commit = commit(dev, {"docs/a file; $(id).txt": "x\n"}, "docs")
    git(app, "fetch", "-q", "origin")
    with pytest.raises(deploy.Refused, match=r"the new commit lacks reqs$"):
        deploy.required_files(ctx)
    assert len(remote.sent) == 1
    ctx.s = replace(ctx.s, required_files=["orders/urls.py", "docs/a file; $(id).txt"])
    assert deploy.required_files(ctx) == "orders/urls.py, docs/a file; $(id).txt"
    ctx.s = replace(ctx.s, required_files=[])
    assert deploy.required_files(ctx) == "none required" and len(remote.sent) == 2


def test_a_file_the_script_did_not_see_counts_as_missing(server):
    ctx, remote, dev, app = server
    ctx.new_commit = git(app, "rev-parse", "HEAD")
    with pytest.raises(deploy.Refused, match="lacks orders/urls.py"):
        deploy.required_files(replace_ctx(ctx, project_dir=str(app.parent / "no such checkout")))

    class CutOff(LocalRemote):  # the output lost on the way
        def run(self, command, **kw):
            return replace(super().run(command, **kw), stdout="")

    ctx.remote = CutOff(ctx.s)
    with pytest.raises(deploy.Refused, match="lacks orders/urls.py"):
        deploy.required_files(ctx)


def replace_ctx(ctx, **settings):
    ctx.s = replace(ctx.s, **settings)
    return ctx


def test_dry_run_plans_in_two_round_trips_and_moves_no_ref(server):
    ctx, remote, dev, app = server
    refs_before = git(app, "for-each-ref")
    commit(
        dev,
        {"orders/migrations/0002_note.py": "x\n", "orders/migrations/__init__.py": ""},
        "orders: notes",
    )
    o = deploy.plan_only(ctx, deploy.Outcome("local", "deployed"), lambda entry: None)
    details = [s["detail"] for s in o.steps]
    assert o.result == "planned" and len(o.commits) == 1
    assert details[0].startswith("1 commit(s) ") and "DIVERGED" not in details[0]
    assert details[2] == "migrations to apply: orders/migrations/0002_note.py"
    assert details[3] == "requirements: unchanged"
    assert len(remote.sent) == 2
    assert git(app, "for-each-ref") == refs_before
    assert not (app / ".git" / "FETCH_HEAD").exists()


def test_the_end_of_a_deploy_records_and_releases_in_one_round_trip(server):
    ctx, remote, dev, app = server
    deploy.take_lock(ctx)
    o = deploy.Outcome("local", "rollback-failed", error='it\'s "bad"; $(id)')
    deploy.record(ctx, o, "2026-11-27T10:00:00+00:00", release=False)
    lock = Path(ctx.s.state_dir) / "deploy.lock"
    assert lock.is_dir()  # kept: `fab rollback` needs its state
    deploy.record(ctx, deploy.Outcome("local", "deployed"), "2026-11-27T10:05:00+00:00", True)
    assert not lock.exists()
    lines = (Path(ctx.s.state_dir) / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["result"] for x in lines] == ["rollback-failed", "deployed"]
    assert json.loads(lines[0])["error"] == o.error
    assert len(remote.sent) == 3


def test_unmigrate_script_stops_at_the_first_failing_app(tmp_path):
    manage = tmp_path / "manage.py"
    manage.write_text(
        "import sys\nopen('calls', 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "sys.exit(1 if sys.argv[2] == 'orders' else 0)\n"
    )
    script = deploy_commands.unmigrate_script(
        str(tmp_path), sys.executable, [("shop", "0003_x"), ("orders", "zero"), ("auth", "zero")]
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    parts = deploy.Parts(Output("", out.stdout, out.stderr, out.returncode, 0))
    assert out.returncode == 1
    assert parts.get("0").ok and parts.get("1").exited == 1 and "2" not in parts.parts
    assert (tmp_path / "calls").read_text().splitlines() == [
        "migrate shop 0003_x --noinput",
        "migrate orders zero --noinput",
    ]
    with pytest.raises(deploy.StepFailed, match=r"did not run"):
        parts.need("2", "manage.py migrate auth zero")


def test_probe_report_is_its_last_line_or_a_failure():
    assert deploy.read_probe('noise\nCYNOW-DEPLOY {"state": {"a": "1"}}\n') == {"state": {"a": "1"}}
    with pytest.raises(deploy.StepFailed, match="printed no report"):
        deploy.read_probe("Traceback (most recent call last):\n")


# -- reload and health, with systemd, curl and ss faked --------------------------------------

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


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """systemctl, journalctl, ss and curl on PATH that answer from files in a directory. The
    unit's control group is a directory here: unit_pids reads /sys/fs/cgroup…$cg/cgroup.procs,
    and enough `..` after /sys/fs/cgroup lead back to the root."""
    d = tmp_path / "fakes"
    (d / "bin").mkdir(parents=True)
    for name, text in [
        ("systemctl", FAKE_SYSTEMCTL),
        ("journalctl", FAKE_JOURNALCTL),
        ("ss", FAKE_SS),
        ("curl", FAKE_CURL),
    ]:
        (d / "bin" / name).write_text(text)
        (d / "bin" / name).chmod(0o755)
    cg = d / "cg"
    cg.mkdir()
    if not Path("/sys/fs/cgroup").is_dir():
        pytest.skip("no /sys/fs/cgroup here: unit_pids cannot be pointed at a test directory")
    monkeypatch.setenv("PATH", f"{d / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DIR", str(d))
    monkeypatch.setenv("FAKE_CG", "/../../../.." + str(cg))
    monkeypatch.setenv("FAKE_ACTIVE", "active")
    monkeypatch.setenv("FAKE_NEED", "no")
    files = {"main": "30\n", "code": "200", "journal": "", "cg/cgroup.procs": "30\n41\n42\n"}
    for name, text in files.items():
        (d / name).write_text(text)

    def set_(name, text):
        (d / name).write_text(text)

    set_.dir = d
    set_.calls = lambda: (d / "calls").read_text().splitlines() if (d / "calls").exists() else []
    return set_


def test_fake_control_group_is_what_unit_pids_reads(fakes):
    out = subprocess.run(["sh", "-c", systemd.unit_pids("gunicorn.service")], capture_output=True)
    assert out.stdout.split() == [b"30", b"41", b"42"]


def test_reload_hups_the_running_master_in_one_round_trip(server, fakes):
    ctx, remote, dev, app = server
    assert deploy.reload(ctx).startswith("HUP to the master (pid 30)")
    assert ctx.reload_workers == [41, 42] and ctx.reload_master == 30
    assert ctx.journal_cursor == "s=abc;i=1'2"
    assert len(remote.sent) == 1 and remote.sent[0][1] is True
    acts = [c for c in fakes.calls() if " show" not in c and "cursor" not in c]
    assert acts == ["systemctl kill --kill-whom=main --signal=HUP gunicorn.service"]


@pytest.mark.parametrize(
    "env, full, first",
    [
        ({"FAKE_NEED": "yes"}, False, ["systemctl daemon-reload"]),
        ({"FAKE_ACTIVE": "failed"}, False, []),
        ({}, True, []),
    ],
)
def test_reload_restarts_when_a_hup_cannot_do(server, fakes, monkeypatch, env, full, first):
    ctx, remote, dev, app = server
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ctx.full_restart = full
    assert deploy.reload(ctx) == "full restart"
    assert ctx.reload_workers == [] and ctx.reload_master == 0 and ctx.journal_cursor
    acts = [c for c in fakes.calls() if " show" not in c and "cursor" not in c]
    assert acts == first + [
        "systemctl reset-failed gunicorn.service",
        "systemctl restart gunicorn.service",
    ]
    assert len(remote.sent) == 1


def test_reload_fails_when_the_signal_does(server, fakes, monkeypatch):
    ctx, remote, dev, app = server
    monkeypatch.setenv("FAKE_HUP_EXIT", "1")
    with pytest.raises(deploy.StepFailed, match=r"reloading gunicorn failed \(exit 1\)"):
        deploy.reload(ctx)


def poll(**kw) -> restart.Poll:
    ok = {"code": 200, "seconds": 0.01, "error": ""}
    replies = {"socket": {"/a": ok}, "nginx": {"/a": ok}}
    return restart.Poll(
        **{"replies": replies, "pids": [30, 50], "main_pid": 30, "tracebacks": 0, **kw}
    )


def test_judge():
    j = restart.judge
    assert j(poll(), ["/a"], [41], 30) == ("ok", "/a 200 in 0.01s")
    assert j(poll(pids=[30, 41]), ["/a"], [41], 30) == (
        "waiting",
        "old workers still running: [41]",
    )
    assert j(poll(tracebacks=2), ["/a"], [41], 30) == (
        "failed",
        "2 traceback(s) in the journal since the reload",
    )
    # Not asked, or a master that was not recorded (full restart): not judged.
    assert j(poll(tracebacks=None, main_pid=None), ["/a"], [], 0)[0] == "ok"
    assert j(poll(main_pid=0), ["/a"], [41], 30)[0] == "failed"
    assert j(poll(main_pid=0), ["/a"], [], 0)[0] == "ok"
    # A URL without an answer is not healthy, through either way.
    state, detail = j(poll(), ["/a", "/b"], [], 0)
    assert state == "waiting" and detail == "socket /b: no answer; nginx /b: no answer"
    err = {"code": 500, "seconds": 0.01, "error": ""}
    bad = poll(replies={"socket": {"/a": err}, "nginx": {"/a": err}})
    assert j(bad, ["/a"], [], 0) == ("waiting", "socket /a: 500 in 0.01s; nginx /a: 500 in 0.01s")
    assert restart.app_error(bad)
    gateway = {"code": 502, "seconds": 0.01, "error": ""}
    assert not restart.app_error(poll(replies={"socket": {}, "nginx": {"/a": gateway}}))


def test_health_is_one_round_trip_when_healthy(server, fakes):
    ctx, remote, dev, app = server
    fakes("cg/cgroup.procs", "30\n50\n")  # the new workers
    fakes("journal", "GET /cynow/ 200\n")
    ok, detail = restart.health(remote, 5, [41, 42], 30, "s=abc;i=1'2")
    assert ok and detail == "/cynow/ 200 in 0.01s, /cynow/orders/ 200 in 0.01s"
    assert len(remote.sent) == 1
    assert "journalctl --sync" in fakes.calls()
    assert "journalctl --no-pager -u gunicorn.service --after-cursor=s=abc;i=1'2" in fakes.calls()


def test_health_fails_on_a_traceback_in_the_journal(server, fakes):
    ctx, remote, dev, app = server
    fakes("journal", "Traceback (most recent call last):\nx\nTraceback (most recent call last):\n")
    assert restart.health(remote, 5, [], 0, "c") == (
        False,
        "2 traceback(s) in the journal since the reload",
    )
    # Without a cursor (undoing: the new code's last requests may have logged) no journal read.
    before = len(fakes.calls())
    assert restart.health(remote, 5)[0]
    assert not [c for c in fakes.calls()[before:] if "journalctl" in c]


def test_health_waits_for_the_old_workers_on_the_server(server, fakes):
    ctx, remote, dev, app = server
    t0 = time.monotonic()
    ok, detail = restart.health(remote, 0.4, [41, 42], 30)
    assert not ok and detail == "old workers still running: [41, 42]"
    assert time.monotonic() - t0 >= 0.4
    assert len(remote.sent) <= 2  # the waiting happened inside the poll, not in round trips
    # Old workers that leave while it waits: healthy as soon as they are gone.
    procs = fakes.dir / "cg" / "cgroup.procs"
    subprocess.Popen(["sh", "-c", f"sleep 0.3; printf '30\\n50\\n' > '{procs}'"])
    remote.sent.clear()
    t0 = time.monotonic()
    ok, detail = restart.health(remote, 5, [41, 42], 30)
    assert ok and 0.3 <= time.monotonic() - t0 < 2 and len(remote.sent) == 1


def test_health_stops_at_a_second_500_and_when_the_master_is_gone(server, fakes):
    ctx, remote, dev, app = server
    fakes("code", "500")
    ok, detail = restart.health(remote, 10)
    assert not ok and "500" in detail and len(remote.sent) == 2
    fakes("code", "000")
    fakes("main", "0\n")  # gunicorn halted: no master, no workers
    fakes("cg/cgroup.procs", "")
    remote.sent.clear()
    ok, detail = restart.health(remote, 10, [41], 30)
    assert not ok and detail.startswith("gunicorn's master (pid 30) exited after the reload")
    assert len(remote.sent) == 1


def test_health_gives_booting_workers_the_whole_timeout(server, fakes):
    ctx, remote, dev, app = server
    fakes("code", "502")
    t0 = time.monotonic()
    ok, detail = restart.health(remote, 0.5)
    assert not ok and "502" in detail and time.monotonic() - t0 >= 0.5
    assert len(remote.sent) >= 3


# A pip that keeps its venv's packages in a file: `install -r F` sets each NAME==VERSION line
# of F (a line `fail` makes it fail), `uninstall` drops names, `freeze` lists them.
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


def _fake_pip(ctx, packages: str) -> Path:
    pip = Path(ctx.s.venv) / "bin" / "pip"
    pip.write_text(FAKE_PIP)
    pip.chmod(0o755)
    (Path(ctx.s.venv) / "packages").write_text(packages)
    return Path(ctx.s.venv) / "packages"


def test_requirements_restore_returns_the_venv_exactly(server):
    ctx, remote, dev, app = server
    db = _fake_pip(ctx, "Django==4.2.30\npip==23.0\n")
    new = "Django==5.0\nMarkdown==3.7\n"
    commit(dev, {"requirements.txt": new}, "markdown")
    deploy.take_lock(ctx)
    deploy.preflight(ctx)
    deploy.fetch(ctx)
    assert ctx.requirements_changed
    deploy.update_code(ctx)
    remote.sent.clear()
    assert deploy.install_requirements(ctx) == "installed requirements.txt"
    assert len(remote.sent) == 3  # the freeze, written into the lock, then the install
    assert ctx.venv_before == ["Django==4.2.30", "pip==23.0"]
    state = json.loads((Path(ctx.s.state_dir) / "deploy.lock" / "state").read_text())
    assert state["venv_before"] == ctx.venv_before
    assert sorted(db.read_text().split()) == ["Django==5.0", "Markdown==3.7", "pip==23.0"]
    remote.sent.clear()
    detail = deploy.restore_requirements(ctx)
    assert detail == "venv restored (2 packages; removed markdown)"
    assert sorted(db.read_text().split()) == ["Django==4.2.30", "pip==23.0"]
    assert len(remote.sent) == 2  # reinstall + freeze, then the uninstall


def test_a_failed_install_is_recorded_first_so_its_undo_can_run(server):
    ctx, remote, dev, app = server
    db = _fake_pip(ctx, "Django==4.2.30\n")
    commit(dev, {"requirements.txt": "Broken==1.0\nfail\n"}, "broken requirements")
    deploy.take_lock(ctx)
    deploy.preflight(ctx)
    deploy.fetch(ctx)
    deploy.update_code(ctx)
    with pytest.raises(deploy.StepFailed, match="pip install -r requirements.txt failed"):
        deploy.install_requirements(ctx)
    assert ctx.venv_before == ["Django==4.2.30"]
    assert "Broken==1.0" in db.read_text()  # half-installed
    deploy.restore_requirements(ctx)
    assert db.read_text().split() == ["Django==4.2.30"]


def test_an_old_record_without_a_freeze_reinstalls_the_old_file(server):
    ctx, remote, dev, app = server
    db = _fake_pip(ctx, "")
    old = git(app, "rev-parse", "HEAD")
    commit(dev, {"requirements.txt": "Django==4.2.30\n"}, "pin")
    ctx.old_commit, ctx.requirements_changed = old, True
    (app / "requirements.txt").write_text("Django==4.2.30\n")
    assert deploy.restore_requirements(ctx) == "old requirements reinstalled"
    assert db.read_text().split() == ["Django"]  # the old commit's file, from git
