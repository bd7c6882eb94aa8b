"""The test suite's network guard: nothing may leave 127.0.0.0/8 (or ::1).

Installed in the pytest process by tests/conftest.py and in every Python subprocess the tests
start (`fab`, benchmarks) through sitecustomize.py on PYTHONPATH; not in a `fab` run by hand.
Guarded: `connect`/`connect_ex` and `sendto`/`sendmsg` (a UDP datagram needs no connect) to an
address outside loopback, and `getaddrinfo` of any name but localhost's (resolving a name may
itself send a DNS query). An IP literal is parsed, never looked up, so it passes getaddrinfo
(the tool's own check resolves a host before refusing it: tasks/connect.py), and one outside
loopback is stopped at connect or send. A refused call raises PermissionError *and* is appended to
$CYNOW_NET_GUARD_LOG, so a test fails even when the code under test swallows the error. Unix
sockets are not affected.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto
_real_sendmsg = socket.socket.sendmsg
_real_getaddrinfo = socket.getaddrinfo
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
# The names /etc/hosts gives loopback on Debian; resolved there, never by DNS.
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
INET = (socket.AF_INET, socket.AF_INET6)


def _ip(host):
    """`host` as an IP address, or None when it is a name."""
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return None
    return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip


def allowed(address) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    ip = _ip(address[0])  # a name here means someone skipped resolution: refused
    return ip is not None and any(ip in net for net in LOOPBACK)


def resolvable(host) -> bool:
    """What getaddrinfo may be asked: no host (a passive or local lookup), localhost's names,
    an IP literal (parsed, not looked up)."""
    if host is None or host in ("", b""):
        return True
    name = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
    return name.lower().rstrip(".") in LOCAL_NAMES or _ip(name) is not None


def _refuse(address, what: str = "connect to") -> None:
    log = os.environ.get("CYNOW_NET_GUARD_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"pid {os.getpid()} tried to {what} {address!r}\n")
    raise PermissionError(f"net guard: {what} {address!r} refused (tests stay on loopback)")


def _connect(self, address):
    if self.family in INET and not allowed(address):
        _refuse(address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    if self.family in INET and not allowed(address):
        _refuse(address)
    return _real_connect_ex(self, address)


def _sendto(self, data, *args):
    # sendto(data, address) or sendto(data, flags, address): the address is the last argument.
    if self.family in INET and args and not allowed(args[-1]):
        _refuse(args[-1], "send to")
    return _real_sendto(self, data, *args)


def _sendmsg(self, buffers, ancdata=(), flags=0, address=None):
    if self.family in INET and address is not None and not allowed(address):
        _refuse(address, "send to")
    if address is None:  # a connected socket: its peer passed connect's check
        return _real_sendmsg(self, buffers, ancdata, flags)
    return _real_sendmsg(self, buffers, ancdata, flags, address)


def _getaddrinfo(host, *args, **kwargs):
    if not resolvable(host):
        _refuse(host, "resolve")
    return _real_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    socket.socket.connect = _connect
    socket.socket.connect_ex = _connect_ex
    socket.socket.sendto = _sendto
    socket.socket.sendmsg = _sendmsg
    socket.getaddrinfo = _getaddrinfo


def installed() -> bool:
    return (
        socket.socket.connect is _connect
        and socket.socket.sendto is _sendto
        and socket.socket.sendmsg is _sendmsg
        and socket.getaddrinfo is _getaddrinfo
    )
