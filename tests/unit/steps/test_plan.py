from __future__ import annotations

from tasks.steps.context import Outcome
from tasks.steps.plan import plan_only
from tests.unit.steps.fakes import commit, git


def test_dry_run_plans_in_two_round_trips_and_moves_no_ref(server):
    ctx, remote, dev, app = server
    refs_before = git(app, "for-each-ref")
    commit(
        dev,
        {"orders/migrations/0002_note.py": "x\n", "orders/migrations/__init__.py": ""},
        "orders: notes",
    )
    o = plan_only(ctx, Outcome("local", "deployed"), lambda entry: None)
    details = [s["detail"] for s in o.steps]
    assert o.result == "planned" and len(o.commits) == 1
    assert details[0].startswith("1 commit(s) ") and "DIVERGED" not in details[0]
    assert details[2] == "migrations to apply: orders/migrations/0002_note.py"
    assert details[3] == "requirements: unchanged"
    assert len(remote.sent) == 2
    assert git(app, "for-each-ref") == refs_before
    assert not (app / ".git" / "FETCH_HEAD").exists()
