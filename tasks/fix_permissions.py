"""`fab fix-permissions`: the guide's steps 5-6 without its `chmod -R 755`.

One read of the trees concerned, then a pure plan (tasks/permission_plan.py): the exact list of
changes, before -> after; `--dry-run` prints it, otherwise exactly those changes are made, and a
second read must find nothing left to change. Reading and changing are done as root by
tasks/remote/fd_permissions.py (tasks/permission_program.py builds its commands), which never
follows a symlink: one is reported as left alone, never changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from fabric import task

from tasks.common import COMMON_HELP, PARALLEL_HELP, console, each_host, emit, guarded, load
from tasks.fleet import parse_parallel
from tasks.permission_plan import Change, Scope, plan, plan_all, scanned, scope, trees
from tasks.permission_program import Scan, apply_commands, parse_scan, read_command, records
from tasks.runner import Remote
from tasks.settings import Settings

SCHEMA = "cynow-ops.fix-permissions.v1"


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


def database(remote: Remote, s: Settings) -> str:
    """The sqlite database file Django's settings name, as the probe reads them (run as the
    app user, tasks/checks/django.py); "" when the probe could not say. A name the app gives
    can only make a file of its own trees private: nothing outside them is read or changed."""
    from tasks.checks import django

    out = remote.run(django.probe_command(s), root=True, timeout=90)
    db = django.parse_probe(out.stdout).get("database") or {}
    name = str(db.get("name") or "")
    return scanned(name) if "sqlite" in str(db.get("engine")) and name.startswith("/") else ""


def foreign_roots(scan: Scan, s: Settings, sc: Scope) -> list[str]:
    """The trees' top directories the app user does not own: /var/spool/cron, /var/lib/dpkg,
    another user's home are no app's tree, whatever the configuration says."""
    by_path = {e.path: e for e in scan.entries}
    return [
        f"{t} ({by_path[t].user}:{by_path[t].group})"
        for t in trees(sc)
        if t in by_path and (by_path[t].kind != "d" or by_path[t].user != s.app_user)
    ]


def fix_host(remote: Remote, dry_run: bool, db: str | None = None) -> Outcome:
    """`db`: the database file the settings name (None: ask the Django probe)."""
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
    foreign = foreign_roots(first, s, sc)
    if foreign:
        o.errors.append(
            f"refusing to change permissions under {', '.join(foreign)}: not a directory "
            f"{s.app_user} owns; nothing changed (point the setting at the app's own directory, "
            f"or chown it to {s.app_user} by hand if it is the app's)"
        )
        return o
    web = first.accounts.get(s.web_user) or {}
    sc = replace(
        sc,
        private_group=str(me["group"]),
        web_group=str(web.get("group", "")),
        database=database(remote, s) if db is None else db,
    )
    o.changes, final, left = plan_all(first.entries, s, sc)
    o.leave(left)
    if dry_run or not o.changes:
        return o
    before = {e.path: e for e in first.entries}
    for cmd in apply_commands(before, final, s, sc):
        out = remote.run(cmd, root=True, timeout=300)
        recs = list(records(out.stdout))
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

    The project, static and log trees owned by the app user and group (a tree whose top the
    app user does not own is refused); a path regrouped gives the group no more than "other"
    had, and code is never group-writable; www-data can pass every directory on the way to
    the socket and the static files (x only; never a system directory: reported); static
    files readable by the group; secrets (.env*, *.env, settings*.py, local_settings.py,
    secrets*, keys) and the sqlite database (by name, and the one Django's settings name) and
    its own directory 0600/0640 in the app user's own primary group, never the web server's;
    nothing writable by everyone; no executable bit added to a file; the socket srw-rw---- in
    the group. Touches nothing outside those trees but the single directories on the way; a
    symlink is never followed nor changed (reported as left alone). Idempotent: a second run
    changes nothing.
    Exit codes: 0 right afterwards (or --dry-run), 1 something could not be changed, 2 could
    not connect, 3 bad configuration (e.g. a system directory as project_dir).
    """
    settings = load(c, target)
    scope(settings)  # refuse a bad scope before connecting
    outcomes = each_host(
        c, settings, lambda r: fix_host(r, dry_run), render, json, parse_parallel(parallel)
    )
    emit(outcomes, SCHEMA, json, failed=lambda o: o.remaining or o.errors)
