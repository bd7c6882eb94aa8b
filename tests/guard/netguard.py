"""The test suite's network guard: no connection may leave 127.0.0.0/8 (or ::1).

Installed in the pytest process by tests/conftest.py and in every Python subprocess the tests
start (`fab`, benchmarks) through sitecustomize.py on PYTHONPATH. A refused connection raises
PermissionError *and* is appended to $CYNOW_NET_GUARD_LOG, so a test fails even when the code
under test swallows the error. Unix sockets are not affected.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


def allowed(address) -> bool:
    host = address[0] if isinstance(address, tuple) else None
    if host is None:
        return True  # AF_UNIX paths
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False  # a name here means someone skipped resolution: refuse
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in net for net in LOOPBACK)


def _refuse(address) -> None:
    log = os.environ.get("CYNOW_NET_GUARD_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"pid {os.getpid()} tried to connect to {address!r}\n")
    raise PermissionError(f"net guard: connection to {address!r} refused (tests stay on loopback)")


def _connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
        _refuse(address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
        _refuse(address)
    return _real_connect_ex(self, address)


def install() -> None:
    socket.socket.connect = _connect
    socket.socket.connect_ex = _connect_ex


def installed() -> bool:
    return socket.socket.connect is _connect
