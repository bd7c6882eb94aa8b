"""The rules that keep a deploy, a rollback and a restore from losing data: what an undo may
reverse, which deploy a rollback undoes, the history read line by line, and the snapshot's
room check and listing. Pure logic; the lab runs them for real in tests/lab/test_data_safety.py."""

from __future__ import annotations

import json

import pytest

from tasks import service, snapshots
from tasks.errors import OpsError
from tasks.history import parse as read_history
from tasks.rollback import deploy_to_undo, one_way
from tasks.steps.context import StepFailed
from tasks.steps.migrate import reverse_targets
from tasks.steps.validate import risk_lines, risky

BEFORE = {"admin": "0003_logentry", "auth": "0012_alter_user", "orders": "0001_initial"}
NOW_APPLIED = {
    "admin": ["0001_initial", "0002_logentry", "0003_logentry"],
    "auth": ["0001_initial", "0012_alter_user"],
    "orders": ["0001_initial", "0002_order_note"],
}


def plan(*nodes: str, kind: str = "safe") -> list[dict]:
    return [
        {"app": n.split(".")[0], "name": n.split(".")[1], "kind": kind, "ops": []} for n in nodes
    ]


def test_only_the_apps_that_moved_go_back_to_their_record():
    now = {**BEFORE, "orders": "0002_order_note"}
    assert reverse_targets(BEFORE, plan("orders.0002_order_note"), now, NOW_APPLIED) == [
        ("orders", "0001_initial")
    ]


def test_nothing_moved_nothing_reversed():
    assert reverse_targets(BEFORE, [], dict(BEFORE), NOW_APPLIED) == []


def test_the_guides_accident_an_empty_record_never_means_zero():
    """The record a broken server's probe used to leave ({}), then a rollback: every app would
    have gone to zero, dropping every table. Now nothing is reversed and it says why."""
    with pytest.raises(StepFailed, match="not recorded for admin, auth, orders: nothing reversed"):
        reverse_targets({}, [], dict(BEFORE), NOW_APPLIED)


def test_an_app_the_deploy_introduced_goes_to_zero():
    now = {**BEFORE, "shipping": "0002_rate"}
    applied = {**NOW_APPLIED, "shipping": ["0001_initial", "0002_rate"]}
    p = plan("shipping.0001_initial", "shipping.0002_rate")
    assert reverse_targets(BEFORE, p, now, applied) == [("shipping", "zero")]


def test_an_unrecorded_app_with_migrations_the_deploy_did_not_apply_refuses():
    now = {**BEFORE, "shipping": "0002_rate"}
    applied = {**NOW_APPLIED, "shipping": ["0001_initial", "0002_rate"]}
    with pytest.raises(StepFailed, match="shipping"):
        reverse_targets(BEFORE, plan("shipping.0002_rate"), now, applied)


def test_an_app_recorded_at_zero_goes_back_to_zero():
    before = {**BEFORE, "shipping": "zero"}
    now = {**BEFORE, "shipping": "0001_initial"}
    applied = {**NOW_APPLIED, "shipping": ["0001_initial"]}
    assert reverse_targets(before, [], now, applied) == [("shipping", "zero")]


def test_risky_names_lossy_and_irreversible_migrations_and_what_they_lose():
    p = [
        {"app": "orders", "name": "0002_a", "kind": "safe", "ops": []},
        {
            "app": "orders",
            "name": "0003_drop_note",
            "kind": "lossy",
            "ops": [{"op": "RemoveField", "kind": "lossy", "what": "orders.Order.note: dropped"}],
        },
        {
            "app": "orders",
            "name": "0004_once",
            "kind": "irreversible",
            "ops": [{"op": "RunPython", "kind": "irreversible", "what": "no reverse"}],
        },
    ]
    assert risky(p, "lossy") == ["orders.0003_drop_note"]
    assert risky(p, "irreversible") == ["orders.0004_once"]
    assert risk_lines(p, "lossy") == [
        "orders.0003_drop_note RemoveField: orders.Order.note: dropped"
    ]
    assert one_way(p) == [
        "orders.0004_once RunPython: no reverse",
        "orders.0003_drop_note RemoveField: orders.Order.note: dropped",
    ]


def rec(id_, result, frm, to, **kw):
    return {"id": id_, "result": result, "from": frm, "to": to, **kw}


def test_rollback_undoes_the_newest_deploy_not_yet_undone():
    h = [rec("d1", "deployed", "a", "b"), rec("d2", "deployed", "b", "c")]
    assert deploy_to_undo(h, "c")["id"] == "d2"
    h.append(rec("r1", "rollback", "", "", undoes="d2"))
    assert deploy_to_undo(h, "b")["id"] == "d1"


def test_a_retry_after_a_failed_rollback_never_goes_one_further():
    """The rollback of d2 failed after the code went back to b (lock removed by hand): the
    retry undoes d2 again (its steps are idempotent), never d1."""
    h = [
        rec("d1", "deployed", "a", "b"),
        rec("d2", "deployed", "b", "c"),
        rec("r1", "rollback-failed", "", "", undoes="d2"),
    ]
    assert deploy_to_undo(h, "b")["id"] == "d2"


def test_a_server_changed_by_hand_is_not_rolled_back():
    h = [rec("d1", "deployed", "a", "b")]
    with pytest.raises(OpsError, match="changed by hand"):
        deploy_to_undo(h, "zzz")
    with pytest.raises(OpsError, match="nothing to roll back to"):
        deploy_to_undo([rec("d1", "refused", "a", "b")], "b")


def test_old_records_without_an_id_use_their_start_time():
    h = [{"started": "t1", "result": "deployed", "from": "a", "to": "b"}]
    assert deploy_to_undo(h, "b")["started"] == "t1"
    h.append(rec("r", "rollback", "", "", undoes="t1"))
    with pytest.raises(OpsError):
        deploy_to_undo(h, "a")


def test_a_torn_history_line_is_skipped_not_fatal():
    text = json.dumps(rec("d1", "deployed", "a", "b")) + '\n{"id": "d2", "res\n[1]\n\n'
    records, bad = read_history(text)
    assert [r["id"] for r in records] == ["d1"] and bad == 2


def test_room_refuses_what_it_cannot_measure():
    assert snapshots.room({"engine": "sqlite", "bytes": 10_000_000}, "900000000\n") == ""
    assert "needs about" in snapshots.room({"engine": "sqlite", "bytes": 800_000_000}, "9000000")
    assert "size of the database" in snapshots.room({"engine": "sqlite"}, "900000000")
    assert "free space" in snapshots.room({"engine": "sqlite", "bytes": 1}, "")


def test_the_snapshot_list_is_newest_first_and_survives_a_bad_record():
    meta = json.dumps({"taken": "2026-12-02T10:00:00+00:00", "reason": "fab backup"})
    measured = json.dumps({"engine": "sqlite", "bytes": 2048, "seconds": 0.5, "tables": {"t": 3}})
    out = f"20261202T100000Z-aaaaaa\t{meta}\t{measured}\t\n20261202T110000Z-bbbbbb\t{{bad\t\n"
    found = snapshots.read_list(out)
    assert [x.id for x in found] == ["20261202T110000Z-bbbbbb", "20261202T100000Z-aaaaaa"]
    assert found[1].bytes == 2048 and found[1].tables == {"t": 3} and found[1].reason
    assert found[0].bytes == 0


def test_discarded_lists_the_tables_whose_rows_differ():
    assert snapshots.discarded({"a": 5, "b": 1}, {"a": 7, "b": 1, "c": 2}) == [
        ("a", 5, 7),
        ("c", 0, 2),
    ]


def test_snapshot_ids_sort_by_time_and_are_file_name_safe():
    a, b = snapshots.new_id(), snapshots.new_id()
    assert a != b and all(ch.isalnum() or ch in "-" for ch in a)


def test_the_dump_script_keeps_snapshots_root_only_and_prunes_the_oldest():
    from tasks.settings import resolve

    s = resolve({"state_dir": "/var/lib/cynow ops", "snapshots_keep": 3})
    script = snapshots.dump_script(s, "20261202T100000Z-abcdef", {"reason": "it's $(x)"})
    assert script.startswith("umask 077\n")
    assert "tail -n +4" in script
    assert "'/var/lib/cynow ops/snapshots'" in script
    # The database is read as the service runs (the unit's user and environment), never root.
    assert service.as_service("gunicorn.service", "cynow", "x").split(" x")[0] in script
    assert "${DJANGO_SETTINGS_MODULE:-config.settings}" in script
