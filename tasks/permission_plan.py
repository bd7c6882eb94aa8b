"""fix-permissions' plan, pure: what the task may touch (the scope, system directories
refused) and the rules that, applied in order to each path's (mode, owner, group), give the
exact list of changes, before -> after. Executable bits of files are never added; a symlink,
a device or another owner's hard link is left alone. Paths are in tasks/remote/fd_permissions.py's
escaped form (`\\xHH` for a byte that is not printable UTF-8).
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from dataclasses import dataclass, replace

from tasks.checks import permissions
from tasks.errors import ConfigError
from tasks.remote.fd_permissions import escape
from tasks.settings import Settings

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
    "settings*.py",  # Django's settings hold SECRET_KEY and the database's password
    "secrets*",
    "*.key",
    "*.pem",
]
DATABASE_NAMES = ["*.sqlite3", "*.sqlite", "*.db"]
JOURNALS = ("", "-journal", "-wal", "-shm")  # a database's own name, and its journals'
DATABASE_FILES = [f"{db}{journal}" for journal in JOURNALS for db in DATABASE_NAMES]
SECRET_DEPTH = 3  # secrets are looked for this deep under the project (not in the venv)
# Directories on the way to the socket or the static files that are the system's: never given
# o+x (reported instead), except these, which every server lets everyone pass, and what is
# below /run (a socket's runtime directory: /run/gunicorn).
PASSABLE_SYSTEM_DIRS = ("/run", "/home")


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
    # The database file Django's settings name (the probe's), escaped: private whatever its name.
    database: str = ""


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


def scanned(path: str) -> str:
    """An absolute path as the scan names its entries (normalised, escaped)."""
    return _esc(_norm(path))


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


def _the_database(path: str, sc: Scope) -> bool:
    """The database the settings name, or one of its journals."""
    return bool(sc.database) and path in {sc.database + j for j in JOURNALS}


def _database_file(path: str, sc: Scope) -> bool:
    return _named(path, DATABASE_FILES) or _the_database(path, sc)


def _private_file(e: Entry, sc: Scope) -> bool:
    return e.kind == "f" and (
        _the_database(e.path, sc)
        or (
            _under(e.path, sc.project)
            and not _under(e.path, sc.venv)
            and _depth(e.path, sc.project) <= SECRET_DEPTH
            and _named(e.path, SECRET_NAMES + DATABASE_FILES)
        )
    )


def system_parent(path: str) -> bool:
    """A directory on the way that is the system's: fix-permissions never changes it."""
    p = _norm(path)
    return system_dir(p) and p not in PASSABLE_SYSTEM_DIRS and not p.startswith("/run/")


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
            and all(k.kind == "f" and _database_file(k.path, sc) for k in kids)
            and any(_named(k.path, DATABASE_NAMES) or k.path == sc.database for k in kids)
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
            mode = e.mode
            if e.group != g and e.kind in ("d", "f") and not _under(e.path, sc.static):
                # The group g is shared with the web server: regrouped, a path gives it no more
                # than it had as "other" (640 cynow:cynow ends 600, not readable by www-data).
                # The static rules below add what nginx needs there; passable the x on the way.
                mode = e.mode & ~0o070 | e.mode & (e.mode & 0o007) << 3
            return replace(e, user=u, group=g, mode=mode)

    def code_not_group_writable(e):
        # Code (the checkout, its venv) is the app user's alone to change: the web server,
        # in the shared group, must not rewrite a view or drop a module in. Logs and static
        # files are not code.
        if (
            e.kind in ("d", "f")
            and _under(e.path, sc.project)
            and not _under(e.path, sc.static)
            and not _under(e.path, sc.logs)
            and not is_private(e)
            and e.group == g
            and e.mode & 0o020
        ):
            return replace(e, mode=e.mode & ~0o020)

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
        # o+x: the traverse bit only, so www-data can pass without listing anything. Never a
        # system directory (/var/lib, /var/spool...): plan_all reports it instead.
        if e.kind == "d" and e.path in sc.traverse and not system_parent(e.path):
            bit = passage_bit(e, g)
            if not e.mode & bit:
                return replace(e, mode=e.mode | bit)

    return [
        (f"owned by {u}:{g}", owned),
        (f"code not writable by the group {g}", code_not_group_writable),
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


def passage_bit(e: Entry, group: str) -> int:
    """The bit that lets the web server through a directory: g+x in the app's group, else o+x."""
    return 0o010 if e.group == group else 0o001


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
    for path in sc.traverse:
        e = state.get(path)
        if e and e.kind == "d" and system_parent(path) and not e.mode & passage_bit(e, s.app_group):
            why = f"a system directory: not changed; {s.web_user} cannot pass it"
            left.append({"path": path, "why": why})
    return changes, state, left


def plan(entries: list[Entry], s: Settings, sc: Scope) -> tuple[list[Change], dict[str, Entry]]:
    """Every change, in order, and the state each path ends in. Pure."""
    changes, state, _ = plan_all(entries, s, sc)
    return changes, state


def trees(sc: Scope) -> list[str]:
    roots = (sc.project, sc.static, sc.logs)
    return sorted({t for t in roots if not any(t != o and _under(t, o) for o in roots)})
