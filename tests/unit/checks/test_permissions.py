import shlex
import subprocess
from dataclasses import replace

from tasks import shell
from tasks.checks import permissions


def test_parents_of_socket():
    assert permissions.parents("/home/cynow/cynow/gunicorn.sock") == [
        "/home",
        "/home/cynow",
        "/home/cynow/cynow",
    ]


def test_a_file_name_cannot_pass_for_the_socket_verdict(tmp_path, s):
    # An unreadable static file named like a verdict line stays an unreadable entry.
    from dataclasses import replace

    static = tmp_path / "static"
    static.mkdir()
    (static / "x\nwritable").write_text("")
    (static / "x\nwritable").chmod(0)
    s = replace(s, socket=str(tmp_path / "none.sock"), static_root=str(static))
    out = subprocess.run(
        ["sh", "-c", permissions.permissions_command(s)], capture_output=True, text=True
    ).stdout
    p = permissions.parse_permissions(shell.read_batch(out))
    assert p["socket_writable"] is False
    assert p["static_files"] == 1


def test_a_socket_every_local_user_can_reach_is_a_warning(s):
    from tasks.checks.base import Facts

    hostile = replace(s, socket="/srv/my app/$(id)/g.sock")
    li = {"exists": True, "type": "socket", "owner": "cynow", "group": "www-data", "mode": "777"}
    facts = Facts(listener=li, permissions={"socket_writable": True})
    r = permissions.socket_access(facts, hostile)
    assert r.status == "warn" and "mode 777" in r.summary
    fix = next(e for e in r.evidence if e.startswith("fix: "))[len("fix: ") :]
    assert shlex.split(fix) == ["sudo", "chmod", "660", hostile.socket]
    assert permissions.socket_access(Facts(listener={**li, "mode": "660"}), s).status == "ok"


def test_a_missing_directory_on_the_socket_path_is_not_a_denied_one(tmp_path, s):
    """A RuntimeDirectory= is gone while the service is stopped: www-data is not denied it,
    there is nothing to reach yet (before, 'www-data cannot traverse /run/cynow')."""
    from tasks.checks.base import Facts

    s = replace(s, socket=str(tmp_path / "run" / "cynow" / "g.sock"), static_root=str(tmp_path))
    out = subprocess.run(
        ["sh", "-c", permissions.permissions_command(s)], capture_output=True, text=True
    ).stdout
    p = permissions.parse_permissions(shell.read_batch(out))
    assert p["missing"] == [str(tmp_path / "run"), str(tmp_path / "run" / "cynow")]
    assert all(p["traverse"].values())
    r = permissions.socket_access(Facts(listener={"exists": False}, permissions=p), s)
    assert r.status == "skipped" and f"{tmp_path / 'run'} does not exist" in r.summary
    # A directory that is there and closed is still denied.
    denied = {"traverse": {str(tmp_path): False}, "missing": [str(tmp_path / "run")]}
    r = permissions.socket_access(Facts(listener={"exists": False}, permissions=denied), s)
    assert r.status == "fail" and f"cannot traverse {tmp_path}" in r.summary + str(r.evidence)


def test_the_web_users_find_starts_from_root_not_the_logins_home(s):
    """As www-data from a home it cannot enter (an admin login's, 0700 on Debian 13), find
    could not return to where it started: that error is not an unreadable static file."""
    import shutil
    import tempfile
    from pathlib import Path

    # Not pytest's tmp_path: its parent is root's alone, and the user here is `nobody`.
    tmp_path = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        _find_from_a_closed_home(tmp_path, s)
    finally:
        shutil.rmtree(tmp_path)


def _find_from_a_closed_home(tmp_path, s):
    static = tmp_path / "static"
    static.mkdir()
    (static / "a.css").write_text("")
    for p in (tmp_path, static, static / "a.css"):
        p.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    s = replace(s, socket=str(tmp_path / "g.sock"), static_root=str(static))
    cmd = ["runuser", "-u", "nobody", "--", "sh", "-c", permissions.permissions_command(s)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=home).stdout
    p = permissions.parse_permissions(shell.read_batch(out))
    assert p["errors"] == [] and p["unreadable"] == [] and p["static_files"] == 1, p
