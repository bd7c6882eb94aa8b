"""`fab upgrade-unit`: the builders of the new unit texts (tasks/remote/unit_upgrade.py) on the
`systemctl cat` output captured from the lab, the plan and its diff, and the scripts' quoting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import programs, shell
from tasks.errors import OpsError
from tasks.remote import unit_upgrade as uu
from tasks.settings import Settings, resolve
from tasks.upgrade_unit import (
    Plan,
    diff,
    install_script,
    make_plan,
    snapshot_script,
    stage_command,
    switch_script,
    undo_script,
    verify_command,
)

DATA = Path(__file__).parent / "data" / "upgrade_unit"
GUIDE = (DATA / "guide.cat").read_text()
UPGRADED = (DATA / "upgraded.cat").read_text()
SOCKET = (DATA / "socket.cat").read_text()
VERSION = (DATA / "version.txt").read_text()


def settings(**kw) -> Settings:
    return resolve(kw)


def test_the_guides_unit_becomes_the_socket_activated_pair():
    new = uu.plan(GUIDE, "gunicorn.socket", "www-data", notify=True)
    service, socket = new["gunicorn.service"], new["gunicorn.socket"]
    assert uu.values(service, "Unit", "Requires") == ["gunicorn.socket"]
    assert uu.values(service, "Unit", "After") == ["network.target gunicorn.socket"]
    assert uu.values(service, "Service", "Type") == ["notify"]
    assert uu.values(service, "Service", "ExecReload") == ["/bin/kill -s HUP $MAINPID"]
    assert uu.values(service, "Service", "KillMode") == ["mixed"]
    # The user's values, exactly as they were (the continuation lines too).
    old = uu.fragment(GUIDE)[1]
    for key in ("User", "Group", "WorkingDirectory", "ExecStart"):
        assert uu.values(service, "Service", key) == uu.values(old, "Service", key)
    assert "          --workers 3 \\\n" in service
    assert uu.values(service, "Install", "WantedBy") == ["multi-user.target"]
    assert uu.values(socket, "Socket", "ListenStream") == ["/home/cynow/cynow/gunicorn.sock"]
    assert uu.values(socket, "Socket", "SocketUser") == ["www-data"]
    assert uu.values(socket, "Socket", "SocketGroup") == ["www-data"]
    assert uu.values(socket, "Socket", "SocketMode") == ["0660"]
    assert uu.values(socket, "Install", "WantedBy") == ["sockets.target"]


def test_what_the_lab_got_is_what_the_builder_makes_and_it_is_idempotent():
    """The files captured from the lab after `fab upgrade-unit` are the builder's output, and
    the builder gives an upgraded unit back unchanged (so a second run changes nothing)."""
    new = uu.plan(GUIDE, "gunicorn.socket", "www-data", notify=True)
    assert new["gunicorn.service"] == uu.fragment(UPGRADED)[1]
    assert new["gunicorn.socket"] == uu.fragment(SOCKET)[1]
    again = uu.plan(UPGRADED, "gunicorn.socket", "www-data", notify=True)
    assert again == new


def test_old_gunicorn_gets_no_notify():
    new = uu.plan(GUIDE, "gunicorn.socket", "www-data", notify=False)
    assert uu.values(new["gunicorn.service"], "Service", "Type") == []
    assert uu.gunicorn_major(VERSION) == 23
    assert uu.gunicorn_major("gunicorn (version 19.9.0)") == 19
    assert uu.gunicorn_major("nonsense") is None


def test_values_kept_environment_and_existing_keys_replaced_not_doubled():
    unit = (
        "[Unit]\nDescription=x\nAfter=network.target postgresql.service\n"
        "Requires=postgresql.service\n"
        "\n[Service]\nType=simple\nUser=app\nGroup=www-data\n"
        "Environment=SECRET_KEY=abc DEBUG=0\nEnvironmentFile=/etc/app.env\n"
        "ExecStart=/srv/v/bin/gunicorn -w 5 --bind=unix:/run/app/g.sock --timeout 60 app.wsgi\n"
        "KillMode=process\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    new = uu.service_text(unit, "app.socket", notify=True)
    assert uu.values(new, "Unit", "After") == ["network.target postgresql.service app.socket"]
    assert uu.values(new, "Unit", "Requires") == ["postgresql.service app.socket"]
    assert uu.values(new, "Service", "Type") == ["notify"]
    assert uu.values(new, "Service", "KillMode") == ["mixed"]
    assert uu.values(new, "Service", "Environment") == ["SECRET_KEY=abc DEBUG=0"]
    assert uu.values(new, "Service", "EnvironmentFile") == ["/etc/app.env"]
    assert uu.socket_path(unit) == "/run/app/g.sock"
    assert uu.service_text(new, "app.socket", notify=True) == new


@pytest.mark.parametrize(
    "exec_start, why",
    [
        ("/v/bin/gunicorn app.wsgi", "binds: nothing"),
        ("/v/bin/gunicorn -b 127.0.0.1:8000 app.wsgi", "127.0.0.1:8000"),
        ("/v/bin/gunicorn -b unix:/a.sock -b unix:/b.sock app.wsgi", "exactly one"),
    ],
)
def test_units_it_cannot_rewrite_safely_are_refused(exec_start, why):
    unit = f"[Service]\nUser=a\nExecStart={exec_start}\n"
    with pytest.raises(uu.Unsupported, match=why):
        uu.service_text(unit, "gunicorn.socket", True)


def test_drop_ins_are_refused():
    cat = GUIDE + "\n# /etc/systemd/system/gunicorn.service.d/override.conf\n[Service]\nUser=x\n"
    with pytest.raises(uu.Unsupported, match="drop-ins"):
        uu.fragment(cat)


def parts(
    cat=GUIDE, socket="", frag="/etc/systemd/system/gunicorn.service", kind="regular file root"
):
    return shell.Parts(
        cat=shell.Part(cat, 0),
        show=shell.Part(f"FragmentPath={frag}\nDropInPaths=\nLoadState=loaded\n", 0),
        socket=shell.Part(socket, 0 if socket else 1),
        kind=shell.Part(kind + "\n", 0),
    )


def test_plan_and_diff():
    s = settings()
    plan = make_plan(s, parts(), VERSION)
    assert plan.changed == ["gunicorn.service", "gunicorn.socket"] and plan.notify
    d = diff(plan)
    assert "+++ /etc/systemd/system/gunicorn.socket" in d and "--- /dev/null" in d
    assert "+Requires=gunicorn.socket\n" in d and "+KillMode=mixed\n" in d
    done = make_plan(s, parts(UPGRADED, SOCKET), VERSION)
    assert done.changed == [] and diff(done) == ""


def test_the_printed_diff_redacts_secrets():
    plan = Plan(
        {"a.service": "[Service]\nEnvironment=SECRET_KEY=hunter2\n"},
        {"a.service": "[Service]\nEnvironment=SECRET_KEY=hunter2\nKillMode=mixed\n"},
        "/s",
        True,
        "",
    )
    assert "hunter2" not in diff(plan)


@pytest.mark.parametrize(
    "kw, why",
    [
        ({"frag": "/lib/systemd/system/gunicorn.service"}, "not root's own file"),
        ({"kind": "symbolic link root"}, "not root's own file"),
        ({"kind": "regular file cynow"}, "not root's own file"),
    ],
)
def test_a_unit_file_root_does_not_own_in_etc_is_not_rewritten(kw, why):
    with pytest.raises(OpsError, match=why):
        make_plan(settings(), parts(**kw), VERSION)


def test_the_server_side_program_writes_the_planned_texts(tmp_path, monkeypatch):
    """The staging program as the server runs it (`python3 -I -c SOURCE stage ...`), with a
    fake `systemctl` on PATH that prints the captured `systemctl cat`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "cat.txt").write_text(GUIDE)
    fake = bindir / "systemctl"
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'cat.txt'}\n")
    fake.chmod(0o755)
    stage = tmp_path / "new"
    stage.mkdir()
    r = subprocess.run(
        [sys.executable, "-I", "-B", "-c", programs.source("unit_upgrade"), "stage",
         "gunicorn.service", "gunicorn.socket", "www-data", "notify", str(stage)],
        capture_output=True, text=True, env={"PATH": f"{bindir}:/usr/bin:/bin"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    want = uu.plan(GUIDE, "gunicorn.socket", "www-data", True)
    for name, text in want.items():
        assert (stage / name).read_text() == text
        assert f"sha256 {name} {uu.sha256(text)}" in r.stdout


def test_scripts_quote_what_they_interpolate():
    s = settings(state_dir="/var/lib/it's here")
    for script in (
        snapshot_script(s, "ID", True),
        stage_command(s, "ID", True),
        verify_command(s, "ID"),
        install_script(s, "ID"),
        switch_script(s, "/home/it's/g.sock"),
        undo_script(s, "ID", "/home/it's/g.sock"),
    ):
        assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
        assert "'/var/lib/it'\"'\"'s here" in script or "it's" not in script


def test_switch_never_stops_the_old_master_gracefully():
    """A gunicorn that bound its socket unlinks the path on a graceful stop (SIGTERM), which
    would delete the socket unit's file: the master gets KILL, only its workers TERM."""
    script = switch_script(settings(), "/home/cynow/cynow/gunicorn.sock")
    assert 'kill -KILL "$main"' in script
    assert "systemctl stop gunicorn.service" not in script
    assert script.index("systemctl start gunicorn.socket") < script.index(
        "systemctl start gunicorn.service"
    )


def test_the_bridge_holds_the_path_and_hands_over_to_the_new_socket(tmp_path):
    """tasks/remote/socket_bridge.py for real, on local unix sockets: it takes the path over
    the old socket, holds a client that connects meanwhile, and once another socket has the
    path it carries that client's request there and the answer back."""
    import socket
    import threading

    path = str(tmp_path / "g.sock")
    old = socket.socket(socket.AF_UNIX)
    old.bind(path)
    old.listen(8)
    bridge = subprocess.Popen(
        [sys.executable, "-I", "-B", "-c", programs.source("socket_bridge"), path, "10"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert bridge.stdout.readline().strip() == "ready"
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)  # reaches the bridge: the old socket has no name now
    client.sendall(b"GET /\n")
    # The new server takes the path as systemd would (its own bind, replacing the file).
    new = socket.socket(socket.AF_UNIX)
    os.unlink(path)
    new.bind(path)
    new.listen(8)

    def serve():
        conn, _ = new.accept()
        assert conn.recv(100) == b"GET /\n"
        conn.sendall(b"200 OK\n")
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    client.settimeout(10)
    assert client.recv(100) == b"200 OK\n"
    client.close()
    t.join(10)
    assert bridge.wait(20) == 0
    assert bridge.stdout.read().strip() == "bridged 1"
    old.close()
    new.close()


def test_a_half_done_or_foreign_socket_unit_is_not_touched():
    """The switch assumes a gunicorn binding its own socket and no socket unit: a socket unit
    that differs, or an upgraded service without its socket unit, is refused before any change."""
    other = SOCKET.replace("SocketMode=0660", "SocketMode=0600")
    with pytest.raises(OpsError, match="exists and differs"):
        make_plan(settings(), parts(GUIDE, other), VERSION)
    with pytest.raises(OpsError, match="exists and differs"):
        make_plan(settings(), parts(UPGRADED, other), VERSION)
    with pytest.raises(OpsError, match="is missing"):
        make_plan(settings(), parts(UPGRADED, ""), VERSION)
    with pytest.raises(OpsError, match="still binds its own socket"):
        make_plan(settings(), parts(GUIDE, SOCKET), VERSION)
