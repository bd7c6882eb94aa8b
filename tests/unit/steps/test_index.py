"""tasks/steps/__init__.py: the deploy as one list of steps, the rollback as its undos."""

from __future__ import annotations

from tasks import steps
from tasks.steps.code import restore_code
from tasks.steps.context import Outcome
from tasks.steps.migrate import unmigrate
from tasks.steps.requirements import restore_requirements


def test_the_deploy_is_one_list_of_steps_with_undos_beside_them():
    names = [s.name for s in steps.DEPLOY]
    assert names == [
        "lock",
        "preflight",
        "fetch",
        "required files",
        "code",
        "requirements",
        "validate",
        "snapshot",
        "migrate",
        "collectstatic",
        "reload",
        "health",
    ]
    undos = {s.name: s.undo for s in steps.DEPLOY if s.undo}
    assert undos == {
        "code": restore_code,
        "requirements": restore_requirements,
        "migrate": unmigrate,
    }
    # Migrations are reversed before the code goes back (their files live in the new code).
    order = [s.name for s in reversed(steps.DEPLOY) if s.undo]
    assert order.index("migrate") < order.index("code")


def test_the_rollback_is_the_deploys_undos_then_serving_the_old_code():
    assert [s.name for s in steps.ROLLBACK] == [
        "undo migrate",
        "undo requirements",
        "undo code",
        "collectstatic",
        "reload",
        "health",
    ]
    # The same objects: a step is defined once.
    assert steps.ROLLBACK[0].do is unmigrate
    assert steps.AFTER_UNDO == steps.ROLLBACK[-3:]
    assert steps.AFTER_UNDO[0] is steps.DEPLOY[-3]


def test_exit_codes():
    for result, code in [
        ("deployed", 0),
        ("up-to-date", 0),
        ("planned", 0),
        ("refused", 1),
        ("rolled-back", 1),
        ("rollback-failed", 1),
    ]:
        assert Outcome("h", result).exit_code == code


def test_restore_db_reuses_the_deploys_undos_instead_of_defining_its_own():
    assert [s.name for s in steps.RESTORE_DB] == [
        "discarded",
        "snapshot",
        "undo requirements",
        "undo code",
        "restore db",
        "collectstatic",
        "reload",
        "health",
    ]
    assert steps.RESTORE_DB[2].do is restore_requirements
    assert steps.RESTORE_DB[3].do is restore_code
    assert steps.RESTORE_DB[-3:] == steps.AFTER_UNDO


def test_undo_of_names_only_the_completed_steps():
    done = ["lock", "preflight", "fetch", "code"]
    assert [s.name for s in steps.undo_of(steps.DEPLOY, done)] == ["undo code"]
    assert steps.undo_of(steps.DEPLOY) == steps.ROLLBACK[:3]
