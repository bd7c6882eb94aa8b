"""`fab repair`: diagnose, apply the fix of each cause it can fix in a safe order (asking first,
unless --yes), diagnose again and show before -> after.

What to do for a cause is a pure plan (`plan_repairs`); causes that need a human (a syntax error
in the code, an invalid nginx config, a unit naming a missing program) are explained with their
evidence and left untouched.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

from fabric import task

from tasks import app as app_cmd
from tasks import guide, lock, notify, restart, snapshots, systemd, tools
from tasks.causes import BY_HAND, REPAIRS
from tasks.common import COMMON_HELP, console, each_host, emit, guarded, load
from tasks.diagnose import Report, diagnose_host
from tasks.errors import ConfigError
from tasks.fix_permissions import fix_host
from tasks.runner import Remote
from tasks.settings import Settings
from tasks.steps.health import health
from tasks.text import markup

SCHEMA = "cynow-ops.repair.v1"


@dataclass
class Action:
    """One change: what it is for, and the commands (run in order, as whom)."""

    key: str
    title: str
    causes: list[str]
    commands: list[tuple[str, str]] = field(default_factory=list)  # (identity, command)
    ok: bool | None = None
    output: str = ""
    skipped: str = ""


def actions_for(s: Settings) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Every action repair knows, in the safe order it applies them: (key, title, commands as
    (identity, command)). Which causes each fixes is tasks/causes.py's `repair` column."""
    unit, app = s.gunicorn_unit, s.app_user
    # The deploy's own builders: one spelling of pip and manage.py, the configured requirements.
    pip = app_cmd.pip_install(s.project_dir, s.venv, s.requirements)
    return [
        ("permissions", "fix owners and modes (fab fix-permissions)", []),
        (
            "daemon-reload",
            "make systemd read the changed unit",
            [("root", systemd.systemctl("daemon-reload", unit))],
        ),
        (
            "update",
            "bring the checkout to origin/main (pull --ff-only, requirements, migrate, "
            "collectstatic)",
            [(app, command) for command in guide.as_app(s)],
        ),
        ("dependencies", "install the requirements into the venv", [(app, pip)]),
        (
            "migrate",
            "apply pending migrations",
            [(app, app_cmd.manage(s.project_dir, s.python, *app_cmd.MIGRATE))],
        ),
        (
            "nginx",
            "check nginx's config, then start it",
            [("root", "nginx -t"), ("root", systemd.systemctl("start", s.nginx_unit))],
        ),
        (
            "gunicorn",
            "start gunicorn afresh (reset-failed, stale socket removed, start or restart)",
            [
                ("root", systemd.systemctl("reset-failed", unit)),
                ("root", restart.remove_stale_socket(s.socket)),
                ("root", systemd.systemctl("restart", unit)),
            ],
        ),
    ]


def plan_repairs(causes: list[str], s: Settings, disabled: bool) -> tuple[list[Action], dict]:
    """The actions for a set of causes, in a safe order, each once; and the causes left to a
    person with what to do. Pure."""
    actions = []
    for key, title, commands in actions_for(s):
        hit = [cause for cause in causes if key in REPAIRS.get(cause, ())]
        if hit:
            commands = list(commands)
            if key == "gunicorn" and disabled:
                commands.append(("root", systemd.systemctl("enable", s.gunicorn_unit)))
            actions.append(Action(key, title, list(dict.fromkeys(hit)), commands))
    by_hand = {cause: BY_HAND[cause] for cause in causes if cause in BY_HAND}
    return actions, by_hand


@dataclass
class Outcome:
    host: str
    before: str
    after: str = ""
    actions: list[Action] = field(default_factory=list)
    by_hand: dict = field(default_factory=dict)
    healthy: bool = False
    error: str = ""
    snapshot: dict = field(default_factory=dict)  # taken before an action that migrates
    notified: list = field(default_factory=list)  # events sent (tasks/notify.py)
    notify_errors: list = field(default_factory=list)  # notifications not sent: warnings

    def to_json(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}


def causes_of(report: Report) -> list[str]:
    return [report.verdict.cause] + [a["cause"] for a in report.verdict.also]


def _disabled(report: Report, s: Settings) -> bool:
    g = next((check for check in report.checks if check.id == "services.gunicorn"), None)
    return bool(g) and any(e == "enabled: disabled" for e in g.evidence)


def ask(action: Action) -> bool:
    out = console()
    out.print(f"[bold]{action.title}[/] (for {', '.join(action.causes)})")
    for who, cmd in action.commands:
        out.print(f"  [dim]as {who}:[/] {cmd}", highlight=False, markup=False)
    answer = input("Apply? [y/N] ").strip().lower()
    return answer in ("y", "yes")


# Actions that change the database: a snapshot comes first, and no snapshot, no change.
MIGRATES = {"update", "migrate"}


def apply(remote: Remote, action: Action, o: Outcome) -> None:
    if action.key in MIGRATES and not o.snapshot:
        try:
            o.snapshot = snapshots.take(
                remote, remote.settings, f"before repair {action.key}"
            ).to_json()
        except snapshots.SnapshotError as e:
            action.ok, action.output = False, str(e)
            return
    if action.key == "permissions":
        o = fix_host(remote, dry_run=False)
        action.ok = not (o.remaining or o.errors)
        action.output = f"{len(o.changes)} changes" + "".join(f"; {e}" for e in o.errors)
        return
    for who, cmd in action.commands:
        out = remote.run(cmd, root=who == "root", user=None if who == "root" else who, timeout=600)
        action.output = (out.stdout + out.stderr).strip()[-300:]
        if not out.ok:
            action.ok = False
            return
    action.ok = True


def who() -> str:
    from tasks.outcomes import who as login

    return login()


def repair_host(remote: Remote, yes: bool, show) -> Outcome:
    s = remote.settings
    tools.require(remote, "repair")
    first = diagnose_host(remote)
    causes = causes_of(first)
    o = Outcome(remote.name, first.verdict.cause)
    if first.verdict.healthy:
        o.after, o.healthy = "healthy", True
        return o
    o.actions, o.by_hand = plan_repairs(causes, s, _disabled(first, s))
    show(first, o)
    sending = None  # repair.started, sent beside the fixes
    if o.actions:
        # A repair changes code, venv and database like a deploy: never beside a running one.
        token = lock.new_token()
        owner = {"by": who(), "command": "repair", "since": snapshots.now(), "deploy": ""}
        out = remote.run(lock.take(s.state_dir, token, owner), root=True, timeout=60)
        if out.exited == 3:
            holder = lock.read_status(out.stdout, s.lock_grace).describe()
            o.error = (
                f"a deploy holds the lock ({holder}): "
                "nothing repaired; wait for it, or `fab rollback` an interrupted one"
            )
            for action in o.actions:
                action.skipped = "lock held"
            o.after = first.verdict.cause
            return o
        locked = lock.LockedRemote(remote, s.state_dir, token)
        sending = tell(s, o, "repair.started", first.checks)
        try:
            for action in o.actions:
                if not yes and not ask(action):
                    action.skipped = "declined"
                    continue
                apply(locked, action, o)
                if action.ok is False:
                    break  # later steps assume this one worked
        finally:
            remote.run(lock.release(s.state_dir, token), root=True, timeout=60)
            if sending:
                sending.join()
    if any(a.ok for a in o.actions):
        health(remote, timeout=20)  # give the restarted service its boot time
    second = diagnose_host(remote)
    o.after, o.healthy = second.verdict.cause, second.verdict.healthy
    # repair.started tried (sent or not), or a host left unhealthy: the team hears the end.
    if sending is not None or not o.healthy:
        tell(s, o, notify.repair_event(o.healthy), second.checks)
    return o


def tell(s: Settings, o: Outcome, event: str, checks):
    """A repair's event to the `notify` URLs; failures to send become o.notify_errors.
    repair.started is sent from a thread (returned, to join), beside the fixes under the lock."""
    if not s.notify:
        return None
    msg = notify.repair_message(event, o, checks, target=s.target, by=who())
    return notify.deliver(o, s.notify, msg, wait=not event.endswith(".started"))


def show_plan(report: Report, o: Outcome) -> None:
    from rich.markup import escape

    c = console()
    c.print(f"[bold]{o.host}: {report.verdict.cause}[/] - {escape(report.verdict.title)}")
    for cause, todo in o.by_hand.items():
        c.print(f"[yellow]not repaired automatically: {cause}[/] - {escape(todo)}")
        for line in (
            report.verdict.evidence
            if cause == report.verdict.cause
            else next((a["evidence"] for a in report.verdict.also if a["cause"] == cause), [])
        )[:4]:
            c.print(f"    {escape(line)}")


def render(o: Outcome) -> None:
    from tasks.outcomes import warn_notify

    c = console()
    for a in o.actions:
        mark = "[green]✓[/]" if a.ok else "[red]✗[/]" if a.ok is False else "[dim]–[/]"
        c.print(f"  {mark} {a.title}" + (f" [dim]({a.skipped})[/]" if a.skipped else ""))
        if a.ok is False and a.output:
            c.print(f"      {a.output}", markup=False, highlight=False)
    if o.error:
        c.print(f"  [red]{markup(o.error)}[/]", highlight=False)  # may quote the server
    colour = "green" if o.healthy else "red"
    c.print(f"[bold]{o.host}: {o.before} → [{colour}]{o.after}[/][/]")
    warn_notify(o.notify_errors, False)


def _non_interactive(yes: bool, json: bool) -> None:
    if not yes and (json or not sys.stdin.isatty()):
        raise ConfigError(
            "repair changes the server and asks before each change: run it in a "
            "terminal, or pass --yes to apply every fix it can make"
        )


@task(help={**COMMON_HELP, "yes": "apply every fix without asking (needed without a terminal)"})
@guarded
def repair(c, yes=False, target=None, json=False):
    """Diagnose, fix every cause that can be fixed safely, and diagnose again.

    Fixes, in order: permissions, daemon-reload, the latest code (pull --ff-only,
    requirements, migrate, collectstatic), requirements, migrations, nginx start, and a fresh
    gunicorn start (reset-failed, stale socket removed). Code errors, invalid nginx configs and
    broken unit files are explained, not touched. Asks before each change unless --yes. With
    `notify` set, the team is told (repair.started, repair.succeeded or repair.failed).
    Exit codes: 0 healthy afterwards, 1 not healthy, 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    _non_interactive(yes, json)
    show = (lambda r, o: None) if json else show_plan
    outcomes = each_host(c, settings, lambda r: repair_host(r, yes, show), render, json)
    if json:
        from tasks.outcomes import warn_notify

        for o in outcomes:
            warn_notify(getattr(o, "notify_errors", []), True)
    emit(outcomes, SCHEMA, json, failed=lambda o: not o.healthy)
