"""Guide step 5 (socket) and step 1's port check: does anything listen where nginx connects?"""

from __future__ import annotations

import re

from tasks import tools
from tasks.checks.base import ROOT, Check, Fact, Facts, Finding
from tasks.discovery import listen_of
from tasks.guide import sudo
from tasks.settings import Settings, tcp_address
from tasks.shell import batch, q


def listener_command(s: Settings, _facts=None) -> str:
    """The socket file, the listening sockets (ss, or /proc without it: tools.listing), and
    for a unix socket each directory on the way to it."""
    if s.tcp:
        return batch({"tcp": tools.listing("tcp")})
    return batch(
        {
            "stat": f"stat -c 'type=%F owner=%U group=%G mode=%a' {q(s.socket)} 2>&1",
            "listen": tools.listing("unix"),
            "tcp": tools.listing("tcp"),
            "namei": f"namei -l {q(s.socket)} 2>&1",
        }
    )


def _held(text: str) -> list[str]:
    """The listing's lines of sockets some process holds: after the master is killed the
    kernel can still list the old socket without a process for a moment (and /proc, on a
    shared network namespace, another machine's)."""
    return [ln for ln in text.splitlines() if "users:((" in ln]


def _tcp_listeners(text: str, bind: str) -> list[str]:
    """ss -tlnp lines of processes listening on `bind` (HOST:PORT), or on its port on every
    address (0.0.0.0, *, [::])."""
    host, port = tcp_address(bind)
    mine = {f"{host}:{port}", f"0.0.0.0:{port}", f"*:{port}", f"[::]:{port}"}
    return [ln for ln in _held(text) if set(ln.split()) & mine]


def _port(text: str, port: int) -> list[str]:
    """The listing's lines of a local address on `port` (ss's `sport = :PORT`)."""
    return [ln for ln in _held(text) if len(ln.split()) > 3 and ln.split()[3].endswith(f":{port}")]


def parse_listener(parts: dict, s: Settings | None = None) -> dict:
    tcp = parts.get("tcp")
    port8000 = _port(tcp.text, 8000) if tcp is not None else []
    if "stat" not in parts:
        listen = _tcp_listeners(tcp.text, s.tcp) if s and s.tcp else []
        return {
            "exists": True,
            "type": "tcp",
            "listening": bool(listen),
            "listed_by": tools.listed_by(tcp),
            "port_listed_by": tools.listed_by(tcp),
            "listen_lines": listen,
            "owners": re.findall(r'\("([^"]+)",pid=(\d+)', " ".join(listen)),
            "port8000": port8000,
            "namei": [],
        }
    stat = parts["stat"].text.strip()
    m = re.match(r"type=(.+?) owner=(\S+) group=(\S+) mode=(\d+)", stat)
    info: dict = {"exists": bool(m)}
    if m:
        info.update(type=m.group(1), owner=m.group(2), group=m.group(3), mode=m.group(4))
    else:
        info["error"] = stat
    path = f" {s.socket} " if s else None
    listen = [ln for ln in _held(parts["listen"].text) if path is None or path in f"{ln} "]
    info["listening"] = bool(listen)
    info["listed_by"] = tools.listed_by(parts["listen"])
    info["listen_lines"] = listen
    info["owners"] = re.findall(r'\("([^"]+)",pid=(\d+)', " ".join(listen))
    info["port8000"] = port8000
    info["port_listed_by"] = tools.listed_by(tcp)
    info["namei"] = [ln for ln in parts["namei"].text.splitlines() if ln.strip()]
    return info


NOT_LISTED = "not read: neither ss nor the /proc listing could list the sockets"


def listed(li: dict) -> str:
    """Evidence of where the listing came from, when not from ss."""
    return " (read from /proc: ss is missing)" if li.get("listed_by") == "/proc" else ""


FACTS = [Fact("listener", listener_command, parse_listener, identity=ROOT, framed=True)]


def tcp_listener(facts: Facts, s: Settings) -> list:
    li = facts.listener
    check = Check("listener.socket", 5, f"TCP {s.tcp}")
    if li.get("listening"):
        who = ", ".join(f"{name} (pid {pid})" for name, pid in li.get("owners", [])[:1])
        out = [check.ok(f"listened by {who or 'a process'}", li.get("listen_lines", [])[:2])]
    elif not li.get("listed_by"):
        out = [check.skip(NOT_LISTED)]
    else:
        out = [
            check.fail(
                f"nothing listens on {s.tcp}: nothing serves the address nginx uses{listed(li)}"
            )
        ]
    port = Check("listener.port8000", 1, "TCP port 8000")
    if not li.get("port_listed_by"):
        out.append(port.skip(NOT_LISTED))
    elif tcp_address(s.tcp)[1] == 8000:
        out.append(port.skip("the unit binds :8000 itself"))
    elif li.get("port8000"):
        out.append(
            port.warn("something listens on :8000 (a gunicorn run by hand?)", li["port8000"])
        )
    else:
        out.append(port.skip(f"nothing on :8000; the unit binds {s.tcp}"))
    return out


def stopped_socket_unit(facts: Facts, s: Settings) -> str:
    """Evidence that the socket is the ListenStream= of a socket unit that is loaded but not
    active (systemd holds the socket only while the unit is active); "" otherwise."""
    unit = facts.units.get(s.gunicorn_socket_unit, {})
    if unit.get("LoadState") != "loaded" or listen_of(unit) != s.socket:
        return ""
    if unit.get("ActiveState") == "active":
        return ""
    return f"{s.gunicorn_socket_unit}: {unit.get('ActiveState', '?')} (ListenStream={s.socket})"


def evaluate(facts: Facts, s: Settings) -> list:
    if s.tcp:
        return tcp_listener(facts, s)
    li = facts.listener
    check = Check("listener.socket", 5, f"socket {s.socket}")
    restart = [sudo("rm", "-f", s.socket), sudo("systemctl", "restart", s.gunicorn_unit)]
    if not li.get("exists"):
        out = [
            check.fail(
                "no socket file: nothing serves the path nginx connects to", [li.get("error", "")]
            )
        ]
    elif li.get("type") != "socket":
        out = [
            check.fail(
                f"exists but is a {li.get('type')}",
                [f"{s.socket}: {li.get('type')}"],
                [
                    Finding(
                        "stale_socket", [f"{s.socket} is a {li.get('type')}, not a socket"], restart
                    )
                ],
            )
        ]
    elif not li.get("listening") and not li.get("listed_by"):
        # Nothing listed, nobody seems to listen: calling it stale would have its repair
        # delete the live socket.
        out = [check.skip(NOT_LISTED)]
    elif not li.get("listening"):
        ev = [
            f"{s.socket}: socket {li.get('owner')}:{li.get('group')} {li.get('mode')}",
            f"{'ss -xl' if li.get('listed_by') == 'ss' else '/proc/net/unix'}: "
            "no process listens on it",
        ]
        stopped = stopped_socket_unit(facts, s)
        if stopped:
            # systemd leaves the file of a socket unit it stopped (RemoveOnStop=no) and binds
            # over it at the next start: not a stale file to delete, a stopped unit to start.
            out = [
                check.failure(
                    "gunicorn_stopped",
                    [*ev, stopped],
                    [sudo("systemctl", "start", s.gunicorn_socket_unit, s.gunicorn_unit)],
                    summary=f"nobody listens: {s.gunicorn_socket_unit}, which holds it, is stopped",
                )
            ]
        else:
            out = [
                check.failure(
                    "stale_socket",
                    ev,
                    restart,
                    summary="stale: the file exists but nobody listens (master killed?)",
                )
            ]
    else:
        who = ", ".join(f"{name} (pid {pid})" for name, pid in li.get("owners", [])[:1])
        out = [
            check.ok(
                f"socket {li.get('owner')}:{li.get('group')} {li.get('mode')}, "
                f"listened by {who or 'a process'}{listed(li)}",
                li.get("listen_lines", [])[:2],
            )
        ]
    port = Check("listener.port8000", 1, "TCP port 8000")
    if not li.get("port_listed_by"):
        out.append(port.skip(NOT_LISTED))
    elif li.get("port8000"):
        out.append(
            port.warn("something listens on :8000 (a gunicorn run by hand?)", li["port8000"])
        )
    else:
        out.append(port.skip("nothing on :8000; the unit binds a unix socket"))
    return out
