"""`fab backup`, `fab restore ID` and `fab unlock --stale`: the database snapshots by hand, and
the way out of a lock whose run is gone.

A restore is a change to the database like a migrate: it holds the deploy lock, takes a fresh
snapshot first (so the restore itself can be undone with `fab restore` of that one), then
health-gates the site.
"""

from __future__ import annotations

import json as jsonlib
import sys
import time
from dataclasses import dataclass, field

from fabric import task

from tasks import history, lock, snapshots, tools
from tasks.common import COMMON_HELP, console, each_host, emit, guarded, load
from tasks.errors import ConfigError, OpsError
from tasks.runner import Remote
from tasks.steps.context import Ctx, StepFailed, now
from tasks.steps.health import health
from tasks.steps.lock import own

SCHEMA = "cynow-ops.backup.v1"


@dataclass
class Result:
    host: str
    action: str  # backup | list | restore | unlock
    ok: bool = True
    error: str = ""
    snapshot: dict = field(default_factory=dict)  # backup: the one taken
    snapshots: list = field(default_factory=list)  # list
    before: dict = field(default_factory=dict)  # restore: the one taken first
    discarded: list = field(default_factory=list)  # restore: [table, now, after]
    detail: str = ""

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "exit_code": 0 if self.ok else 1, **self.__dict__}


def take_now(remote: Remote) -> Result:
    try:
        snap = snapshots.take(remote, remote.settings, "fab backup")
    except snapshots.SnapshotError as e:
        return Result(remote.name, "backup", ok=False, error=str(e))
    return Result(remote.name, "backup", snapshot=snap.to_json(), detail=snapshots.summary(snap))


def list_all(remote: Remote) -> Result:
    try:
        found = snapshots.listing(remote, remote.settings)
    except snapshots.SnapshotError as e:
        return Result(remote.name, "list", ok=False, error=str(e))
    return Result(remote.name, "list", snapshots=[x.to_json() for x in found])


def render(r: Result) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = console()
    if not r.ok:
        c.print(f"[red]✗ {escape(r.host)}: {escape(r.error)}[/]")
        return
    if r.action == "list":
        table = Table(title=f"snapshots on {r.host}", title_justify="left")
        for col in ("id", "taken", "size", "seconds", "reason", "commit"):
            # An id is what `fab restore` takes: never cut.
            table.add_column(col, no_wrap=col in ("id", "taken", "commit"))
        for x in r.snapshots:
            table.add_row(
                escape(x["id"]),
                escape(x["taken"].replace("+00:00", "Z")),
                snapshots.human(x["bytes"]),
                f"{x['seconds']:.2f}",
                escape(x["reason"]),
                escape(x["commit"][:12]),
            )
        c.print(table if r.snapshots else f"no snapshot on {escape(r.host)}")
        return
    if r.action == "restore":
        c.print(f"[green]✓[/] {escape(r.host)}: {escape(r.detail)}")
        return
    c.print(f"[green]✓[/] {escape(r.host)}: {escape(r.detail)}")


@task(
    help={
        **COMMON_HELP,
        "list": "list the snapshots (id, time, size, reason, commit) instead of taking one",
    }
)
@guarded
def backup(c, target=None, json=False, list=False):
    """Take a snapshot of the database now (or --list them), under the server's state dir.

    Read-only for the site. Exit codes: 0 done, 1 failed (no room, database unreadable),
    2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    work = each_host(c, settings, list_all if list else take_now, render, json)
    emit(work, SCHEMA, json, failed=lambda r: not r.ok)


def confirm(host: str, snap_id: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("restore replaces the database: confirm with --yes (no terminal here)")
    answer = input(f"Replace the database on {host} with snapshot {snap_id}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise ConfigError("restore not confirmed: nothing changed")


def restore_host(remote: Remote, snap_id: str, by: str) -> Result:
    s = remote.settings
    tools.require(remote, "restore")
    r = Result(remote.name, "restore")
    ctx = Ctx(remote, s, by, command="restore")
    known = {x.id: x for x in snapshots.listing(remote, s)}
    if snap_id not in known:
        raise OpsError(f"no snapshot {snap_id!r} on {remote.name}: `fab backup --list` names them")
    token = lock.new_token()
    owner = {"by": by, "command": "restore", "since": now(), "deploy": ctx.deploy_id}
    out = remote.run(lock.take(s.state_dir, token, owner), root=True, timeout=60)
    if out.exited == 3:
        st = lock.read_status(out.stdout, s.lock_grace)
        return Result(remote.name, "restore", ok=False, error=f"the lock is held ({st.describe()})")
    if not out.ok:
        return Result(remote.name, "restore", ok=False, error="could not take the lock")
    own(ctx, token)
    started, steps = now(), []
    try:
        target = known[snap_id]
        now_counts = snapshots.counts(ctx.remote, s)
        r.discarded = [list(x) for x in snapshots.discarded(now_counts, target.tables)]
        t0 = time.monotonic()
        r.before = snapshots.take(ctx.remote, s, f"before restoring {snap_id}").to_json()
        steps.append(("snapshot", round(time.monotonic() - t0, 2)))
        t0 = time.monotonic()
        done = snapshots.restore(ctx.remote, s, snap_id)
        steps.append(("restore db", round(time.monotonic() - t0, 2)))
        t0 = time.monotonic()
        ok, detail = health(ctx.remote, timeout=s.health_timeout)
        steps.append(("health", round(time.monotonic() - t0, 2)))
        r.ok = ok
        r.detail = (
            f"{snap_id} restored in {float(done.get('seconds') or 0):.2f} s; the database as it "
            f"was is snapshot {r.before['id']} (`fab restore {r.before['id']}` undoes this); "
            f"health: {detail}"
        )
        if not ok:
            r.error = f"restored, but the health gate failed: {detail}"
    except (snapshots.SnapshotError, StepFailed) as e:
        r.ok, r.error = False, str(e)
    finally:
        # The history record, then the lock released whether or not the record was written
        # (a restore leaves no state a later run needs).
        line = restore_record(ctx, r, snap_id, started, steps)
        out = remote.run(
            history.append(s.state_dir) + "; " + lock.release(s.state_dir, token),
            root=True,
            timeout=60,
            stdin=history.stdin(line),
        )
        if "was not written" in out.stderr:
            r.detail += "; warning: the deploy history was not written"
    return r


RESTORE_STEPS = ["snapshot", "restore db", "health"]


def restore_record(ctx: Ctx, r: Result, snap_id: str, started: str, steps: list) -> str:
    """The restore's line in the deploy history (`fab history`): the snapshot restored, the
    one taken first, how it ended."""
    # The step it stopped at: the first that did not end, else the health gate that failed.
    failed = "" if r.ok else RESTORE_STEPS[min(len(steps), len(RESTORE_STEPS) - 1)]
    return jsonlib.dumps(
        {
            "id": ctx.deploy_id,
            "command": "restore",
            "started": started,
            "ended": now(),
            "by": ctx.by,
            "result": "restored" if r.ok else "restore-failed",
            "failed_step": failed,
            "error": r.error,
            "snapshot": {"id": snap_id},
            "before": (r.before or {}).get("id", ""),
            "steps": steps,
        }
    )


@task(
    positional=["snapshot"],
    help={
        **COMMON_HELP,
        "snapshot": "the snapshot's id (`fab backup --list`)",
        "yes": "restore without asking (needed without a terminal)",
    },
)
@guarded
def restore(c, snapshot, target=None, json=False, yes=False):
    """Replace the database with snapshot ID (`fab backup --list`), after a fresh snapshot.

    Holds the deploy lock; health-gated. Exit codes: 0 restored and healthy, 1 failed,
    2 could not connect, 3 bad configuration or not confirmed.
    """
    from tasks.outcomes import who

    settings = load(c, target)
    if not snapshot or "/" in snapshot or snapshot.startswith("."):
        raise ConfigError(f"--snapshot: {snapshot!r} is not a snapshot id (`fab backup --list`)")
    by = who()

    def work(remote: Remote) -> Result:
        confirm(remote.name, snapshot, yes)
        return restore_host(remote, snapshot, by)

    results = each_host(c, settings, work, render, json)
    emit(results, SCHEMA, json, failed=lambda r: not r.ok)


def unlock_host(remote: Remote) -> Result:
    s = remote.settings
    out = remote.run(lock.clear_stale(s.state_dir, s.lock_grace), root=True, timeout=60)
    if out.exited == 3:
        st = lock.read_status(remote.run(lock.status(s.state_dir), root=True).stdout, s.lock_grace)
        return Result(
            remote.name,
            "unlock",
            ok=False,
            error=f"the lock is live ({st.describe()}): not removed; wait for that run",
        )
    if not out.ok:
        return Result(remote.name, "unlock", ok=False, error=out.stderr.strip()[-200:])
    said = out.stdout.strip()
    return Result(
        remote.name,
        "unlock",
        detail="no lock held" if said == "free" else "stale lock removed (nothing was undone)",
    )


@task(help={**COMMON_HELP, "stale": "required: remove the lock only if its run is gone"})
@guarded
def unlock(c, target=None, json=False, stale=False):
    """Remove a stale deploy lock (its client gone, no step running); a live one is refused.

    Nothing is undone: `fab rollback` is the way to undo an interrupted deploy.
    Exit codes: 0 removed or free, 1 the lock is live, 2 could not connect, 3 bad usage.
    """
    settings = load(c, target)
    if not stale:
        raise ConfigError("unlock removes only a stale lock: say so with --stale")
    results = each_host(c, settings, unlock_host, render, json)
    emit(results, SCHEMA, json, failed=lambda r: not r.ok)
