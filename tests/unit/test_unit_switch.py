"""upgrade-unit's root scripts (tasks/unit_switch.py): their quoting, the switch's order, and
the socket bridge they start (tasks/remote/socket_bridge.py) for real on local unix sockets."""

from __future__ import annotations

import os
import subprocess
import sys

from tasks import programs
from tasks import unit_switch as us
from tests.unit.remote.test_unit_upgrade import settings


def test_scripts_quote_what_they_interpolate():
    s = settings(state_dir="/var/lib/it's here")
    for script in (
        us.snapshot_script(s, "ID", True),
        us.stage_command(s, "ID", True),
        us.verify_command(s, "ID"),
        us.install_script(s, "ID"),
        us.switch_script(s, "/home/it's/g.sock"),
        us.undo_script(s, "ID", "/home/it's/g.sock"),
    ):
        assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
        assert "'/var/lib/it'\"'\"'s here" in script or "it's" not in script


def test_switch_never_stops_the_old_master_gracefully():
    """A gunicorn that bound its socket unlinks the path on a graceful stop (SIGTERM), which
    would delete the socket unit's file: the master gets KILL, only its workers TERM."""
    script = us.switch_script(settings(), "/home/cynow/cynow/gunicorn.sock")
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
