"""`[user@]host[:port]` as Fabric Connection arguments: one form for a target's hosts and
for `-H` (Fabric itself reads "[v6]:port" as a host name)."""

from __future__ import annotations

import re
from typing import Any

from tasks.errors import ConfigError

_HOSTNAME = re.compile(r"^[A-Za-z0-9._-]+$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+$")


def host_spec(v: str) -> dict[str, Any] | None:
    """[user@]host[:port] as Connection arguments, or None when it is not one: an IPv6 address
    bare (2001:db8::5) or in brackets with a port ([2001:db8::5]:2222), a port in 1-65535.
    Parsed here because Fabric reads "[v6]:port" as a host name."""
    user, at, rest = v.rpartition("@")
    if (at and not user) or "@" in user or (user and not _HOSTNAME.match(user)) or "\n" in v:
        return None
    port = None
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep or not _IPV6.match(host) or (tail and not tail.startswith(":")):
            return None
        port = tail[1:] or None
    elif rest.count(":") > 1:
        host = rest if _IPV6.match(rest) else ""
    else:
        host, colon, port = rest.partition(":")
        port = port if colon else None  # "h:" keeps an empty port, refused below
        if not _HOSTNAME.match(host):
            return None
    if not host or (port is not None and not (port.isascii() and port.isdigit())):
        return None
    if port is not None and not 1 <= int(port) <= 65535:
        return None
    spec: dict[str, Any] = {"host": host}
    if user:
        spec["user"] = user
    if port is not None:
        spec["port"] = int(port)
    return spec


def cli_host(v: str) -> dict[str, Any]:
    """One host of `-H a,b,c`, held to the same form as a target's hosts."""
    spec = host_spec(v)
    if spec is None:
        raise ConfigError(
            f"-H: {v!r} is not [user@]host[:port]; write hosts like "
            "cynow@10.0.0.5,cynow@host:2222,cynow@[2001:db8::5]:22"
        )
    return spec
