"""Snapshot the database before the migrations change it (kept: `fab rollback --restore-db`,
`fab restore`); and the steps of `--restore-db` that put that snapshot back."""

from __future__ import annotations

from tasks import snapshots
from tasks.steps.context import Ctx, Step, StepFailed


def take_snapshot(ctx: Ctx) -> str:
    """The database as it is, before the migrations change it (none: nothing to keep)."""
    if not ctx.plan:
        return "no migration to apply: nothing to keep"
    snap = snap_now(ctx, f"before {ctx.command} {ctx.deploy_id}")
    ctx.snapshot = snap.to_json()
    ctx.save_state()
    return snapshots.summary(snap)


def snap_now(ctx: Ctx, reason: str) -> snapshots.Snapshot:
    try:
        return snapshots.take(
            ctx.remote, ctx.s, reason, deploy=ctx.deploy_id, commit=ctx.old_commit
        )
    except snapshots.SnapshotError as e:
        raise StepFailed(str(e))


def discarded_report(ctx: Ctx) -> str:
    """What a restore takes back: the time since the snapshot and, for sqlite, the tables
    whose row counts differ."""
    snap = ctx.snapshot
    diff = snapshots.discarded(snap.get("tables") or {}, snapshots.counts(ctx.remote, ctx.s))
    rows = ", ".join(f"{t} {a}->{b}" for t, a, b in diff) or "no row count differs"
    return f"writes since {snap.get('taken', '?')} are discarded ({rows})"


def snapshot_before_restore(ctx: Ctx) -> str:
    # The database as it is now, so the restore itself can be undone (`fab restore ID`).
    return snapshots.summary(snap_now(ctx, f"before restoring {ctx.snapshot.get('id')}"))


def restore_deploy_snapshot(ctx: Ctx) -> str:
    try:
        done = snapshots.restore(ctx.remote, ctx.s, ctx.snapshot["id"])
    except snapshots.SnapshotError as e:
        raise StepFailed(str(e))
    return f"{ctx.snapshot['id']} restored in {float(done.get('seconds') or 0):.2f} s"


STEP = Step("snapshot", take_snapshot)
# `fab rollback --restore-db`: the deploy's snapshot back instead of reversing its migrations.
DISCARDED = Step("discarded", discarded_report)
BEFORE_RESTORE = Step("snapshot", snapshot_before_restore)
RESTORE = Step("restore db", restore_deploy_snapshot)
