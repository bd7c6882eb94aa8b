"""How a run of steps is shown and how it ends, for `fab deploy`, `fab rollback` and the
rollouts: each step's line as it ends, the closing lines or the JSON document, the exit code."""

from __future__ import annotations

import getpass
import socket

from tasks.common import PRINTING, console, print_json
from tasks.connect import describe
from tasks.errors import ExitCode, OpsError
from tasks.steps.context import SCHEMA, Outcome


def who() -> str:
    """Who runs this, for the lock and the history: login@laptop."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 (no user name is not a reason to stop a deploy)
        return "unknown"


def shower(json: bool, prefix: str = ""):
    """Print each step as it ends; with several hosts at once, each line names its host."""
    if json:
        return lambda entry: None
    from rich.markup import escape

    c = console()
    lead = f"[bold]{escape(prefix)}[/] " if prefix else "  "

    def show(entry):
        mark = "[green]✓[/]" if entry["ok"] else "[red]✗[/]"
        with PRINTING:
            c.print(
                f"{lead}{mark} {entry['step']:<18} [dim]{entry['seconds']:>6.2f}s[/]  "
                f"{escape(str(entry['detail']))}"
            )

    return show


def finish(outcomes: list[Outcome], json: bool) -> None:
    """One host's (or `fab rollback`'s) result: the document or the closing lines, exit code."""
    if json:
        print_json(
            as_json(outcomes[0])
            if len(outcomes) == 1
            else {"schema": SCHEMA, "hosts": [as_json(o) for o in outcomes]}
        )
        for o in outcomes:
            warn_notify(o.notify_errors, json)
    else:
        from rich.markup import escape

        c = console()
        for o in outcomes:
            colour = "green" if o.exit_code == 0 else "red"
            c.print(
                f"[bold {colour}]{escape(o.host)}: {escape(o.result)}[/]"
                + (f" at step {escape(o.failed_step)}: {escape(o.error)}" if o.error else ""),
                highlight=False,
            )
            if o.output:
                c.print(o.output, markup=False, highlight=False)
            if o.history_error:
                c.print(f"warning: {o.history_error}", style="yellow", markup=False)
            warn_notify(o.notify_errors, json)
    worst = max(exit_code(o) for o in outcomes)
    if worst:
        from invoke.exceptions import Exit

        raise Exit(code=worst)


def warn_notify(errors: list[str], json: bool) -> None:
    """Notifications that could not be sent: a warning each (on stderr beside --json, whose
    document lists them as `notify_errors`); they never change the exit code."""
    c = console(stderr=json)
    for line in errors:
        with PRINTING:
            c.print(f"warning: {line}", style="yellow", markup=False, highlight=False)


def unusable(host: str, e: OpsError) -> Outcome:
    """A host stopped by an error: before its work began (unreachable, host key, sudo), or
    during it (connection lost, a bug), when its server may hold a deploy in progress."""
    if getattr(e, "started", False):
        return Outcome(
            host,
            "interrupted",
            error=f"{e.message} (during the work: `fab rollback` on this host restores the "
            "state a deploy in progress recorded)",
        )
    return Outcome(
        host, "unreachable" if e.code == ExitCode.UNREACHABLE else "error", error=e.message
    )


def collect(results, several: bool) -> list[Outcome]:
    """Outcomes in host order. One host that cannot be used is the run's one-line error (exit
    2); among several it is that host's outcome and the others go on."""
    outcomes = []
    for cxn, value in results.items():
        if isinstance(value, OpsError):
            if not several:
                raise value
            value = unusable(describe(cxn), value)
        outcomes.append(value)
    return outcomes


def exit_code(o: Outcome) -> int:
    return int(ExitCode.UNREACHABLE) if o.result == "unreachable" else o.exit_code


def say(json: bool, text: str) -> None:
    if not json:
        console(stderr=True).print(text, markup=False, highlight=False)


def as_json(o: Outcome) -> dict:
    return {**o.to_json(), "exit_code": exit_code(o)}
