"""Several hosts, in rolling batches: batches as Ansible's `serial` cuts them, a failure
threshold, what to do once it is passed, and the rollout that runs them.

    plan_batches(hosts, "25%")  -> [[h1], [h2], [h3], [h4]] for 4 hosts
    passed(failed=1, total=4, "0") -> True: stop, leave later batches untouched

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
rolled back) and starts no other; the summary says so. The planning is pure; `roll` runs it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tasks import git
from tasks.common import console
from tasks.connect import describe
from tasks.errors import ConfigError, OpsError
from tasks.fleet import Fleet, Interrupted
from tasks.outcomes import as_json, exit_code, say, shower, unusable, warn_notify
from tasks.rollback import rollback_host
from tasks.runner import Remote
from tasks.steps.context import Outcome
from tasks.steps.run import deploy_host

ROLLOUT_SCHEMA = "cynow-ops.rollout.v1"
# Deploy outcomes after which a host serves the new commit.
ON_NEW = ("deployed", "up-to-date")

_ENTRY = re.compile(r"^(\d+)(%?)$")
ON_FAIL = ("stop", "rollback-all")


def _entry(flag: str, text: str) -> tuple[int, bool]:
    m = _ENTRY.match(text.strip())
    if not m:
        raise ConfigError(
            f"{flag}: {text.strip()!r} is neither a number of hosts nor a percentage; "
            "write e.g. 1, 3 or 25%"
        )
    value, pct = int(m.group(1)), bool(m.group(2))
    if pct and value > 100:
        raise ConfigError(f"{flag}: {text.strip()} is more than 100%")
    return value, pct


def batch_sizes(spec: str, total: int) -> list[int]:
    """Ansible's `serial`: "3" hosts per batch, "25%" of all hosts (rounded down, at least 1),
    or a list "1,25%,50%" whose sizes apply in turn, the last repeating until no host is left."""
    entries = [_entry("--batch", part) for part in str(spec).split(",")]
    if any(value == 0 for value, _ in entries):
        raise ConfigError("--batch: a batch of 0 hosts would never finish; use 1 or more")
    sizes, left, i = [], total, 0
    while left > 0:
        value, pct = entries[min(i, len(entries) - 1)]
        size = max(1, math.floor(total * value / 100)) if pct else value
        sizes.append(min(size, left))
        left -= sizes[-1]
        i += 1
    return sizes


def plan_batches(hosts: list, spec: str) -> list[list]:
    """The hosts, in order, cut into batches."""
    out, start = [], 0
    for size in batch_sizes(spec, len(hosts)):
        out.append(hosts[start : start + size])
        start += size
    return out


def check_max_fail(spec: str) -> None:
    """--max-fail is one number or one percentage; refused before anything is contacted."""
    if "," in str(spec):
        raise ConfigError("--max-fail takes one value, e.g. 0, 2 or 10%")
    _entry("--max-fail", str(spec))


def passed(failed: int, total: int, spec: str) -> bool:
    """Is the failure threshold passed? "N": more than N hosts failed; "P%": more than P% of
    all hosts failed. The default 0 stops at the first failed host."""
    value, pct = _entry("--max-fail", str(spec))
    return failed * 100 > value * total if pct else failed > value


def check_on_fail(value: str) -> str:
    if value not in ON_FAIL:
        raise ConfigError(
            f"--on-fail must be {' or '.join(ON_FAIL)}, not {value!r}: stop leaves the hosts "
            "already deployed on the new commit, rollback-all returns them too"
        )
    return value


# -- the rollout ------------------------------------------------------------------------------


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
    cut = plan_batches(names, batch)
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
        if broken or passed(failed, len(names), max_fail):
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
    ref = f"refs/heads/{fleet.settings.git_branch}"

    def read(remote: Remote) -> str:
        s = remote.settings  # the host's own layout (tasks/discovery.py)
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

    def head(remote: Remote) -> str:
        s = remote.settings
        o = remote.run(git.git(s.project_dir, "rev-parse", "HEAD"), user=s.app_user)
        return o.stdout.strip() if o.ok else ""

    for cxn, value in fleet.each(head).items():
        out.run(describe(cxn)).commit = "" if isinstance(value, OpsError) else value


def rollout_warnings(out: Rollout, json: bool) -> None:
    """Each host's notifications that could not be sent (warnings, never a failure)."""
    for r in out.runs:
        for o in (r.deploy, r.rollback):
            if o is not None:
                warn_notify(getattr(o, "notify_errors", []), json)


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
    rollout_warnings(out, json=False)
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
