"""tasks/upgrade_unit.py holds the deploy lock while it changes the units: a deploy, rollback or
repair beside the switch would restart gunicorn under it. The lock's own commands run for real
in a local shell on a temporary state directory; the unit scripts are only recorded (they would
run systemctl), each checked to run supervised while the lock is this run's."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from tasks import lock, tools
from tasks import upgrade_unit as up
from tasks.runner import Output
from tasks.settings import resolve

SUPERVISED = "this run no longer holds the deploy lock"  # only lock.supervised says this


class LockRemote:
    """Runs lock.take/lock.release in sh on the temporary state directory; records every other
    command with the lock's holder at that moment, and answers it as done."""

    def __init__(self, state_dir):
        self.settings = resolve({"state_dir": str(state_dir)})
        self.name = "cynow@web1"
        self.changes: list[tuple[str, str]] = []  # (command, lock token then)
        self.lock_dir = state_dir / "deploy.lock"

    def run(self, command, *, root=False, user=None, timeout=None):
        if SUPERVISED not in command:  # the lock's own take and release
            p = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
            return Output(command, p.stdout, p.stderr, p.returncode, 0.0)
        token = self.lock_dir / "token"
        self.changes.append((command, token.read_text().strip() if token.exists() else ""))
        return Output(command, "restarted\n", "", 0, 0.0)


PLAN = SimpleNamespace(
    changed=["gunicorn.service", "gunicorn.socket"],
    old={},
    new={"gunicorn.socket": ""},
    socket_path="/run/gunicorn.sock",
    notify=True,
)


@pytest.fixture
def remote(tmp_path, mocker):
    mocker.patch.object(tools, "require")
    mocker.patch.object(up, "read_plan", return_value=(PLAN,))
    mocker.patch.object(up, "read_plan_snapshots", return_value=["20261207T010000Z-aaaaaa"])
    mocker.patch.object(up, "diff", return_value="")
    mocker.patch.object(up, "_staged", return_value=(True, "staged"))
    mocker.patch.object(up, "_verify", return_value=(True, "no complaint"))
    mocker.patch.object(up, "_reload_works", return_value=(True, "reloaded"))
    mocker.patch.object(up, "health", return_value=(True, "200"))
    return LockRemote(tmp_path)


def other_holds_the_lock(r: LockRemote) -> None:
    owner = {"by": "alice@laptop", "command": "deploy", "since": "2026-12-07T01:00:00+00:00"}
    take = lock.take(r.settings.state_dir, lock.new_token(), owner)
    assert subprocess.run(["sh", "-c", take]).returncode == 0


@pytest.mark.parametrize("work", [lambda r: up.upgrade_host(r, False), up.undo_host])
def test_a_held_lock_refuses_the_change_in_one_line(remote, work):
    other_holds_the_lock(remote)
    o = work(remote)
    assert o.result == "refused" and remote.changes == [] and o.steps == []
    assert o.message.startswith("a deploy holds the lock (alice@laptop deploy since 2026-12-07")
    assert "nothing changed" in o.message and "\n" not in o.message
    assert (remote.lock_dir / "owner").read_text().startswith("alice@laptop")  # still theirs


def test_the_upgrade_changes_the_units_only_under_its_own_lock_and_releases_it(remote):
    o = up.upgrade_host(remote, dry_run=False)
    assert o.result == "upgraded", o.message
    # snapshot, daemon-reload and switch: each supervised, each while this run held the lock.
    assert len(remote.changes) == 3
    tokens = {token for _, token in remote.changes}
    assert len(tokens) == 1 and "" not in tokens
    assert not remote.lock_dir.exists()  # released


def test_a_failed_upgrade_undoes_under_the_lock_then_releases_it(remote, mocker):
    mocker.patch.object(up, "health", side_effect=[(False, "502"), (True, "200")])
    o = up.upgrade_host(remote, dry_run=False)
    assert o.result == "rolled-back", o.message
    assert [s.name for s in o.steps][-2:] == ["undo: old units back", "undo: health"]
    assert len(remote.changes) == 4 and all(token for _, token in remote.changes)
    assert not remote.lock_dir.exists()


def test_undo_restores_under_the_lock_and_releases_it(remote):
    o = up.undo_host(remote)
    assert o.result == "restored" and len(remote.changes) == 1 and remote.changes[0][1]
    assert not remote.lock_dir.exists()


def test_a_dry_run_takes_no_lock(remote):
    other_holds_the_lock(remote)  # a deploy may run: a dry run only reads
    o = up.upgrade_host(remote, dry_run=True)
    assert o.result == "would-change" and remote.changes == []
