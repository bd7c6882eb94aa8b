"""`fab fix-permissions`: the guide's steps 5-6 without its `chmod -R 755`.

One read of the trees concerned, then a pure plan: the rules below, applied in order to each
path's (mode, owner, group), give the exact list of changes, before -> after; `--dry-run` prints
it, otherwise exactly those changes are made, and a second read must find nothing left to
change. Executable bits of files are never added.

Reading and changing are done by tasks/remote/fd_permissions.py, run as root with the system
python: the trees belong to the app user, who could swap a file or a directory for a symlink
between the read and the change; that program walks with file descriptors (O_NOFOLLOW at every
step) and changes the object it checked, so root's change never lands outside the trees. A
symlink is reported as left alone, never changed. Paths are bytes on the server and travel in
that program's escaped form (`\\xHH` for a byte that is not printable UTF-8).
"""

from __future__ import annotations

import base64
import fnmatch
import json as jsonlib
import os
import posixpath
import zlib
from dataclasses import asdict, dataclass, field, replace

from fabric import task

from tasks import programs, shell
from tasks.checks import permissions
from tasks.common import COMMON_HELP, PARALLEL_HELP, console, each_host, emit, guarded, load
from tasks.errors import ConfigError
from tasks.fleet import parse_parallel
from tasks.remote.fd_permissions import escape
from tasks.runner import Remote
from tasks.settings import Settings

SCHEMA = "cynow-ops.fix-permissions.v1"
# Root's change is made by the system's python, isolated (-I: no PYTHON* variables, no user
# site, not the current directory on sys.path), never the app's venv, which the app user owns.
PYTHON = "/usr/bin/python3"
# Never changed recursively, whatever the configuration says: these directories themselves
# (an app may live below them: /home/cynow/cynow, /srv/cynow, /var/lib/cynow)...
SYSTEM_DIRS = {
    "/",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/srv",
    "/tmp",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/mail",
    "/var/spool",
    "/var/tmp",
    "/var/www",
}
# ...and these with everything below them: the system's own files (/etc/nginx, /usr/local),
# the kernel's views, root's home. /lib* is every top-level lib directory (lib32, lib64, ...).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/proc", "/root", "/run", "/sbin", "/sys", "/usr")
# Never readable by the web server: settings that hold keys, keys, the sqlite database and its
# journals. They end 0600 (0640 when the group could read them) in the app user's own primary
# group, not the shared group: nginx (www-data) never needs them, only gunicorn (the owner) does.
SECRET_NAMES = [
    ".env",
    ".env*",
    "*.env",
    "local_settings.py",
    "secrets*",
    "*.key",
    "*.pem",
]
DATABASE_NAMES = ["*.sqlite3", "*.sqlite", "*.db"]
DATABASE_FILES = DATABASE_NAMES + [
    f"{db}{journal}" for db in DATABASE_NAMES for journal in ("-journal", "-wal", "-shm")
]
SECRET_DEPTH = 3  # secrets are looked for this deep under the project (not in the venv)
# One apply command carries at most this much compressed payload: the whole command is one
# argument of `sh -c` on the server (sudo's too), and Linux caps one argument at 128 KiB.
PAYLOAD_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Entry:
    path: str  # escaped (tasks/remote/fd_permissions.py)
    kind: str  # d, f, s (socket), l (link), p (fifo), b, c
    mode: int
    user: str
    group: str
    uid: int = -1  # as read; -1 when unknown (then the server does not check them)
    gid: int = -1
    links: int = 1

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
    venv: str = ""
    # The app user's primary group (read on the server): the group of its secrets.
    private_group: str = ""
    # The web server user's primary group: never the group of a secret.
    web_group: str = ""


def _norm(path: str) -> str:
    """A path as the server program walks it: '.', '..' and doubled slashes resolved by name
    (no symlink is ever followed, so the names are the path)."""
    return "/" + posixpath.normpath(path).lstrip("/") if path else path


def system_dir(path: str) -> bool:
    p = _norm(path)
    top = p.split("/")[1]
    return (
        p in SYSTEM_DIRS
        or p.count("/") < 2  # any top-level directory
        or fnmatch.fnmatch(top, "lib*")
        or any(p == t or p.startswith(t + "/") for t in SYSTEM_TREES)
    )


def _esc(path: str) -> str:
    return escape(os.fsencode(path))


def scope(s: Settings) -> Scope:
    """What this task may touch: three trees recursively, single directories on the way."""
    logs = os.path.dirname(_norm(s.django_log))
    for key, path in (
        ("project_dir", s.project_dir),
        ("static_root", s.static_root),
        ("django_log's directory", logs),
    ):
        if system_dir(path):
            raise ConfigError(
                f"refusing to change permissions under {_norm(path)} ({key}): it is a "
                "system directory; point the setting at the app's own directory"
            )
    # A TCP bind has no socket file to own or to reach.
    sock, static = ("" if s.tcp else _norm(s.socket)), _norm(s.static_root)
    # Directories www-data must pass through, each alone: to the socket and the static files.
    traverse = sorted(
        (set(permissions.parents(sock)) | set(permissions.parents(static + "/x"))) - {"/"}
    )
    return Scope(
        _esc(_norm(s.project_dir)),
        _esc(static),
        _esc(logs),
        _esc(sock),
        [_esc(d) for d in traverse],
        _esc(_norm(s.venv)),
    )


def _under(path: str, root: str) -> bool:
    return bool(root) and (path == root or path.startswith(root + "/"))


def _depth(path: str, root: str) -> int:
    return path[len(root) :].count("/")


def _named(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(posixpath.basename(path), p) for p in patterns)


def _private_file(e: Entry, sc: Scope) -> bool:
    return (
        e.kind == "f"
        and _under(e.path, sc.project)
        and not _under(e.path, sc.venv)
        and _depth(e.path, sc.project) <= SECRET_DEPTH
        and _named(e.path, SECRET_NAMES + DATABASE_FILES)
    )


def private_dirs(entries: list[Entry], sc: Scope) -> set[str]:
    """The database's own directory: one below the project (not the project, static or log
    directory) that holds database files and nothing else."""
    children: dict[str, list[Entry]] = {}
    for e in entries:
        children.setdefault(posixpath.dirname(e.path), []).append(e)
    out = set()
    for e in entries:
        kids = children.get(e.path, [])
        if (
            e.kind == "d"
            and _under(e.path, sc.project)
            and e.path not in (sc.project, sc.static, sc.logs)
            and not _under(e.path, sc.venv)
            and not _under(e.path, sc.static)
            and _depth(e.path, sc.project) < SECRET_DEPTH
            and kids
            and all(k.kind == "f" and _named(k.path, DATABASE_FILES) for k in kids)
            and any(_named(k.path, DATABASE_NAMES) for k in kids)
        ):
            out.add(e.path)
    return out


def rules(s: Settings, sc: Scope, private: set[str] = frozenset()) -> list[tuple[str, callable]]:
    """(name, rule) in the order they apply; a rule maps an Entry to the Entry it should be,
    or None when it does not concern that path. Ownership comes first, so the mode rules see
    the final owner and group. `private`: the database's own directories."""
    u, g = s.app_user, s.app_group
    pg = sc.private_group or u  # Debian's adduser: a user's primary group is its own name
    # A primary group shared with the web server reads nothing: secrets then get no group bits.
    shared = pg in {g, s.web_user, sc.web_group}
    trees = (sc.project, sc.static, sc.logs)

    def is_private(e):
        return e.path in private or _private_file(e, sc)

    def owned(e):
        if (
            any(_under(e.path, t) for t in trees)
            and not is_private(e)
            and (e.user, e.group) != (u, g)
        ):
            return replace(e, user=u, group=g)

    def private_owner(e):
        if is_private(e) and (e.user, e.group) != (u, pg):
            return replace(e, user=u, group=pg)

    def private_files(e):
        # 0600, or 0640 when the group could read it already (the group is the user's own):
        # the owner reads and writes (the database), nobody else, nothing executable.
        if e.kind == "f" and is_private(e):
            mode = 0o600 | (0 if shared else e.mode & 0o040)
            if e.mode != mode:
                return replace(e, mode=mode)

    def private_dir(e):
        if e.kind == "d" and e.path in private:
            mode = 0o700 | (0o050 if e.mode & 0o040 and not shared else 0)
            if e.mode != mode:
                return replace(e, mode=mode)

    def own_dirs(e):
        if e.kind == "d" and e.path in (sc.project, sc.logs) and e.mode & 0o700 != 0o700:
            return replace(e, mode=e.mode | 0o700)

    def log_files(e):
        if e.kind == "f" and _under(e.path, sc.logs) and e.mode & 0o600 != 0o600:
            return replace(e, mode=e.mode | 0o600)

    def static_dirs(e):
        if (
            e.kind == "d"
            and _under(e.path, sc.static)
            and not is_private(e)
            and e.mode & 0o050 != 0o050
        ):
            return replace(e, mode=e.mode | 0o050)

    def static_files(e):
        if e.kind == "f" and _under(e.path, sc.static) and not is_private(e) and not e.mode & 0o040:
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
        (f"secrets and the database owned by {u}:{pg}", private_owner),
        ("secrets and the database 0600/0640", private_files),
        ("the database's directory 0700/0750", private_dir),
        ("nothing writable by everyone", not_world_writable),
        ("project and log directories writable by their owner", own_dirs),
        ("log files writable by their owner", log_files),
        ("static directories readable by the group", static_dirs),
        ("static files readable by the group", static_files),
        (f"socket srw-rw---- in {g}", sock),
        (f"{s.web_user} can pass through", passable),
    ]


def untouchable(e: Entry, s: Settings) -> str | None:
    """Why a path is never changed, whatever the rules say."""
    if e.kind == "l":
        return "symlink"  # chmod would follow it; its own owner and mode mean nothing
    if e.kind in ("b", "c"):
        return "device"
    if e.kind != "d" and e.links > 1 and e.user != s.app_user:
        # Another name of a file someone else owns: changing it changes that file too.
        return "hard link"
    return None


def plan_all(
    entries: list[Entry], s: Settings, sc: Scope
) -> tuple[list[Change], dict[str, Entry], list[dict]]:
    """Every change, in order; the state each path ends in; and the paths left alone that a
    rule would have changed ({"path", "why"}). Pure."""
    private = private_dirs(entries, sc)
    state = {e.path: e for e in entries}
    changes, left = [], []
    applied = rules(s, sc, private)
    for path, e in list(state.items()):
        why = untouchable(e, s)
        if why:
            del state[path]
            if any(rule(e) not in (None, e) for _, rule in applied):
                left.append({"path": path, "why": why})
    for name, rule in applied:
        for path in list(state):
            new = rule(state[path])
            if new is not None and new != state[path]:
                changes.append(Change(name, path, state[path].show(), new.show()))
                state[path] = new
    for e in entries:
        state.setdefault(e.path, e)  # left alone: ends as it is
    return changes, state, left


def plan(entries: list[Entry], s: Settings, sc: Scope) -> tuple[list[Change], dict[str, Entry]]:
    """Every change, in order, and the state each path ends in. Pure."""
    changes, state, _ = plan_all(entries, s, sc)
    return changes, state


def trees(sc: Scope) -> list[str]:
    roots = (sc.project, sc.static, sc.logs)
    return sorted({t for t in roots if not any(t != o and _under(t, o) for o in roots)})


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


def _records(text: str):
    for line in text.splitlines():
        try:
            rec = jsonlib.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            yield rec


def parse_scan(text: str) -> Scan:
    out, seen = Scan(), set()
    for rec in _records(text):
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


@dataclass
class Outcome:
    host: str
    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    remaining: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Paths not changed on purpose ({"path", "why"}): a symlink, a hard link to another
    # owner's file, something that changed since the read.
    left_alone: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}

    def leave(self, items: list[dict]) -> None:
        for item in items:
            if item not in self.left_alone:
                self.left_alone.append(item)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["failed"])[-1]


def read(remote: Remote, s: Settings, sc: Scope) -> Scan:
    out = remote.run(read_command(s, sc), root=True, timeout=300)
    got = parse_scan(out.stdout)
    if s.app_user not in got.accounts:  # the first line: without it, nothing was read
        got.errors.append(f"could not read the trees: {_last_line(out.stderr)}")
    return got


def fix_host(remote: Remote, dry_run: bool) -> Outcome:
    s = remote.settings
    sc = scope(s)
    first = read(remote, s, sc)
    o = Outcome(remote.name, dry_run, errors=list(first.errors))
    o.leave(first.left_alone)
    me = first.accounts.get(s.app_user)
    if not me:
        return o
    if me.get("missing"):
        o.errors.append(f"no user {s.app_user} on {remote.name}: nothing changed")
        return o
    web = first.accounts.get(s.web_user) or {}
    sc = replace(sc, private_group=str(me["group"]), web_group=str(web.get("group", "")))
    o.changes, final, left = plan_all(first.entries, s, sc)
    o.leave(left)
    if dry_run or not o.changes:
        return o
    before = {e.path: e for e in first.entries}
    for cmd in apply_commands(before, final, s, sc):
        out = remote.run(cmd, root=True, timeout=300)
        recs = list(_records(out.stdout))
        o.leave(
            [
                {"path": str(r["left_alone"]), "why": str(r.get("why"))}
                for r in recs
                if "left_alone" in r
            ]
        )
        errors = [f"{r['error']}: {r.get('why')}" for r in recs if "error" in r]
        if not out.ok and not errors:
            errors = [_last_line(out.stderr)]
        o.errors += errors
    again = read(remote, s, sc)
    o.errors += [e for e in again.errors if e not in o.errors]
    o.remaining, _ = plan(again.entries, s, sc)
    return o


def render(o: Outcome) -> None:
    from rich.markup import escape as markup
    from rich.table import Table

    c = console()
    if not o.changes and not o.errors:
        c.print(f"[green]{o.host}: permissions already right; nothing to change[/]")
    elif o.changes:
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
            t.add_row(markup(ch.rule), markup(ch.path), ch.before, ch.after)
        c.print(t)
        if len(o.changes) > 200:
            c.print(f"… and {len(o.changes) - 200} more (--json lists them all)")
    for item in o.left_alone:
        c.print(f"[yellow]left alone: {markup(item['why'])}: {markup(item['path'])}[/]")
    for e in o.errors:
        c.print(f"[red]error: {markup(e)}[/]")
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
    the group; secrets (.env*, *.env, local_settings.py, secrets*, keys) and the sqlite
    database (and its own directory) 0600/0640 in the app user's own primary group, never the
    web server's; nothing writable by everyone; no executable bit added to a file; the socket
    srw-rw---- in the group. Touches nothing outside those trees but the single directories on
    the way; a symlink is never followed nor changed (reported as left alone). Idempotent: a
    second run changes nothing.
    Exit codes: 0 right afterwards (or --dry-run), 1 something could not be changed, 2 could
    not connect, 3 bad configuration (e.g. a system directory as project_dir).
    """
    settings = load(c, target)
    scope(settings)  # refuse a bad scope before connecting
    outcomes = each_host(
        c, settings, lambda r: fix_host(r, dry_run), render, json, parse_parallel(parallel)
    )
    emit(outcomes, SCHEMA, json, failed=lambda o: o.remaining or o.errors)
