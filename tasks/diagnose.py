"""`fab diagnose`: every step of the 502 guide, read-only, ending in one named cause and its fix.

Gathering is two rounds of concurrent channels on one SSH connection: round one runs every
fact of tasks/checks (each step's module holds its own); round two checks the paths the unit
names and, only when gunicorn is down, runs it by hand on a temporary socket (guide step 7).
Evaluation is pure: each module's checks, in the guide's order (tasks/checks/__init__.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fabric import task

from tasks import checks, shell, tools
from tasks import notify as notices
from tasks.causes import TITLES as CAUSES
from tasks.checks.base import FAIL, CheckResult, Fact, Facts
from tasks.common import COMMON_HELP, PARALLEL_HELP, PRINTING, console, guarded, load, print_json
from tasks.connect import describe
from tasks.errors import ConnectError, ExitCode, OpsError
from tasks.fleet import Fleet, parse_parallel
from tasks.runner import Output, Remote
from tasks.settings import Settings
from tasks.text import markup
from tasks.verdict import Verdict, decide

SCHEMA = "cynow-ops.diagnose.v1"
MULTI_SCHEMA = "cynow-ops.diagnose-hosts.v1"

IDENTITY = {"login": {}, "root": {"root": True}}


def job(fact: Fact, command: str, s: Settings) -> dict:
    """A fact's command as Remote.many runs it: as whom, alone or sharing a channel."""
    who = {"app": {"user": s.app_user}, "web": {"user": s.web_user}}
    kw = dict(command=command, **IDENTITY.get(fact.identity, who.get(fact.identity, {})))
    if fact.alone:
        kw["alone"] = True
    if fact.timeout:
        kw["timeout"] = fact.timeout
    return kw


def first_round(s: Settings) -> dict[str, dict]:
    """Everything steps 1-9 read, as independent commands (name -> Remote.run kwargs). The
    slow or possibly hanging ones run alone; the rest share a channel per identity."""
    empty = Facts()
    return {f.name: job(f, f.command(s, empty), s) for f in checks.FACTS if not f.second}


def second_round(facts: Facts, s: Settings) -> dict[str, dict]:
    """Only what round one could not know: paths a non-standard unit names, and the by-hand
    run when gunicorn is down. Usually nothing."""
    jobs = {}
    for f in checks.FACTS:
        if f.second and (command := f.command(s, facts)) is not None:
            jobs[f.name] = job(f, command, s)
    return jobs


def store(facts: Facts, out: dict[str, Output], s: Settings) -> None:
    """Each fact's output parsed into its Facts fields."""
    for f in checks.FACTS:
        if f.name not in out:
            continue
        raw = out[f.name].stdout
        value = f.parse(shell.read_batch(raw) if f.framed else raw, s)
        values = value if len(f.fields) > 1 else (value,)
        for name, v in zip(f.fields, values, strict=True):
            if f.merge:
                getattr(facts, name).update(v)
            else:
                setattr(facts, name, v)
        facts.seconds[f.name] = out[f.name].seconds


def parse_first_round(out: dict[str, Output], s: Settings) -> Facts:
    facts = Facts()
    store(facts, out, s)
    return facts


def parse_second_round(facts: Facts, out: dict[str, Output], s: Settings | None = None) -> None:
    store(facts, out, s)


def gather(remote: Remote) -> Facts:
    s = remote.settings
    jobs = first_round(s)
    first = remote.many(jobs)
    facts = parse_first_round(first, s)
    facts.tools = remote.tools  # read before the task, with the layout (tasks/discovery.py)
    later = second_round(facts, s)
    second = remote.many(later) if later else {}
    parse_second_round(facts, second, s)
    if remote.tools is not None:
        # Read before the task, in discovery's round trip: captured as if it were a fact.
        kept = "".join(f"{n}={'yes' if v else 'no'}\n" for n, v in remote.tools.items())
        first = first | {"tools": Output("tools", kept, "", 0, 0.0)}
        jobs = jobs | {"tools": {"command": tools.command()}}
    capture(first | second, jobs | later)
    return facts


def capture(outputs: dict[str, Output], jobs: dict[str, dict]) -> None:
    """With CYNOW_OPS_CAPTURE=DIR, keep each command's raw output (NAME.out) and the command
    that produced it, as whom (NAME.cmd): the unit tests' data files (tests/unit/data/diagnose)
    are real output captured this way from the lab."""
    target = os.environ.get("CYNOW_OPS_CAPTURE")
    if not target:
        return
    os.makedirs(target, exist_ok=True)
    for name, o in outputs.items():
        with open(os.path.join(target, f"{name}.out"), "w") as fh:
            fh.write(o.stdout)
        with open(os.path.join(target, f"{name}.cmd"), "w") as fh:
            fh.write(command_file(jobs.get(name, {})))


def command_file(job: dict) -> str:
    """A job as its NAME.cmd records it: as whom it ran, then the command."""
    who = "root" if job.get("root") else job.get("user") or "login user"
    return f"# run as {who}\n{job.get('command', '')}\n"


def evaluate(f: Facts, s: Settings) -> list[CheckResult]:
    """Every check of every guide step, in the guide's order. A check's time is that of the
    slowest command it read (its own `reads`, else its module's facts)."""
    results = []
    for step in checks.STEPS:
        own = tuple(fact.name for fact in step.FACTS)
        for r in step.evaluate(f, s):
            r.seconds = max((f.seconds.get(n, 0.0) for n in r.reads or own), default=0.0)
            results.append(r)
    return sorted(results, key=lambda result: result.step)


@dataclass
class Report:
    host: str
    target: str | None
    verdict: Verdict
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    started: str = ""
    notified: list | None = None  # with --notify: the events sent (tasks/notify.py)
    notify_errors: list = field(default_factory=list)  # notifications not sent: warnings
    # Layout keys read from the server because the config is silent: {key: {value, source}}.
    discovered: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.verdict.cause == "unreachable":
            return int(ExitCode.UNREACHABLE)
        return int(ExitCode.OK if self.verdict.healthy else ExitCode.PROBLEM)

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA,
            "host": self.host,
            "target": self.target,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "verdict": self.verdict.to_json(),
            "discovered": self.discovered,
            "checks": [c.to_json() for c in self.checks],
            **(
                {"notified": self.notified, "notify_errors": self.notify_errors}
                if self.notified is not None
                else {}
            ),
        }


def conclude(checks: list[CheckResult], facts: Facts, s: Settings) -> Verdict:
    """The verdict from every check's findings; a failed check counts even without one."""
    failing = [f"{check.title}: {check.summary}" for check in checks if check.status == FAIL]
    return decide([f for check in checks for f in check.findings], facts, s, failing)


def diagnose_host(remote: Remote) -> Report:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    s = remote.settings
    facts = gather(remote)
    checks = evaluate(facts, s)
    verdict = conclude(checks, facts, s)
    found = {k: {"value": getattr(s, k), "source": v} for k, v in s.discovered.items()}
    return Report(
        remote.name, s.target, verdict, checks, time.monotonic() - t0, started, discovered=found
    )


def unreachable(host: str, s: Settings, error: OpsError, started: str) -> Report:
    """The report of a host that could not be diagnosed: unreachable (exit 2), or stopped by
    an unexpected error, which is said as it is (cause `unknown`, exit 1)."""
    if not isinstance(error, ConnectError):
        v = Verdict(
            "unknown",
            "the diagnosis of this host stopped: " + error.message,
            [],
            [error.message],
            ["run `fab diagnose` on this host alone; report the error if it persists"],
        )
        return Report(host, s.target, v, [], 0.0, started)
    v = Verdict(
        "unreachable",
        CAUSES["unreachable"],
        [error.message],
        [error.message],
        ["check the address, your key (-i) and known_hosts, then retry"],
    )
    return Report(host, s.target, v, [], 0.0, started)


@task(
    help={
        **COMMON_HELP,
        **PARALLEL_HELP,
        "notify": "tell the `notify` URLs about every host that is not healthy "
        "(diagnose.unhealthy; for cron)",
    }
)
@guarded
def diagnose(c, target=None, json=False, parallel=None, notify=False):
    """Find why CYNOW answers 502: every guide step, read-only, one cause with its fix.

    Several hosts (-H a,b,c or a target's list) are diagnosed at once, at most --parallel at a
    time: a line per host as it finishes, a table of hosts by guide step, a verdict per host.
    With --notify, each host that is not healthy is sent to the `notify` URLs as
    diagnose.unhealthy (a notification that cannot be sent is a warning, never an exit code).
    Exit codes (the worst host's): 0 healthy, 1 a problem was found, 2 could not diagnose
    (unreachable, authentication, host key, sudo), 3 bad configuration.
    """
    settings = load(c, target)
    parallel = parse_parallel(parallel)
    fleet = Fleet.of(c, settings)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    if len(fleet) == 1:
        reports = [one_host(Remote(fleet[0], settings), json, started)]
    else:
        reports = many_hosts(fleet, parallel, json, started)
    if notify:
        tell(reports, settings, json)
    if json:
        if len(reports) == 1:
            print_json(reports[0].to_json())
        else:
            print_json(
                {
                    "schema": MULTI_SCHEMA,
                    "exit_code": max(r.exit_code for r in reports),
                    "hosts": [r.to_json() for r in reports],
                }
            )
    worst = max(r.exit_code for r in reports)
    if worst:
        from invoke.exceptions import Exit

        raise Exit(code=worst)


def tell(reports: list[Report], s: Settings, json: bool) -> None:
    """--notify: diagnose.unhealthy for each host that is not healthy; warnings for what
    could not be sent (on stderr beside --json)."""
    from tasks.outcomes import warn_notify

    for report in reports:
        report.notified = []
        if s.notify and notices.diagnose_event(report.verdict.cause):
            notices.deliver(report, s.notify, notices.diagnose_message(report))
        warn_notify(report.notify_errors, json)
    if not s.notify:
        console(stderr=True).print(
            "warning: --notify, but no `notify` URLs are configured: nothing sent",
            style="yellow",
            markup=False,
        )


def one_host(remote: Remote, json: bool, started: str) -> Report:
    """One host: the full checklist and its verdict, with a spinner on a terminal."""
    settings = remote.settings
    try:
        if json or not console().is_terminal:
            remote.open()
            report = diagnose_host(remote)
        else:
            with console().status(f"diagnosing {remote.name}…"):
                remote.open()
                report = diagnose_host(remote)
    except ConnectError as e:
        report = unreachable(remote.name, settings, e, started)
        if not json:
            console(stderr=True).print(f"cynow-ops: {markup(e.message)}")  # quotes the server
    finally:
        remote.close()
    if not json:
        from tasks.report import render

        render(report)
    return report


def many_hosts(fleet: Fleet, parallel: int, json: bool, started: str) -> list[Report]:
    """Every host concurrently (at most `parallel`), a line per host as it ends, then the
    table and each verdict."""

    def done(remote: Remote, value) -> None:
        if json:
            return
        from tasks.report import host_line

        with PRINTING:
            if isinstance(value, OpsError):
                from rich.markup import escape

                console().print(
                    f"[bold]{escape(remote.name)}[/] [red]unreachable:[/] {escape(value.message)}"
                )
            else:
                console().print(host_line(value))

    if not json:
        console().print(
            f"[bold]cynow-ops diagnose:[/] {len(fleet)} hosts, at most {parallel} at once"
        )
    results = fleet.each(diagnose_host, parallel, done)
    reports = [
        unreachable(describe(cxn), fleet.settings, v, started) if isinstance(v, OpsError) else v
        for cxn, v in results.items()
    ]
    if not json:
        from tasks.report import render_fleet

        render_fleet(reports)
    return reports
