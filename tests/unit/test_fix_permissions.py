"""fab fix-permissions: the program that reads and changes (tasks/remote/fd_permissions.py) run
for real here on temporary trees, as root, with the same command line the server gets:
non-UTF-8 names, a file or a parent directory swapped for a symlink between the read and the
change, secrets out of www-data. The pure plan: test_permission_plan.py."""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess

import pytest

from tasks import fix_permissions as fp
from tasks.remote import fd_permissions as fd
from tasks.runner import Output
from tasks.settings import resolve


@pytest.mark.parametrize(
    "raw",
    [
        b"/a/plain.txt",
        b"/a/caf\xc3\xa9",  # UTF-8: kept readable
        b"/a/latin1-caf\xe9",  # not UTF-8
        b"/a/\xff\xfe",
        b"/a/back\\slash",
        b"/a/looks-escaped\\xff",
        b"/a/new\nline\x1b[2J",
        b"/a/\xe2\x80\xaeevil",  # a bidi override
    ],
)
def test_escaped_names_are_readable_and_exact(raw):
    shown = fd.escape(raw)
    assert fd.unescape(shown) == raw
    assert shown.isprintable() and "\ufffd" not in shown


def test_two_non_utf8_names_never_collapse_into_one():
    assert fd.escape(b"\xe9") != fd.escape(b"\xe8")
    assert fd.escape(b"\xe9") == "\\xe9" and fd.escape(b"\\xe9") == "\\\\xe9"


# The program itself, on real trees. Root runs the unit tests, so chown works; the accounts are
# ones every Debian has: daemon (uid 1, primary group daemon, gid 1) as the app user, www-data
# (gid 33) as the shared group.
WWW = 33
DAEMON = 1


class LocalRemote:
    """Runs each command here with sh, as the server would; `between` runs after the read and
    before the first change (the moment the app user could swap something). The Django probe
    (no Django app here) answers with `database`, as the probe reports it, or not at all."""

    def __init__(self, settings, between=None, database=None):
        self.settings, self.name, self.between = settings, "local", between
        self.commands, self.database = [], database

    def run(self, command, root=False, timeout=None):
        if "CYNOW-PROBE" in command:
            said = {"database": self.database} if self.database else None
            out = f"CYNOW-PROBE {json.dumps(said)}\n" if said else "no python here\n"
            return Output(command, out, "", 0 if said else 1, 0.0)
        mode = shlex.split(command)[5]
        self.commands.append(mode)
        if mode == "apply" and self.between:
            self.between()
            self.between = None
        r = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
        return Output(command, r.stdout, r.stderr, r.returncode, 0.0)


@pytest.fixture
def tree(tmp_path):
    """An app tree the way a root `migrate` and `collectstatic` leave it, and an outside file
    (root's, 0644) that no change may reach."""
    assert os.geteuid() == 0, "these tests chown: run them as root"
    os.chmod(tmp_path, 0o755)
    app = tmp_path / "app"
    (app / "static" / "css").mkdir(parents=True)
    (app / "orders").mkdir()
    (tmp_path / "log").mkdir()
    for top in (app, tmp_path / "log"):  # the trees' tops are the app user's (daemon)
        os.chown(top, DAEMON, DAEMON)
    for rel, mode in [
        (".env", 0o644),
        ("db.sqlite3", 0o644),
        ("manage.py", 0o644),
        ("orders/views.py", 0o666),
        ("static/css/a.css", 0o600),
    ]:
        (app / rel).write_text("x")
        os.chmod(app / rel, mode)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0")
    os.chmod(outside / "passwd", 0o644)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(app / "gunicorn.sock"))
    os.chmod(app / "gunicorn.sock", 0o777)
    settings = resolve(
        {
            "app_user": "daemon",
            "app_group": "www-data",
            "web_user": "www-data",
            "project_dir": str(app),
            "venv": str(app / "venv"),
            "static_root": str(app / "static"),
            "socket": str(app / "gunicorn.sock"),
            "django_log": str(tmp_path / "log" / "django.log"),
        }
    )
    yield app, outside, settings
    sock.close()


def st(path):
    s = os.lstat(path)
    return stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid


def snapshot(root):
    out = {}
    for dirpath, dirs, files in os.walk(os.fsencode(root)):
        for name in [b""] + dirs + files:
            p = os.path.join(dirpath, name) if name else dirpath
            out[p] = st(p)
    return out


def test_it_fixes_a_real_tree_and_keeps_secrets_out_of_www_data(tree):
    app, outside, s = tree
    odd = os.fsencode(app) + b"/orders/caf\xe9.py"  # not UTF-8
    with open(odd, "w") as f:
        f.write("x")
    os.chmod(odd, 0o666)
    before = snapshot(app.parent)

    plan = fp.fix_host(LocalRemote(s), dry_run=True)
    assert plan.changes and plan.errors == [] and snapshot(app.parent) == before  # dry: nothing

    done = fp.fix_host(LocalRemote(s), dry_run=False)
    assert done.errors == [] and done.remaining == [] and done.left_alone == []
    assert [(c.path, c.after) for c in done.changes] == [(c.path, c.after) for c in plan.changes]
    assert st(app / ".env") == (0o640, DAEMON, DAEMON)
    assert st(app / "db.sqlite3") == (0o640, DAEMON, DAEMON)  # was world-readable
    assert st(app / "gunicorn.sock") == (0o660, DAEMON, WWW)
    assert st(app / "orders/views.py") == (0o644, DAEMON, WWW)  # www-data may not write code
    assert st(app / "static/css/a.css") == (0o640, DAEMON, WWW)
    assert st(app / "manage.py") == (0o644, DAEMON, WWW)  # no x added
    assert st(odd) == (0o644, DAEMON, WWW)  # the exact bytes, changed
    shown = {c.path for c in done.changes if c.path.endswith(".py") and "caf" in c.path}
    assert shown == {fd.escape(odd)} == {f"{app}/orders/caf\\xe9.py"}
    assert st(outside / "passwd") == (0o644, 0, 0)

    again = fp.fix_host(LocalRemote(s), dry_run=False)
    assert again.changes == [] and again.errors == []
    doc = again.to_json()
    assert set(doc) == {
        "schema",
        "host",
        "dry_run",
        "changes",
        "remaining",
        "errors",
        "left_alone",
    }


def test_a_file_swapped_for_a_symlink_after_the_read_is_not_followed(tree):
    app, outside, s = tree

    def swap():  # the app user, between fix-permissions' read and its change
        os.remove(app / "orders/views.py")
        os.symlink(outside / "passwd", app / "orders/views.py")
        os.remove(app / ".env")
        os.symlink(outside / "passwd", app / ".env")

    remote = LocalRemote(s, between=swap)
    o = fp.fix_host(remote, dry_run=False)
    assert remote.commands[:2] == ["scan", "apply"]
    assert st(outside / "passwd") == (0o644, 0, 0)  # mode and owner unchanged
    assert {"path": f"{app}/orders/views.py", "why": "symlink"} in o.left_alone
    assert {"path": f"{app}/.env", "why": "symlink"} in o.left_alone
    assert st(app / "db.sqlite3") == (0o640, DAEMON, DAEMON)  # the rest was done
    assert o.errors == [] and o.remaining == []


def test_a_parent_directory_swapped_for_a_symlink_is_not_followed(tree):
    app, outside, s = tree

    def swap():
        os.rename(app / "orders", app / "orders.old")
        os.symlink(outside, app / "orders")
        os.rename(outside / "passwd", outside / "views.py")  # the name the plan will use

    o = fp.fix_host(LocalRemote(s, between=swap), dry_run=False)
    assert st(outside / "views.py") == (0o644, 0, 0)
    assert {"path": f"{app}/orders", "why": "symlink"} in o.left_alone
    assert st(app / "manage.py") == (0o644, DAEMON, WWW)


def test_a_swap_at_the_last_moment_inside_the_program_is_not_followed(tree, monkeypatch):
    """In-process, the swap happens right before the program opens the file: nothing between
    that open and the change looks at the path again."""
    app, outside, _ = tree
    target = os.fsencode(app / "orders/views.py")
    real_open = os.open

    def racing_open(path, flags, mode=0o777, *, dir_fd=None):
        if path == b"views.py" and dir_fd is not None:
            os.remove(target)
            os.symlink(outside / "passwd", target)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(fd.os, "open", racing_open)
    spec = {
        "roots": [str(app)],
        "app_user": "daemon",
        "changes": [
            {
                "path": fd.escape(target),
                "kind": "f",
                "before": list(st(target)),
                "mode": 0o664,
                "user": "daemon",
                "group": "www-data",
            }
        ],
    }
    assert list(fd.apply(spec)) == [{"left_alone": fd.escape(target), "why": "symlink"}]
    monkeypatch.undo()
    assert st(outside / "passwd") == (0o644, 0, 0)


def test_the_walk_does_not_enter_a_directory_swapped_during_it(tree):
    """The walk is a generator: between the record of `orders` and its listing the directory
    becomes a symlink to the outside; what is outside is never listed."""
    app, outside, _ = tree
    seen = []
    chain, names = fd.Chain(), fd.Names()
    try:
        for rec in fd.walk(os.fsencode(app), chain, names):
            seen.append(rec)
            if rec.get("path") == f"{app}/orders":
                os.rename(app / "orders", app / "orders.old")
                os.symlink(outside, app / "orders")
    finally:
        chain.close()
    paths = [r.get("path") for r in seen]
    assert {"left_alone": f"{app}/orders", "why": "symlink"} in seen
    assert not any(str(outside) in (p or "") for p in paths)
    assert f"{app}/orders/passwd" not in paths


def test_the_programs_dry_mode_and_its_checks(tree):
    app, outside, _ = tree
    views = app / "orders/views.py"
    os.link(outside / "passwd", app / "orders/hard")  # root's file under a second name
    base = {"path": "", "kind": "f", "before": None, "mode": 0o600, "user": "daemon"}
    changes = [
        {**base, "path": str(views), "group": "www-data"},
        {**base, "path": str(app / "orders/hard"), "group": "www-data"},
        {**base, "path": str(outside / "passwd"), "group": "www-data"},
        {**base, "path": str(app.parent / "log"), "group": "www-data"},  # a single's neighbour
        {**base, "path": str(app / "manage.py"), "group": "www-data", "before": [0o600, 0, 0]},
        {**base, "path": str(app / "static"), "group": "www-data"},  # a directory now
        {**base, "path": str(app / "gone"), "group": "www-data"},
        {**base, "path": str(app / ".env"), "group": "no-such-group-here"},
    ]
    spec = {
        "roots": [str(app)],
        "singles": [str(app.parent)],
        "app_user": "daemon",
        "changes": changes,
        "dry": True,
    }
    got = {r.get("would") or r.get("left_alone") or r.get("error"): r for r in fd.apply(spec)}
    assert got[str(views)] == {"would": str(views)}
    assert got[str(app / "orders/hard")]["why"] == "hard link"
    assert got[str(outside / "passwd")]["why"] == "outside the trees this task may change"
    assert got[str(app.parent / "log")]["why"] == "outside the trees this task may change"
    assert got[str(app / "manage.py")]["why"] == "changed since the scan"
    assert got[str(app / "static")]["why"] == "changed since the scan (now kind d)"
    assert got[str(app / "gone")]["why"] == "gone since the scan"
    assert got[str(app / ".env")]["why"] == "no group no-such-group-here"
    assert st(views) == (0o666, 0, 0) and st(outside / "passwd") == (0o644, 0, 0)


def test_a_tree_behind_a_symlink_is_reported_not_read(tree, tmp_path):
    app, outside, s = tree
    link = tmp_path / "linked"
    link.symlink_to(app)
    s2 = resolve(
        {
            **{k: getattr(s, k) for k in ("app_user", "app_group", "web_user")},
            **{
                "project_dir": str(link),
                "venv": str(link / "venv"),
                "static_root": str(link / "static"),
                "socket": str(link / "gunicorn.sock"),
                "django_log": str(tmp_path / "log" / "django.log"),
            },
        }
    )
    o = fp.fix_host(LocalRemote(s2), dry_run=False)
    assert {"path": str(link), "why": "symlink"} in o.left_alone
    assert st(app / ".env") == (0o644, 0, 0)  # nothing reached through the link


def test_a_tree_the_app_user_does_not_own_is_refused(tree):
    # /var/spool/cron, /var/lib/dpkg, another user's home pass the system-directory list: a
    # project_dir there is not the app's, and nothing under it may change.
    app, _, s = tree
    os.chown(app, 0, 0)
    before = snapshot(app)
    o = fp.fix_host(LocalRemote(s), dry_run=False)
    assert o.changes == [] and snapshot(app) == before
    assert len(o.errors) == 1 and o.errors[0].startswith(
        f"refusing to change permissions under {app} (root:root): not a directory daemon owns"
    )


def test_the_database_the_probe_names_stays_out_of_www_data(tree):
    app, _, s = tree
    (app / "orders" / "data").write_text("x")  # a sqlite file without a known extension
    os.chmod(app / "orders" / "data", 0o664)
    db = {"engine": "django.db.backends.sqlite3", "name": str(app / "orders" / "data")}
    o = fp.fix_host(LocalRemote(s, database=db), dry_run=False)
    assert o.errors == [] and o.remaining == []
    assert st(app / "orders" / "data") == (0o640, DAEMON, DAEMON)
    assert st(app / "orders/views.py") == (0o644, DAEMON, WWW)
