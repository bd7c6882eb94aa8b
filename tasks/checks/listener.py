"""Guide step 5 (socket) and step 1's port check: does anything listen where nginx connects?"""

from __future__ import annotations

import re

from tasks import parse
from tasks.checks.base import FAIL, OK, SKIPPED, WARN, Facts, Finding, result
from tasks.settings import Settings


def parse_listener(stdout: str) -> dict:
    sections = parse.sections(stdout, ["--listen--", "--port8000--", "--namei--"])
    stat = sections[""].strip()
    m = re.match(r"type=(.+?) owner=(\S+) group=(\S+) mode=(\d+)", stat)
    info: dict = {"exists": bool(m)}
    if m:
        info.update(type=m.group(1), owner=m.group(2), group=m.group(3), mode=m.group(4))
    else:
        info["error"] = stat
    # Only a socket some process holds is listened on: after the master is killed the kernel
    # can still list the old socket without a process for a moment.
    listen = [ln for ln in sections["--listen--"].splitlines() if "users:((" in ln]
    info["listening"] = bool(listen)
    info["listen_lines"] = listen
    info["owners"] = re.findall(r'\("([^"]+)",pid=(\d+)', " ".join(listen))
    info["port8000"] = [ln for ln in sections["--port8000--"].splitlines() if ln.strip()]
    info["namei"] = [ln for ln in sections["--namei--"].splitlines() if ln.strip()]
    return info


def evaluate(facts: Facts, s: Settings) -> list:
    li = facts.listener
    title = f"socket {s.socket}"
    out = []
    if not li.get("exists"):
        out.append(
            result(
                "listener.socket",
                5,
                title,
                FAIL,
                "no socket file: nothing serves the path nginx connects to",
                [li.get("error", "")],
            )
        )
    elif li.get("type") != "socket":
        out.append(
            result(
                "listener.socket",
                5,
                title,
                FAIL,
                f"exists but is a {li.get('type')}",
                [f"{s.socket}: {li.get('type')}"],
                [
                    Finding(
                        "stale_socket",
                        [f"{s.socket} is a {li.get('type')}, not a socket"],
                        [f"sudo rm -f {s.socket}", f"sudo systemctl restart {s.gunicorn_unit}"],
                    )
                ],
            )
        )
    elif not li.get("listening"):
        ev = [
            f"{s.socket}: socket {li.get('owner')}:{li.get('group')} {li.get('mode')}",
            "ss -xl: no process listens on it",
        ]
        out.append(
            result(
                "listener.socket",
                5,
                title,
                FAIL,
                "stale: the file exists but nobody listens (master killed?)",
                ev,
                [
                    Finding(
                        "stale_socket",
                        ev,
                        [f"sudo rm -f {s.socket}", f"sudo systemctl restart {s.gunicorn_unit}"],
                    )
                ],
            )
        )
    else:
        who = ", ".join(f"{name} (pid {pid})" for name, pid in li.get("owners", [])[:1])
        out.append(
            result(
                "listener.socket",
                5,
                title,
                OK,
                f"socket {li.get('owner')}:{li.get('group')} {li.get('mode')}, "
                f"listened by {who or 'a process'}",
                li.get("listen_lines", [])[:2],
            )
        )
    port = li.get("port8000", [])
    if port:
        out.append(
            result(
                "listener.port8000",
                1,
                "TCP port 8000",
                WARN if port else OK,
                "something listens on :8000 (a gunicorn run by hand?)",
                port,
            )
        )
    else:
        out.append(
            result(
                "listener.port8000",
                1,
                "TCP port 8000",
                SKIPPED,
                "nothing on :8000; the unit binds a unix socket",
            )
        )
    return out
