"""`fab fix-permissions`: the guide's steps 5-6 without its `chmod -R 755`.

One read of the trees concerned (`find -printf`, NUL-separated), then a pure plan: the rules
below, applied in order to each path's (mode, owner, group), give the exact list of changes,
before -> after; `--dry-run` prints it, otherwise exactly those chown/chmod run, by path, and a
second read must find nothing left to change. Executable bits of files are never added.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import asdict, dataclass, field, replace

from fabric import task

from tasks import shell
from tasks.checks import permissions
from tasks.cli import COMMON_HELP, PARALLEL_HELP, console, each_host, emit, guarded, load
from tasks.errors import ConfigError
from tasks.fleet import parse_parallel
from tasks.runner import Remote
from tasks.settings import Settings

SCHEMA = "cynow-ops.fix-permissions.v1"
# Never changed recursively, whatever the configuration says.
SYSTEM_DIRS = {
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib64",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/www",
}
# Never readable by everyone: the secret, keys, the database (and its journals).
SECRET_NAMES = [
    ".env",
    ".env.*",
    "*.key",
    "*.pem",
    "*.sqlite3",
    "*.sqlite",
    "*.db",
    "*.sqlite3-journal",
    "*.sqlite3-wal",
]
DATABASE_NAMES = ["*.sqlite3", "*.sqlite", "*.db"]
CHUNK = 200  # paths per chown/chmod command line


@dataclass(frozen=True)
class Entry:
    path: str
    kind: str  # d, f, s (socket), l (link), ...
    mode: int
    user: str
    group: str

    def show(self) -> str:
        return f"{self.mode:o} {self.user}:{self.group}"


@dataclass
class Change:
    rule: str
    path: str
    before: str
    after: str


@dataclass
class Scope:
    project: str
    static: str
    logs: str
    socket: str
    traverse: list[str]


def scope(s: Settings) -> Scope:
    """What this task may touch: three trees recursively, single directories on the way."""
    logs = os.path.dirname(s.django_log)
    for key, path in (
        ("project_dir", s.project_dir),
        ("static_root", s.static_root),
        ("django_log's directory", logs),
    ):
        if path in SYSTEM_DIRS or path.count("/") < 2:
            raise ConfigError(
                f"refusing to change permissions under {path} ({key}): it is a "
                "system directory; point the setting at the app's own directory"
            )
    # Directories www-data must pass through, each alone: to the socket and the static files.
    traverse = sorted(
        (set(permissions.parents(s.socket)) | set(permissions.parents(s.static_root + "/x")))
        - {"/"}
    )
    return Scope(s.project_dir, s.static_root, logs, s.socket, traverse)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def _depth(path: str, root: str) -> int:
    return path[len(root) :].count("/")


def _named(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(os.path.basename(path), p) for p in patterns)


def rules(s: Settings, sc: Scope) -> list[tuple[str, callable]]:
    """(name, rule) in the order they apply; a rule maps an Entry to the Entry it should be,
    or None when it does not concern that path. Ownership comes first, so the mode rules see
    the final owner and group."""
    u, g = s.app_user, s.app_group
    trees = (sc.project, sc.static, sc.logs)

    def owned(e):
        if any(_under(e.path, t) for t in trees) and (e.user, e.group) != (u, g):
            return replace(e, user=u, group=g)

    def secret(e):
        if (
            e.kind == "f"
            and _under(e.path, sc.project)
            and _depth(e.path, sc.project) <= 3
            and _named(e.path, SECRET_NAMES)
            and e.mode & 0o007
        ):
            return replace(e, mode=e.mode & ~0o007)

    def database(e):
        if (
            e.kind == "f"
            and _under(e.path, sc.project)
            and _depth(e.path, sc.project) <= 3
            and _named(e.path, DATABASE_NAMES)
            and e.mode & 0o600 != 0o600
        ):
            return replace(e, mode=e.mode | 0o600)

    def own_dirs(e):
        if e.kind == "d" and e.path in (sc.project, sc.logs) and e.mode & 0o700 != 0o700:
            return replace(e, mode=e.mode | 0o700)

    def log_files(e):
        if e.kind == "f" and _under(e.path, sc.logs) and e.mode & 0o600 != 0o600:
            return replace(e, mode=e.mode | 0o600)

    def static_dirs(e):
        if e.kind == "d" and _under(e.path, sc.static) and e.mode & 0o050 != 0o050:
            return replace(e, mode=e.mode | 0o050)

    def static_files(e):
        if e.kind == "f" and _under(e.path, sc.static) and not e.mode & 0o040:
            return replace(e, mode=e.mode | 0o040)

    def sock(e):
        if e.kind == "s" and e.path == sc.socket and (e.mode & 0o777 != 0o660 or e.group != g):
            return replace(e, mode=(e.mode & ~0o777) | 0o660, group=g)

    def not_world_writable(e):
        if e.kind in ("d", "f") and any(_under(e.path, t) for t in trees) and e.mode & 0o002:
            return replace(e, mode=e.mode & ~0o002)

    def passable(e):
        # In the app's group, g+x is enough; a parent such as /home/cynow (cynow:cynow) gets
        # o+x: the traverse bit only, so www-data can pass without listing anything.
        if e.kind == "d" and e.path in sc.traverse:
            bit = 0o010 if e.group == g else 0o001
            if not e.mode & bit:
                return replace(e, mode=e.mode | bit)

    return [
        (f"owned by {u}:{g}", owned),
        ("secrets not readable by others", secret),
        ("nothing writable by everyone", not_world_writable),
        ("database writable by its owner", database),
        ("project and log directories writable by their owner", own_dirs),
        ("log files writable by their owner", log_files),
        ("static directories readable by the group", static_dirs),
        ("static files readable by the group", static_files),
        (f"socket srw-rw---- in {g}", sock),
        (f"{s.web_user} can pass through", passable),
    ]


def plan(entries: list[Entry], s: Settings, sc: Scope) -> tuple[list[Change], dict[str, Entry]]:
    """Every change, in order, and the state each path ends in. Pure."""
    state = {e.path: e for e in entries}
    changes = []
    for name, rule in rules(s, sc):
        for path in list(state):
            new = rule(state[path])
            if new is not None and new != state[path]:
                changes.append(Change(name, path, state[path].show(), new.show()))
                state[path] = new
    return changes, state


def read_command(sc: Scope) -> str:
    trees = [
        t
        for t in (sc.project, sc.static, sc.logs)
        if not any(t != o and _under(t, o) for o in (sc.project, sc.static, sc.logs))
    ]
    fmt = "'%m %u %g %y %p\\0'"
    return (
        f"find {' '.join(shell.q(t) for t in trees)} -printf {fmt} 2>/dev/null; "
        f"find {' '.join(shell.q(d) for d in sc.traverse)} -maxdepth 0 -printf {fmt} "
        "2>/dev/null; true"
    )


def parse_entries(text: str) -> list[Entry]:
    seen, out = set(), []
    for rec in text.split("\0"):
        parts = rec.lstrip("\n").split(" ", 4)
        if len(parts) != 5 or parts[4] in seen:
            continue
        mode, user, group, kind, path = parts
        seen.add(path)
        out.append(Entry(path, kind, int(mode, 8), user, group))
    return out


def apply_commands(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """chown/chmod of exactly the paths that change, grouped by their final value."""
    by_owner: dict[str, list[str]] = {}
    by_mode: dict[int, list[str]] = {}
    for path, new in after.items():
        old = before[path]
        if (new.user, new.group) != (old.user, old.group):
            by_owner.setdefault(f"{new.user}:{new.group}", []).append(path)
        if new.mode != old.mode and new.kind != "l":
            by_mode.setdefault(new.mode & 0o7777, []).append(path)
    cmds = []
    for owner, paths in by_owner.items():
        for i in range(0, len(paths), CHUNK):
            cmds.append(shell.join("chown", "-h", owner, "--", *paths[i : i + CHUNK]))
    for mode, paths in by_mode.items():
        for i in range(0, len(paths), CHUNK):
            cmds.append(shell.join("chmod", f"{mode:o}", "--", *paths[i : i + CHUNK]))
    return cmds


@dataclass
class Outcome:
    host: str
    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    remaining: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}


def fix_host(remote: Remote, dry_run: bool) -> Outcome:
    s = remote.settings
    sc = scope(s)
    entries = parse_entries(remote.run(read_command(sc), root=True).stdout)
    changes, final = plan(entries, s, sc)
    o = Outcome(remote.name, dry_run, changes)
    if dry_run or not changes:
        return o
    # Ownership first (chown clears setuid bits; modes are set after it).
    for cmd in apply_commands({e.path: e for e in entries}, final):
        out = remote.run(cmd, root=True, timeout=300)
        if not out.ok:
            o.errors.append((out.stderr.strip().splitlines() or ["failed"])[-1])
    again = parse_entries(remote.run(read_command(sc), root=True).stdout)
    o.remaining, _ = plan(again, s, sc)
    return o


def render(o: Outcome) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = console()
    if not o.changes:
        c.print(f"[green]{o.host}: permissions already right; nothing to change[/]")
        return
    verb = "would change" if o.dry_run else "changed"
    t = Table(
        "rule",
        "path",
        "before",
        "after",
        title=f"{o.host}: {verb} {len(o.changes)}",
        title_justify="left",
    )
    for ch in o.changes[:200]:
        t.add_row(escape(ch.rule), escape(ch.path), ch.before, ch.after)
    c.print(t)
    if len(o.changes) > 200:
        c.print(f"… and {len(o.changes) - 200} more (--json lists them all)")
    for e in o.errors:
        c.print(f"[red]error: {escape(e)}[/]")
    if o.remaining:
        c.print(f"[red]{len(o.remaining)} changes could not be made[/]")


@task(
    name="fix-permissions",
    help={
        **COMMON_HELP,
        **PARALLEL_HELP,
        "dry_run": "list each change (path, before -> after), change nothing",
    },
)
@guarded
def fix_permissions(c, dry_run=False, target=None, json=False, parallel=None):
    """Fix owners and modes for the socket, static files, database and logs (not chmod -R 755).

    The project, static and log trees owned by the app user and group; www-data can pass every
    directory on the way to the socket and the static files (x only); static files readable by
    the group; the database and its directory writable by the app user; secrets (.env, keys,
    the database) never readable by others; nothing writable by everyone; no executable bit
    added to a file; the socket
    srw-rw---- in the group. Touches nothing outside those trees but the single directories on
    the way. Idempotent: a second run changes nothing.
    Exit codes: 0 right afterwards (or --dry-run), 1 something could not be changed, 2 could
    not connect, 3 bad configuration (e.g. a system directory as project_dir).
    """
    settings = load(c, target)
    scope(settings)  # refuse a bad scope before connecting
    outcomes = each_host(
        c, settings, lambda r: fix_host(r, dry_run), render, json, parse_parallel(parallel)
    )
    emit(outcomes, SCHEMA, json, failed=lambda o: o.remaining or o.errors)
