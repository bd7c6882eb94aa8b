from __future__ import annotations

import json
from pathlib import Path

from tasks.steps.context import Outcome
from tasks.steps.lock import take_lock
from tasks.steps.run import record


def test_the_end_of_a_deploy_records_and_releases_in_one_round_trip(server):
    ctx, remote, dev, app = server
    take_lock(ctx)
    o = Outcome("local", "rollback-failed", error='it\'s "bad"; $(id)')
    record(ctx, o, "2026-11-27T10:00:00+00:00", release=False)
    lock = Path(ctx.s.state_dir) / "deploy.lock"
    assert lock.is_dir()  # kept: `fab rollback` needs its state
    record(ctx, Outcome("local", "deployed"), "2026-11-27T10:05:00+00:00", True)
    assert not lock.exists()
    lines = (Path(ctx.s.state_dir) / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["result"] for x in lines] == ["rollback-failed", "deployed"]
    assert json.loads(lines[0])["error"] == o.error
    assert len(remote.sent) == 3


def test_a_history_that_cannot_be_written_keeps_the_lock(server):
    # The lock then holds this run's only record: `fab rollback` reads it. (Rollback ends
    # through the same `record`, tasks/rollback.py.)
    ctx, remote, dev, app = server
    take_lock(ctx)
    (Path(ctx.s.state_dir) / "history.jsonl").mkdir()  # an append can only fail
    why = record(ctx, Outcome("local", "deployed"), "2026-11-27T10:00:00+00:00", release=True)
    assert why.startswith("the deploy history was not written (")
    assert "the lock keeps this run's state" in why
    assert (Path(ctx.s.state_dir) / "deploy.lock" / "token").is_file()
