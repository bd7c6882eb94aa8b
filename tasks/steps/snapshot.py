"""Snapshot the database before the migrations change it (kept: `fab rollback --restore-db`,
`fab restore`)."""

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


STEP = Step("snapshot", take_snapshot)
