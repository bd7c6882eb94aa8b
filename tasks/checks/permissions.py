"""Guide step 6: can www-data reach the socket and read the static files; can the app user write
its database?"""

from __future__ import annotations

from tasks.checks.base import FAIL, OK, SKIPPED, WARN, Facts, Finding, failure, result
from tasks.settings import Settings


def parse_permissions(stdout: str) -> dict:
    out: dict = {"traverse": {}, "unreadable": [], "errors": []}
    for line in stdout.splitlines():
        if line.startswith("traverse "):
            _, verdict, path = line.split(" ", 2)
            out["traverse"][path] = verdict == "ok"
        elif line.startswith("socket "):
            out["socket_writable"] = line.endswith(" writable")
        elif line.startswith("unreadable "):
            out["unreadable"].append(line[len("unreadable ") :])
        elif line.startswith("static_files="):
            out["static_files"] = int(line.split("=", 1)[1] or 0)
        elif line.startswith("find: "):
            out["errors"].append(line)
    return out


def _mode_of(namei: list[str], path: str) -> str:
    """The `namei -l` line for one directory (mode owner group name), for evidence."""
    name = path.rstrip("/").rsplit("/", 1)[-1] or "/"
    for line in namei:
        parts = line.split()
        if len(parts) >= 4 and parts[-1] == name:
            return f"{parts[0]} {parts[1]}:{parts[2]} {path}"
    return path


def _blocked(dirs: dict, under: str) -> list[str]:
    return [d for d, ok in dirs.items() if not ok and (under + "/").startswith(d + "/")]


def socket_access(facts: Facts, s: Settings):
    p = facts.permissions
    title = f"{s.web_user} reaches the socket"
    blocked = _blocked(p.get("traverse", {}), s.socket)
    if blocked:
        ev = [
            f"{s.web_user} cannot traverse {_mode_of(facts.listener.get('namei', []), d)}"
            for d in blocked
        ]
        fix = [f"sudo chmod o+x {d}  # or chgrp {s.app_group} + g+x" for d in blocked]
        return failure("permissions.socket", 6, title, "socket_permission_denied", ev, fix)
    if facts.listener.get("exists") and p.get("socket_writable") is False:
        li = facts.listener
        ev = [
            f"{s.socket}: {li.get('owner')}:{li.get('group')} mode {li.get('mode')}: "
            f"{s.web_user} cannot write (connect to) it"
        ]
        return result(
            "permissions.socket",
            6,
            title,
            FAIL,
            ev[0],
            ev,
            [
                Finding(
                    "socket_permission_denied",
                    ev,
                    [
                        f"sudo chgrp {s.app_group} {s.socket} && sudo chmod 660 {s.socket}",
                        "or set the unit's Group and --umask so it is created that way",
                    ],
                )
            ],
        )
    if not facts.listener.get("exists"):
        return result(
            "permissions.socket",
            6,
            title,
            OK,
            "every parent directory is traversable (no socket file to test)",
        )
    return result(
        "permissions.socket", 6, title, OK, "every parent directory traversable, socket writable"
    )


def static_access(facts: Facts, s: Settings):
    p = facts.permissions
    title = f"{s.web_user} reads static files"
    blocked = _blocked(p.get("traverse", {}), s.static_root + "/x")
    bad = p.get("unreadable", []) + [e for e in p.get("errors", []) if "Permission denied" in e]
    if blocked or bad:
        ev = [f"{s.web_user} cannot traverse {d}" for d in blocked] + bad[:8]
        fix = [f"sudo chmod o+x {d}" for d in blocked] + (
            [f"sudo chmod -R o+rX {s.static_root}"] if bad else []
        )
        return result(
            "permissions.static", 6, title, FAIL, ev[0], ev, [Finding("static_unreadable", ev, fix)]
        )
    if any("No such file" in e for e in p.get("errors", [])) or not p.get("static_files"):
        return result(
            "permissions.static",
            6,
            title,
            WARN,
            f"{s.static_root} is missing or empty: collectstatic has not run",
            p.get("errors", [])[:2],
        )
    return result(
        "permissions.static",
        6,
        title,
        OK,
        f"{p.get('static_files')} files under {s.static_root}, all readable",
    )


def database_access(facts: Facts, s: Settings):
    db = facts.probe.get("database")
    title = f"{s.app_user} writes the database"
    if not db:
        return result(
            "permissions.database", 6, title, SKIPPED, "unknown: Django settings did not load"
        )
    if "sqlite" not in db.get("engine", ""):
        return result(
            "permissions.database", 6, title, SKIPPED, f"{db.get('engine')}: not a file database"
        )
    if not db.get("exists"):
        return result(
            "permissions.database",
            6,
            title,
            WARN,
            f"{db['name']} does not exist (migrate creates it)",
        )
    problems = []
    if not db.get("writable"):
        problems.append(
            f"{db['name']} ({db.get('file_stat', '?')}) is not writable by {s.app_user}"
        )
    if not db.get("dir_writable"):
        problems.append(
            f"{db.get('dir')} ({db.get('dir_stat', '?')}) is not writable by "
            f"{s.app_user}: sqlite needs it for its journal"
        )
    if problems:
        fix = [
            f"sudo chown {s.app_user}:{s.app_group} {db['name']} {db.get('dir')}",
            f"sudo chmod u+w {db['name']} {db.get('dir')}",
        ]
        return result(
            "permissions.database",
            6,
            title,
            FAIL,
            problems[0],
            problems,
            [Finding("database_unwritable", problems, fix)],
        )
    return result("permissions.database", 6, title, OK, f"{db['name']} and its directory writable")


def evaluate(facts: Facts, s: Settings) -> list:
    return [socket_access(facts, s), static_access(facts, s), database_access(facts, s)]
