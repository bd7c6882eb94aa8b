"""Guide step 6: can www-data reach the socket and read the static files; can the app user write
its database?"""

from __future__ import annotations

from tasks.checks.base import WEB, Check, Fact, Facts
from tasks.guide import operand, sudo
from tasks.settings import Settings
from tasks.shell import batch, q, say


def parents(path: str) -> list[str]:
    """Every directory above a path, from the root down: what www-data must traverse."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def permissions_command(s: Settings, _facts=None) -> str:
    """What the web server's user can reach; run *as that user* (modes alone can lie: ACLs,
    supplementary groups)."""
    # A TCP bind has no file for www-data to reach: only the static files' directories count.
    sock_dirs = [] if s.tcp else parents(s.socket)
    dirs = sorted(set(sock_dirs) | set(parents(s.static_root + "/x")))
    root = q(s.static_root)
    socket = (
        "true"
        if s.tcp
        else f"if test -w {q(s.socket)}; then echo writable; else echo not-writable; fi"
    )
    return batch(
        {
            "traverse": "\n".join(
                # A directory that is not there is not one www-data is denied (a RuntimeDirectory=
                # is removed while the service is stopped); below a denied one, all look absent.
                f"if test -x {q(d)}; then {say('ok', d)}; elif test -e {q(d)}; then "
                f"{say('denied', d)}; else {say('missing', d)}; fi"
                for d in dirs
            ),
            "socket": socket,
            # From /: find goes back to its starting directory, and the login's home (0700 on
            # Debian 13) is one www-data cannot enter ("Failed to restore initial working
            # directory"), which is no fault of the static files.
            "unreadable": f"cd / && find {root} "
            "\\( -type d \\( ! -executable -o ! -readable \\) -o -type f ! -readable \\) "
            "-printf '%M %u:%g %p\\n' 2>&1 | head -n 20",
            # One byte a file: a file name holding a newline is still one file.
            "count": f"cd / && find {root} -type f -printf . 2>/dev/null | wc -c",
        }
    )


def parse_permissions(parts: dict, _s=None) -> dict:
    out: dict = {"traverse": {}, "missing": [], "unreadable": [], "errors": []}
    for line in parts["traverse"].text.splitlines():
        verdict, _, path = line.partition(" ")
        if verdict == "missing":
            out["missing"].append(path)
        else:
            out["traverse"][path] = verdict == "ok"
    if parts["socket"].text.strip():
        out["socket_writable"] = parts["socket"].text.strip() == "writable"
    for line in parts["unreadable"].text.splitlines():
        (out["errors"] if line.startswith("find: ") else out["unreadable"]).append(line)
    count = parts["count"].text.strip()
    if count.isdigit():
        out["static_files"] = int(count)
    return out


FACTS = [Fact("permissions", permissions_command, parse_permissions, identity=WEB, framed=True)]


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
    check = Check("permissions.socket", 6, f"{s.web_user} reaches the socket")
    if s.tcp:
        return check.skip(f"gunicorn listens on TCP {s.tcp}: no socket file to reach")
    blocked = _blocked(p.get("traverse", {}), s.socket)
    if blocked:
        ev = [
            f"{s.web_user} cannot traverse {_mode_of(facts.listener.get('namei', []), d)}"
            for d in blocked
        ]
        fix = [sudo("chmod", "o+x", d) + f"  # or chgrp {s.app_group} + g+x" for d in blocked]
        return check.failure("socket_permission_denied", ev, fix)
    if facts.listener.get("exists") and p.get("socket_writable") is False:
        li = facts.listener
        ev = [
            f"{s.socket}: {li.get('owner')}:{li.get('group')} mode {li.get('mode')}: "
            f"{s.web_user} cannot write (connect to) it"
        ]
        return check.failure(
            "socket_permission_denied",
            ev,
            [
                sudo("chgrp", s.app_group, s.socket) + " && " + sudo("chmod", "660", s.socket),
                "or set the unit's Group and --umask so it is created that way",
            ],
        )
    missing = [d for d in p.get("missing", []) if (s.socket + "/").startswith(d + "/")]
    if missing:
        return check.skip(
            f"{missing[0]} does not exist: no socket to reach until the service makes it"
        )
    if not facts.listener.get("exists"):
        return check.ok("every parent directory is traversable (no socket file to test)")
    mode = facts.listener.get("mode", "")
    if mode.isdigit() and int(mode, 8) & 0o007:
        # Any local user can then talk to gunicorn directly, past nginx; the guide asks 660.
        li = facts.listener
        return check.warn(
            f"{s.socket} is mode {mode}: every local user can connect to the app, bypassing nginx",
            [
                f"{s.socket}: {li.get('owner')}:{li.get('group')} mode {mode}",
                "fix: " + sudo("chmod", "660", s.socket),
                "and the unit's --umask 007 (or its socket unit's SocketMode=0660), so the next "
                "start creates it that way",
            ],
        )
    return check.ok("every parent directory traversable, socket writable")


def static_access(facts: Facts, s: Settings):
    p = facts.permissions
    check = Check("permissions.static", 6, f"{s.web_user} reads static files")
    blocked = _blocked(p.get("traverse", {}), s.static_root + "/x")
    bad = p.get("unreadable", []) + [e for e in p.get("errors", []) if "Permission denied" in e]
    if blocked or bad:
        ev = [f"{s.web_user} cannot traverse {d}" for d in blocked] + bad[:8]
        fix = [sudo("chmod", "o+x", d) for d in blocked] + (
            [sudo("chmod", "-R", "o+rX", s.static_root)] if bad else []
        )
        return check.failure("static_unreadable", ev, fix)
    if any("No such file" in e for e in p.get("errors", [])) or not p.get("static_files"):
        return check.warn(
            f"{s.static_root} is missing or empty: collectstatic has not run",
            p.get("errors", [])[:2],
        )
    return check.ok(f"{p.get('static_files')} files under {s.static_root}, all readable")


def database_access(facts: Facts, s: Settings):
    db = facts.probe.get("database")
    check = Check("permissions.database", 6, f"{s.app_user} writes the database", reads=("probe",))
    if not db:
        return check.skip("unknown: Django settings did not load")
    if "sqlite" not in db.get("engine", ""):
        return check.skip(f"{db.get('engine')}: not a file database")
    if not db.get("exists"):
        return check.warn(f"{db['name']} does not exist (migrate creates it)")
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
        # The names come from the server's Django settings: any text, quoted.
        files = [operand(str(p)) for p in (db["name"], db.get("dir")) if p]
        fix = [
            sudo("chown", f"{s.app_user}:{s.app_group}", *files),
            sudo("chmod", "u+w", *files),
        ]
        return check.failure("database_unwritable", problems, fix)
    return check.ok(f"{db['name']} and its directory writable")


def evaluate(facts: Facts, s: Settings) -> list:
    return [socket_access(facts, s), static_access(facts, s), database_access(facts, s)]
