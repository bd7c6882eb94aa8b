"""fix-permissions on the server: tasks/remote/fd_permissions.py, run as root with the system
python, reads the trees (scan) and makes the planned changes (apply).

The trees belong to the app user, who could swap a file or a directory for a symlink between
the read and the change; that program walks with file descriptors (O_NOFOLLOW at every step)
and changes the object it checked, so root's change never lands outside the trees. This module
builds its commands (the spec compressed into one argument) and reads what it prints.
"""

from __future__ import annotations

import base64
import json as jsonlib
import zlib
from dataclasses import dataclass, field

from tasks import programs, shell
from tasks.permission_plan import Entry, Scope, trees
from tasks.settings import Settings

# Root's change is made by the system's python, isolated (-I: no PYTHON* variables, no user
# site, not the current directory on sys.path), never the app's venv, which the app user owns.
PYTHON = "/usr/bin/python3"
# One apply command carries at most this much compressed payload: the whole command is one
# argument of `sh -c` on the server (sudo's too), and Linux caps one argument at 128 KiB.
PAYLOAD_LIMIT = 64 * 1024


def _payload(spec: dict) -> str:
    return base64.b64encode(zlib.compress(jsonlib.dumps(spec).encode(), 9)).decode()


def program(mode: str, spec: dict) -> str:
    """tasks/remote/fd_permissions.py as root's command: the system python, isolated, no
    bytecode written; the spec as its one argument."""
    source = programs.source("fd_permissions")
    return f"{PYTHON} -I -B -c {shell.q(source)} {mode} {shell.q(_payload(spec))}"


def read_command(s: Settings, sc: Scope) -> str:
    return program(
        "scan",
        {"accounts": [s.app_user, s.web_user], "trees": trees(sc), "singles": sc.traverse},
    )


@dataclass
class Scan:
    entries: list[Entry] = field(default_factory=list)
    accounts: dict[str, dict] = field(default_factory=dict)
    left_alone: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def records(text: str):
    for line in text.splitlines():
        try:
            rec = jsonlib.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            yield rec


def parse_scan(text: str) -> Scan:
    out, seen = Scan(), set()
    for rec in records(text):
        if "account" in rec:
            out.accounts[str(rec["account"])] = rec
        elif "left_alone" in rec:
            out.left_alone.append({"path": str(rec["left_alone"]), "why": str(rec.get("why"))})
        elif "error" in rec:
            out.errors.append(f"{rec['error']}: {rec.get('why')}")
        elif "path" in rec and rec["path"] not in seen:
            seen.add(rec["path"])
            out.entries.append(
                Entry(
                    str(rec["path"]),
                    str(rec["kind"]),
                    int(rec["mode"]),
                    str(rec["user"]),
                    str(rec["group"]),
                    int(rec["uid"]),
                    int(rec["gid"]),
                    int(rec.get("links", 1)),
                )
            )
    return out


def apply_specs(before: dict[str, Entry], after: dict[str, Entry]) -> list[dict]:
    """The change of each path that changes: its kind and state as read (the server changes
    nothing that is no longer so), and its final mode and owner."""
    out = []
    for path, new in after.items():
        old = before[path]
        if (new.mode, new.user, new.group) == (old.mode, old.user, old.group):
            continue
        out.append(
            {
                "path": path,
                "kind": old.kind,
                "before": [old.mode, old.uid, old.gid] if old.uid >= 0 else None,
                "mode": new.mode & 0o7777,
                "user": new.user,
                "group": new.group,
            }
        )
    return out


def apply_commands(
    before: dict[str, Entry], after: dict[str, Entry], s: Settings, sc: Scope
) -> list[str]:
    """The apply program's commands for exactly the paths that change, each command's payload
    under PAYLOAD_LIMIT."""
    base = {"roots": trees(sc), "singles": sc.traverse, "app_user": s.app_user}
    pending, cmds = apply_specs(before, after), []
    while pending:
        n = len(pending)
        while n > 1 and len(_payload({**base, "changes": pending[:n]})) > PAYLOAD_LIMIT:
            n //= 2
        cmds.append(program("apply", {**base, "changes": pending[:n]}))
        pending = pending[n:]
    return cmds
