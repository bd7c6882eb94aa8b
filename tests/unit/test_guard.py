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
    assert netguard.allowed((b"127.0.0.1", 22))
    assert netguard.allowed("/home/cynow/cynow/gunicorn.sock")
    assert not netguard.allowed(("10.78.30.98", 22)) and not netguard.allowed(("example.com", 80))
    assert not netguard.allowed(("::ffff:10.78.30.98", 22, 0, 0))


@pytest.mark.expects_guard_violation
@pytest.mark.parametrize("host", ["example.com", "cynow.example.org.", b"example.com", "web1"])
def test_guard_refuses_resolving_any_name_but_localhosts(monkeypatch, guard_log, host):
    asked = []
    # A recorder for the real resolver: a broken guard would still send no DNS query.
    monkeypatch.setattr(netguard, "_real_getaddrinfo", lambda *a, **k: asked.append(a) or [])
    before = guard_log.read_text()
    with pytest.raises(PermissionError, match="net guard: resolve"):
        socket.getaddrinfo(host, 443)
    with pytest.raises(PermissionError, match="net guard"):
        socket.create_connection((host, 443), timeout=1)  # resolves first
    assert asked == []
    assert (
        str(host if isinstance(host, str) else host.decode())
        in guard_log.read_text()[len(before) :]
    )


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.11", "::1", "localhost", "LOCALHOST.", None, "", "10.0.0.1"]
)
def test_guard_resolves_localhost_and_literals(monkeypatch, host):
    """A literal is parsed, never looked up; one outside loopback is stopped at connect."""
    asked = []
    monkeypatch.setattr(netguard, "_real_getaddrinfo", lambda *a, **k: asked.append(a) or [])
    socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    assert asked == [(host, 80)]


@pytest.mark.expects_guard_violation
def test_guard_refuses_datagrams_outside_loopback(monkeypatch, guard_log):
    sent = []
    monkeypatch.setattr(netguard, "_real_sendto", lambda sock, *a: sent.append(a))
    monkeypatch.setattr(netguard, "_real_sendmsg", lambda sock, *a: sent.append(a))
    before = guard_log.read_text()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(PermissionError, match="net guard: send to"):
            s.sendto(b"x", ("192.0.2.7", 53))
        with pytest.raises(PermissionError, match="net guard: send to"):
            s.sendto(b"x", 0, ("192.0.2.8", 53))  # the form with flags
        with pytest.raises(PermissionError, match="net guard: send to"):
            s.sendmsg([b"x"], [], 0, ("192.0.2.9", 53))
        with pytest.raises(PermissionError, match="net guard: send to"):
            s.sendto(b"x", ("dns.example.com", 53))  # a name: resolved inside, so refused
    assert sent == []
    logged = guard_log.read_text()[len(before) :]
    assert all(ip in logged for ip in ("192.0.2.7", "192.0.2.8", "192.0.2.9", "dns.example"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", 9))
        s.sendto(b"x", 0, ("127.0.0.1", 9))
        s.sendmsg([b"x"], [], 0, ("127.0.0.1", 9))
    assert sent == [(b"x", ("127.0.0.1", 9)), (b"x", 0, ("127.0.0.1", 9))] + [
        ([b"x"], [], 0, ("127.0.0.1", 9))
    ]


def test_guard_passes_a_connected_sendmsg_and_unix_datagrams(tmp_path):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.sendmsg([b"hi"])
        assert b.recv(10) == b"hi"
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
    ):
        r.bind(("127.0.0.1", 0))
        s.connect(r.getsockname())
        s.sendmsg([b"ok"])
        assert r.recv(10) == b"ok"


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
        "try:\n"
        "    socket.getaddrinfo('example.com', 80)\n"
        "except PermissionError:\n"
        "    print('unresolved')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split("\n")[:2] == ["refused []", "unresolved"], out.stderr


def test_tool_refuses_production_before_connecting(tmp_path):
    from tests.lab.helpers import fab

    r = fab("-H", "cynow@10.78.30.98", "info", home=tmp_path)
    assert r.returncode == 2
    assert "refusing to connect to 10.78.30.98" in r.stderr
