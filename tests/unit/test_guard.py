"""The suite's network guard itself: it refuses anything outside loopback, in and out of process."""

import socket
import subprocess
import sys

import netguard
import pytest


def test_guard_is_installed_in_the_test_process():
    assert netguard.installed()


@pytest.mark.expects_guard_violation
def test_guard_refuses_production_without_sending_a_packet(monkeypatch, guard_log):
    sent = []
    # Even if the guard were broken, nothing would leave: the real connect is a recorder here.
    monkeypatch.setattr(netguard, "_real_connect", lambda sock, addr: sent.append(addr))
    before = guard_log.read_text()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(PermissionError, match="net guard"):
            s.connect(("10.78.30.98", 22))
    assert sent == []
    assert "10.78.30.98" in guard_log.read_text()[len(before) :]


def test_guard_allows_loopback_and_unix():
    assert netguard.allowed(("127.0.0.11", 22)) and netguard.allowed(("::1", 22, 0, 0))
    assert netguard.allowed("/home/cynow/cynow/gunicorn.sock")
    assert not netguard.allowed(("10.78.30.98", 22)) and not netguard.allowed(("example.com", 80))
    assert not netguard.allowed(("::ffff:10.78.30.98", 22, 0, 0))


@pytest.mark.expects_guard_violation
def test_guard_is_in_every_python_subprocess(guard_log):
    code = (
        "import socket, netguard\n"
        "sent = []\n"
        "netguard._real_connect = lambda s, a: sent.append(a)\n"
        "try:\n"
        "    socket.create_connection(('10.78.30.98', 22), timeout=1)\n"
        "except PermissionError:\n"
        "    print('refused', sent)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "refused []", out.stderr


def test_tool_refuses_production_before_connecting(tmp_path):
    from tests.lab.helpers import fab

    r = fab("-H", "cynow@10.78.30.98", "info", home=tmp_path)
    assert r.returncode == 2
    assert "refusing to connect to 10.78.30.98" in r.stderr
