"""`fab deploy` and `fab rollback` as tasks: one host, or many in rolling batches.

One host runs tasks/deploy.py's steps as before. Several hosts roll:

    for each batch (--batch 1 | 3 | 25% | 1,25%):
        deploy every host of the batch concurrently (each health-gated, each rolling itself
        back on failure)
        failed hosts so far past --max-fail?  stop: later batches stay untouched;
                                               --on-fail rollback-all also returns the hosts
                                               that got the new commit
    read which commit every host runs, and say so

Every host deploys the one commit origin's main pointed to when the rollout began (read from
the first host that can): if main moves meanwhile, or origins differ, a host refuses rather
than run code the earlier batches did not. Ctrl-C lets the hosts under way finish (deployed or
rolled back) and starts no other; the summary says so.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass

from fabric import task

from tasks import git, rolling
from tasks.cli import COMMON_HELP, PRINTING, console, guarded, load, print_json
from tasks.connect import describe
from tasks.deploy import SCHEMA, Ctx, Outcome, deploy_host
from tasks.errors import ExitCode, OpsError
from tasks.fleet import Fleet, Interrupted, parse_parallel
from tasks.rollback import rollback_host
from tasks.runner import Remote

ROLLOUT_SCHEMA = "cynow-ops.rollout.v1"
# Deploy outcomes after which a host serves the new commit.
ON_NEW = ("deployed", "up-to-date")


def who() -> str:
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
    else:
        c = console()
        for o in outcomes:
            colour = "green" if o.exit_code == 0 else "red"
            c.print(
                f"[bold {colour}]{o.host}: {o.result}[/]"
                + (f" at step {o.failed_step}: {o.error}" if o.error else ""),
                highlight=False,
            )
            if o.output:
                c.print(o.output, markup=False, highlight=False)
    worst = max(exit_code(o) for o in outcomes)
    if worst:
        from invoke.exceptions import Exit

        raise Exit(code=worst)


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


# -- rolling over several hosts -------------------------------------------------------------------


@dataclass
class HostRun:
    """One host's part in a rollout."""

    host: str
    batch: int | None = None  # 1-based; None: never reached
    deploy: Outcome | None = None
    rollback: Outcome | None = None  # --on-fail rollback-all
    commit: str = ""  # what the host runs at the end ("" unknown: unreachable)

    @property
    def result(self) -> str:
        if self.deploy is None:
            return "not reached"
        if self.rollback is not None:
            ok = self.rollback.result == "rolled-back-by-request"
            return "returned (rollback-all)" if ok else "rollback-all failed"
        return self.deploy.result

    @property
    def failed(self) -> bool:
        return self.deploy is not None and self.deploy.result not in ON_NEW + ("planned",)

    @property
    def exit_code(self) -> int:
        codes = [exit_code(o) for o in (self.deploy, self.rollback) if o is not None]
        return max(codes, default=0)

    def to_json(self) -> dict:
        return {
            "host": self.host,
            "batch": self.batch,
            "result": self.result,
            "commit": self.commit,
            "deploy": as_json(self.deploy) if self.deploy else None,
            "rollback": as_json(self.rollback) if self.rollback else None,
        }


@dataclass
class Rollout:
    batch: str
    max_fail: str
    on_fail: str
    batches: list[list[str]]
    runs: list[HostRun]
    stopped_after: int | None = None  # the batch after which the threshold was passed
    reason: str = ""
    commit: str = ""  # what every host deploys: origin's main as read at the start
    interrupted: bool = False  # Ctrl-C

    @property
    def exit_code(self) -> int:
        return max([r.exit_code for r in self.runs] + [int(self.interrupted)])

    def run(self, host: str) -> HostRun:
        return next(r for r in self.runs if r.host == host)

    def to_json(self) -> dict:
        return {
            "schema": ROLLOUT_SCHEMA,
            "exit_code": self.exit_code,
            "batch": self.batch,
            "max_fail": self.max_fail,
            "on_fail": self.on_fail,
            "batches": self.batches,
            "commit": self.commit,
            "stopped_after_batch": self.stopped_after,
            "reason": self.reason,
            "interrupted": self.interrupted,
            "hosts": [r.to_json() for r in self.runs],
        }


def roll(fleet: Fleet, ctx_for, json: bool, batch: str, max_fail: str, on_fail: str) -> Rollout:
    """Deploy batch after batch until done or past --max-fail (see the module's docstring)."""
    names = fleet.names()
    by_name = dict(zip(names, fleet, strict=True))
    cut = rolling.plan_batches(names, batch)
    out = Rollout(batch, max_fail, on_fail, cut, [HostRun(n) for n in names])
    out.commit = origin_commit(fleet)

    def interrupting() -> None:
        say(
            json,
            "interrupted: the hosts under way finish (deployed or rolled back); no other starts",
        )

    for number, hosts in enumerate(cut, 1):
        if not json:
            console().rule(f"[bold]batch {number}/{len(cut)}[/]: " + ", ".join(hosts), align="left")

        def work(remote: Remote) -> Outcome:
            return deploy_host(ctx_for(remote, out.commit), shower(json, remote.name), False)

        try:
            results = fleet.only(by_name[h] for h in hosts).each(
                work, parallel=len(hosts), on_interrupt=interrupting
            )
        except Interrupted as e:
            results, out.interrupted = e.ended, True
        for cxn, value in results.items():
            run = out.run(describe(cxn))
            run.batch = number
            run.deploy = unusable(run.host, value) if isinstance(value, OpsError) else value
        # Without a commit read at the start, the first host that deployed sets it.
        out.commit = out.commit or next(
            (r.deploy.new for r in out.runs if r.deploy and r.deploy.result in ON_NEW), ""
        )
        failed = sum(r.failed for r in out.runs)
        broken = [r.host for r in out.runs if r.deploy and r.deploy.result == "rollback-failed"]
        if out.interrupted:
            out.stopped_after, out.reason = number, "interrupted (Ctrl-C)"
            break
        if broken or rolling.passed(failed, len(names), max_fail):
            out.stopped_after = number
            out.reason = (
                f"{', '.join(broken)} could not roll back"
                if broken
                else f"{failed} host(s) failed, more than --max-fail {max_fail} allows"
            )
            break
    if out.stopped_after is not None and on_fail == "rollback-all" and not out.interrupted:
        return_all(fleet, out, by_name, ctx_for, json)
    read_commits(fleet, out)
    return out


def origin_commit(fleet: Fleet) -> str:
    """origin's main as the first host that can read it sees it now: every host of the rollout
    deploys this commit, so a main that moves meanwhile (or origins that differ) cannot give
    hosts different code. Read-only (`git ls-remote`); "" when no host can read it."""
    s = fleet.settings
    ref = f"refs/heads/{s.git_branch}"

    def read(remote: Remote) -> str:
        out = remote.run(git.git(s.project_dir, "ls-remote", s.git_remote, ref), user=s.app_user)
        return next((ln.split()[0] for ln in out.lines if ln.endswith("\t" + ref)), "")

    for cxn in fleet:
        value = fleet.only([cxn]).each(read)[cxn]
        if isinstance(value, str) and value:
            return value
    return ""


def return_all(fleet: Fleet, out: Rollout, by_name: dict, ctx_for, json: bool) -> None:
    """--on-fail rollback-all: every host that got the new commit (or may have: its deploy was
    cut off) goes back, latest batch first, a batch at a time (each host health-gated)."""
    for number in range(out.stopped_after or 0, 0, -1):
        hosts = [
            r.host
            for r in out.runs
            if r.batch == number and r.deploy and r.deploy.result in ("deployed", "interrupted")
        ]
        if not hosts:
            continue
        if not json:
            console().rule(f"[bold]rollback-all: batch {number}[/]: " + ", ".join(hosts))
        results = fleet.only(by_name[h] for h in hosts).each(
            lambda r: rollback_host(ctx_for(r), shower(json, r.name)), parallel=len(hosts)
        )
        for cxn, value in results.items():
            run = out.run(describe(cxn))
            run.rollback = unusable(run.host, value) if isinstance(value, OpsError) else value


def read_commits(fleet: Fleet, out: Rollout) -> None:
    """Which commit each host runs now, read from the host itself (read-only)."""
    s = fleet.settings

    def head(remote: Remote) -> str:
        o = remote.run(git.git(s.project_dir, "rev-parse", "HEAD"), user=s.app_user)
        return o.stdout.strip() if o.ok else ""

    for cxn, value in fleet.each(head).items():
        out.run(describe(cxn)).commit = "" if isinstance(value, OpsError) else value


def render_rollout(out: Rollout) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="cynow-ops deploy: every host", title_justify="left")
    for col in ("host", "batch", "result", "runs commit", "detail"):
        t.add_column(col)
    for r in out.runs:
        colour = "green" if r.result in ON_NEW else "yellow" if r.deploy is None else "red"
        detail = ""
        if r.deploy and r.deploy.error:
            step = f"{r.deploy.failed_step}: " if r.deploy.failed_step else ""
            detail = step + r.deploy.error
        t.add_row(
            escape(r.host),
            str(r.batch or "–"),
            f"[{colour}]{escape(r.result)}[/]",
            r.commit[:12] or "[red]unknown[/]",
            escape(detail[:100]),
        )
    console().print(t)
    if out.stopped_after is not None:
        console().print(
            f"[bold red]stopped after batch {out.stopped_after}:[/] {escape(out.reason)}"
            + ("; hosts not reached were left untouched" if out.on_fail == "stop" else "")
        )
    else:
        commits = ", ".join(sorted({r.commit[:12] or "unknown" for r in out.runs}))
        failed = sum(r.failed for r in out.runs)
        if failed:
            console().print(
                f"[bold yellow]every batch done; {failed} host(s) failed, within --max-fail "
                f"{escape(out.max_fail)};[/] hosts run {commits}"
            )
        else:
            console().print(f"[bold green]every batch done;[/] hosts run {commits}")


# -- the tasks ------------------------------------------------------------------------------------


@task(
    help={
        **COMMON_HELP,
        "dry_run": "print the plan (commits, files, migrations, requirements); change nothing",
        "restart": "full `systemctl restart` instead of the graceful HUP reload",
        "allow_irreversible": "deploy even if a migration cannot be reversed",
        "allow_data_loss": "deploy even if reversing a migration would lose data (a snapshot "
        "is taken first)",
        "batch": "several hosts: hosts per batch, e.g. 1 (default), 3, 25% or 1,25%",
        "max_fail": "several hosts: stop once more than N (or N%) hosts failed (default 0)",
        "on_fail": "several hosts, threshold passed: stop (default) or rollback-all",
    }
)
@guarded
def deploy(
    c,
    dry_run=False,
    restart=False,
    allow_irreversible=False,
    allow_data_loss=False,
    target=None,
    json=False,
    batch="1",
    max_fail="0",
    on_fail="stop",
):
    """Deploy origin/main: the guide's update sequence, health-gated, rolled back on failure.

    Steps: lock, preflight (record commit, migrations; refuse uncommitted changes), fetch
    (fast-forward only), required files, code, requirements, validate (import, check,
    reversible migrations), migrate, collectstatic, graceful reload, health gate. On any
    failure the completed steps are undone in reverse and the old code is served again.
    Several hosts roll in batches (--batch), each batch health-gated before the next; past
    --max-fail failed hosts the rollout stops (--on-fail rollback-all also returns the hosts
    already deployed). Exit codes: 0 deployed (or already up to date, or --dry-run), 1 refused
    or rolled back, 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    rolling.batch_sizes(batch, 1)  # bad flags are refused before any connection
    rolling.check_max_fail(max_fail)
    rolling.check_on_fail(on_fail)
    fleet = Fleet.of(c, settings)
    by = who()

    def ctx_for(remote: Remote, pin: str = "") -> Ctx:
        return Ctx(
            remote,
            settings,
            by,
            allow_irreversible,
            restart,
            pin=pin,
            allow_data_loss=allow_data_loss,
        )

    if len(fleet) == 1 or dry_run:  # a plan reads every host at once; nothing to roll
        several = len(fleet) > 1

        def one(remote: Remote) -> Outcome:
            if not json and not several:
                console().print(f"[bold]cynow-ops deploy: {remote.name}[/]")
            show = shower(json, remote.name if several else "")
            return deploy_host(ctx_for(remote), show, dry_run)

        finish(collect(fleet.each(one, parse_parallel(None)), several), json)
        return
    out = roll(fleet, ctx_for, json, batch, max_fail, on_fail)
    if json:
        print_json(out.to_json())
    else:
        render_rollout(out)
    if out.exit_code:
        from invoke.exceptions import Exit

        raise Exit(code=out.exit_code)


@task(
    help={
        **COMMON_HELP,
        "parallel": "several hosts: roll back N at once (default 1)",
        "restore_db": "restore the snapshot taken before the deploy's migrations instead of "
        "reversing them (discards writes made since; shown first)",
    }
)
@guarded
def rollback(c, target=None, json=False, parallel="1", restore_db=False):
    """Return to the state before the last deploy (or the interrupted one), health-gated.

    Migrations back to what was recorded before that deploy, the code back to its commit, the
    old requirements when they had changed, collectstatic, reload, health gate. Several hosts:
    one at a time unless --parallel N.
    Exit codes: 0 rolled back and healthy, 1 failed, 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    parallel = parse_parallel(parallel)
    fleet = Fleet.of(c, settings)
    by = who()
    several = len(fleet) > 1

    def one(remote: Remote) -> Outcome:
        if not json and not several:
            console().print(f"[bold]cynow-ops rollback: {remote.name}[/]")
        return rollback_host(
            Ctx(remote, settings, by), shower(json, remote.name if several else ""), restore_db
        )

    finish(collect(fleet.each(one, parallel), several), json)
