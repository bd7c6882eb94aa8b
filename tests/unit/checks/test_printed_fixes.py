"""Every printed fix is pasted into a root shell: built with tasks/shell.py's quoting, a path
holding a space, a quote and `$(...)` stays one argument and runs nothing of its own."""

import shlex
import subprocess

import pytest

from tasks import guide
from tasks.checks import django, nginx, permissions, services, socket, unit_file
from tasks.checks.base import Check, Facts
from tasks.settings import resolve
from tasks.shell import join


@pytest.fixture
def canary(tmp_path):
    return tmp_path / "pwned"


def hostile(canary) -> str:
    # Relative (no '/'): it stays within one path component; the shell runs in its directory.
    return f"it's a $(touch {canary.name})"


def hostile_settings(canary):
    h = hostile(canary)
    return resolve(
        {
            "project_dir": f"/srv/{h}/app",
            "venv": f"/srv/{h}/venv",
            "socket": f"/run/{h}/g.sock",
            "static_root": f"/srv/{h}/static",
            "nginx_site": f"/etc/nginx/sites-available/{h}",
        }
    )


def fixes(results) -> list[str]:
    return [line for r in results for f in r.findings for line in f.fix]


def unit(**props):
    return {"LoadState": "loaded", "UnitFileState": "disabled", **props}


def every_fix(s, canary) -> list[str]:
    """The fix lines of every check that prints one, each reached with hostile settings and,
    where the server supplies a value (the database's path, a module name, a unit's binary),
    hostile server text too (a module name with a newline: it would start a command of its
    own)."""
    h = hostile(canary)
    u = s.gunicorn_unit
    out = []
    for props in (
        unit(ActiveState="failed", SubState="failed", Result="start-limit-hit"),
        unit(ActiveState="activating", SubState="auto-restart", NRestarts="5"),
        unit(ActiveState="failed", SubState="failed", Result="exit-code", ExecMainStatus="203"),
    ):
        out += fixes(services.gunicorn(Facts(units={u: props}), s))
    nginx_down = {s.nginx_unit: unit(ActiveState="inactive", SubState="dead")}
    out += fixes(services.nginx(Facts(units=nginx_down), s))
    for li in ({"exists": True, "type": "socket"}, {"exists": True, "type": "regular file"}):
        out += fixes(socket.evaluate(Facts(listener=li), s))
    blocked = {d: False for d in permissions.parents(s.socket)}
    out += fixes([permissions.socket_access(Facts(permissions={"traverse": blocked}), s)])
    unwritable = Facts(listener={"exists": True}, permissions={"socket_writable": False})
    out += fixes([permissions.socket_access(unwritable, s)])
    static = {
        "traverse": {d: False for d in permissions.parents(s.static_root + "/x")},
        "unreadable": [f"-rw------- root:root {s.static_root}/a.css"],
    }
    out += fixes([permissions.static_access(Facts(permissions=static), s)])
    for name in (f"/srv/{h}/db.sqlite3", f"-rf {h}.sqlite3"):
        db = {"engine": "django.db.backends.sqlite3", "exists": True, "name": name}
        db |= {"dir": f"/srv/{h}", "writable": False, "dir_writable": False}
        out += fixes([permissions.database_access(Facts(probe={"database": db}), s)])
    out += fixes(nginx.evaluate(Facts(nginx={"ok": False, "test": ["nginx: [emerg] x"]}), s))
    exec_start = f"{{ path=/x ; argv[]={join('/x/gunicorn', '--bind', 'unix:/b.sock')} ; }}"
    mismatch = Facts(units={u: {"ExecStart": exec_start}})
    check = Check("nginx.proxy", 4, "proxy")
    out += fixes([nginx.proxy_target(check, "proxy_pass http://unix:/a.sock;", mismatch, s)])
    binary = f"/srv/{h}/gunicorn"
    exec_start = f"{{ path=/x ; argv[]={join(binary, '--bind', 'unix:' + s.socket)} ; }}"
    broken = Facts(
        units={u: unit(ExecStart=exec_start, NeedDaemonReload="yes")}, paths={binary: "missing"}
    )
    out += fixes(unit_file.evaluate(broken, s))
    for error, behind in (
        ({"type": "ImproperlyConfigured", "message": "x"}, 0),
        ({"type": "ModuleNotFoundError", "message": "x"}, 2),
        ({"type": "ModuleNotFoundError", "name": f"x\ntouch {canary}\n"}, 0),
        ({"type": "RuntimeError", "message": "x"}, 0),
    ):
        out += django.classify(error, behind, s, s.project_dir).fix
    missing_db = {"database": {"engine": "sqlite3", "exists": False, "name": f"/srv/{h}/db"}}
    out += fixes([django._migrations(missing_db, s)])
    out += fixes(django._required(Facts(required={"orders/urls.py": False}, code={"behind": 2}), s))
    return out


def commands(lines: list[str]) -> list[str]:
    """The lines that are shell commands (the others are prose for a person)."""
    return [ln for ln in lines if ln.startswith(("sudo ", "cd "))]


# Stand-ins for the two commands a fix line runs: each prints the words it was given, so the
# real shell shows the argv it built; anything else the line ran would run for real.
STUBS = "sudo() { printf '%s\\0' sudo \"$@\"; }; cd() { printf '%s\\0' cd \"$@\"; }\n"


def shell_argv(line: str, cwd) -> list[str]:
    r = subprocess.run(
        ["bash", "--norc", "-c", STUBS + line],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin"},
        timeout=10,
    )
    assert r.returncode == 0 and not r.stderr, (line, r.stderr)
    return r.stdout.split("\0")[:-1]


def test_every_printed_fix_runs_as_the_words_it_shows(canary, tmp_path):
    s = hostile_settings(canary)
    lines = every_fix(s, canary)
    cmds = commands(lines)
    # Every kind of printed command was reached.
    for start in (
        "sudo rm -f ",
        "sudo chown ",
        "sudo chmod u+w ",
        "sudo chmod -R o+rX ",
        "sudo chmod o+x ",
        "sudo chgrp ",
        "sudo ln -s ",
        "sudo systemctl edit --full ",
        "sudo systemctl reset-failed ",
        "sudo systemctl cat ",
        "sudo systemctl enable ",
        "sudo journalctl -u ",
        "sudo -u cynow ",
        "cd ",
    ):
        assert any(c.startswith(start) for c in cmds), start
    for line in cmds:
        assert "\n" not in line, line
        words = [w for w in shlex.split(line, comments=True) if w != "&&"]
        # What a person reads is what the shell runs: the same words, nothing substituted.
        assert shell_argv(line, tmp_path) == words, line
        for w in words:
            assert "pwned" not in w or hostile(canary) in w, (line, w)
    assert not canary.exists()


def test_a_hostile_path_is_one_argument_unchanged(canary, tmp_path):
    s = hostile_settings(canary)
    li = {"exists": True, "type": "socket", "listed_by": "ss"}
    rm, restart = socket.evaluate(Facts(listener=li), s)[0].findings[0].fix
    assert shell_argv(rm, tmp_path) == ["sudo", "rm", "-f", s.socket]
    pull = guide.update_by_hand(s)[0]
    assert shell_argv(pull, tmp_path)[:2] == ["cd", s.project_dir]
    db = {"engine": "sqlite3", "exists": True, "name": f"-rf {hostile(canary)}", "dir": "/srv"}
    chown, chmod = permissions.database_access(Facts(probe={"database": db}), s).findings[0].fix
    # A server path starting with '-' is not an option to chown.
    assert shell_argv(chown, tmp_path)[3:] == [f"./-rf {hostile(canary)}", "/srv"]
    assert not canary.exists()


def test_a_newline_in_server_text_stays_in_the_comment(canary, s):
    line = django.classify(
        {"type": "ModuleNotFoundError", "name": f"x\ntouch {canary}"}, 0, s, s.project_dir
    ).fix[0]
    assert "\n" not in line and line.endswith(
        f"# add x touch {canary} there first if it is not listed"
    )


def test_ordinary_paths_print_as_before(s):
    # q() leaves safe strings bare: the guide's layout reads as a person types it.
    assert guide.update_by_hand(s) == [
        "cd /home/cynow/cynow && sudo -u cynow git pull --ff-only origin main",
        "sudo -u cynow /home/cynow/cynow/venv/bin/pip install -r requirements.txt",
        "sudo -u cynow /home/cynow/cynow/venv/bin/python manage.py migrate --noinput",
        "sudo -u cynow /home/cynow/cynow/venv/bin/python manage.py collectstatic --noinput",
        "sudo systemctl restart gunicorn.service",
    ]
    listed = {"exists": True, "type": "socket", "listed_by": "ss"}
    assert socket.evaluate(Facts(listener=listed), s)[0].findings[0].fix == [
        "sudo rm -f /home/cynow/cynow/gunicorn.sock",
        "sudo systemctl restart gunicorn.service",
    ]
    db = {"engine": "sqlite3", "exists": True, "name": "/home/cynow/cynow/db.sqlite3"}
    db |= {"dir": "/home/cynow/cynow", "writable": False, "dir_writable": True}
    assert permissions.database_access(Facts(probe={"database": db}), s).findings[0].fix == [
        "sudo chown cynow:www-data /home/cynow/cynow/db.sqlite3 /home/cynow/cynow",
        "sudo chmod u+w /home/cynow/cynow/db.sqlite3 /home/cynow/cynow",
    ]
    assert django._migrations({"unapplied": ["orders.0002"]}, s).findings[0].fix == [
        "cd /home/cynow/cynow && sudo -u cynow /home/cynow/cynow/venv/bin/python manage.py "
        "migrate --noinput"
    ]
