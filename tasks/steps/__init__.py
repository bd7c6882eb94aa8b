"""What changes the server: one small module per step, its undo beside it. This page is the
index: the deploy, the rollback and what runs after the undos are lists of the same steps.

    DEPLOY      lock, preflight, fetch, required files, code(+undo), requirements(+undo),
                validate, snapshot, migrate(+undo), collectstatic, reload, health
    AFTER_UNDO  collectstatic, reload, health: the old code served again after the undos
    ROLLBACK    the undos of DEPLOY in reverse, then AFTER_UNDO
    RESTORE_DB  `fab rollback --restore-db`: what is discarded, a snapshot of now, the undos of
                requirements and code, the deploy's snapshot restored, then AFTER_UNDO

tasks/steps/run.py runs a list (each step timed and shown, the undos on a failure, the history
recorded); the @task wrappers are tasks/deploy.py and tasks/rollback.py.
"""

from __future__ import annotations

from collections.abc import Collection

from tasks.steps import (
    code,
    collectstatic,
    fetch,
    health,
    lock,
    migrate,
    preflight,
    reload,
    required_files,
    requirements,
    snapshot,
    validate,
)
from tasks.steps.context import Step

DEPLOY: list[Step] = [
    lock.TAKE,
    preflight.STEP,
    fetch.STEP,
    required_files.STEP,
    code.STEP,
    requirements.STEP,
    validate.STEP,
    snapshot.STEP,  # kept: `fab rollback --restore-db`, `fab restore`
    migrate.STEP,
    collectstatic.STEP,
    reload.STEP,
    health.GATE,
]
# After the undos, the old code is served again.
AFTER_UNDO: list[Step] = [collectstatic.STEP, reload.STEP, health.GATE]


def undo_of(done: list[Step], names: Collection[str] | None = None) -> list[Step]:
    """The undos of `done` in reverse (only of the steps named in `names`, when given)."""
    return [s.undo_step() for s in reversed(done) if s.undo and (names is None or s.name in names)]


# Migrations back first (the new code, which holds their files, is still checked out), then
# the venv, then the code.
ROLLBACK: list[Step] = undo_of(DEPLOY) + AFTER_UNDO
# The database comes back from the snapshot instead of the migrations' reversal.
RESTORE_DB: list[Step] = [
    snapshot.DISCARDED,
    snapshot.BEFORE_RESTORE,
    *undo_of([code.STEP, requirements.STEP]),
    snapshot.RESTORE,
    *AFTER_UNDO,
]

__all__ = ["AFTER_UNDO", "DEPLOY", "RESTORE_DB", "ROLLBACK", "Step", "undo_of"]
