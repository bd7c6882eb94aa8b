"""The rollout's bookkeeping: each host's result, exit code and commit in the summary."""

from tasks.batches import HostRun, Rollout
from tasks.errors import ConnectError, ExitCode, OpsError
from tasks.outcomes import as_json, unusable
from tasks.steps.context import Ctx, Outcome


def test_a_host_never_reached_is_neither_failed_nor_an_error():
    r = HostRun("h3")
    assert (r.result, r.failed, r.exit_code) == ("not reached", False, 0)
    assert r.to_json()["deploy"] is None and r.to_json()["batch"] is None


def test_results_and_exit_codes():
    deployed = HostRun("h1", 1, Outcome("h1", "deployed", old="a", new="b"))
    assert (deployed.result, deployed.failed, deployed.exit_code) == ("deployed", False, 0)
    back = HostRun("h2", 2, Outcome("h2", "rolled-back", failed_step="health"))
    assert (back.result, back.failed, back.exit_code) == ("rolled-back", True, 1)
    gone = HostRun("h4", 2, unusable("h4", ConnectError("h4 refused the connection")))
    assert (gone.result, gone.failed, gone.exit_code) == ("unreachable", True, 2)
    assert as_json(gone.deploy)["exit_code"] == int(ExitCode.UNREACHABLE)
    sudo = unusable("h5", OpsError("sudo said no"))
    assert sudo.result == "error" and as_json(sudo)["exit_code"] == 1


def test_rollback_all_is_said_per_host():
    r = HostRun("h1", 1, Outcome("h1", "deployed"))
    r.rollback = Outcome("h1", "rolled-back-by-request")
    assert (r.result, r.exit_code) == ("returned (rollback-all)", 0)
    r.rollback = Outcome("h1", "rollback-failed", error="health gate")
    assert (r.result, r.exit_code) == ("rollback-all failed", 1)


def test_the_rollout_document():
    runs = [
        HostRun("h1", 1, Outcome("h1", "deployed"), commit="b"),
        HostRun("h2", 2, Outcome("h2", "rolled-back"), commit="a"),
        HostRun("h3", commit="a"),
    ]
    out = Rollout("1", "0", "stop", [["h1"], ["h2"], ["h3"]], runs, 2, "1 host(s) failed")
    doc = out.to_json()
    assert doc["schema"] == "cynow-ops.rollout.v1" and doc["exit_code"] == 1
    assert [(h["host"], h["result"], h["commit"]) for h in doc["hosts"]] == [
        ("h1", "deployed", "b"),
        ("h2", "rolled-back", "a"),
        ("h3", "not reached", "a"),
    ]
    assert doc["stopped_after_batch"] == 2


# -- the rollout's course, with each host's deploy replaced by its planned outcome ----------------

import pytest  # noqa: E402

from tasks import batches  # noqa: E402
from tests.unit.test_fleet import _fleet  # noqa: E402


@pytest.fixture
def rolled(mocker):
    """roll() over six hosts 127.0.0.10-15 whose deploys end as `fate` says (default: deployed);
    records the order of deploys and rollbacks."""
    mocker.patch("tasks.fleet.Remote.open")
    mocker.patch("tasks.batches.origin_commit", return_value="new")
    mocker.patch("tasks.batches.read_commits")
    calls = []

    def run(fate: dict, **kw):
        def deploy_host(ctx, show, dry_run):
            host = ctx.remote.name
            calls.append(("deploy", host, ctx.pin))
            return Outcome(host, fate.get(host[-2:], "deployed"), old="old", new="new")

        def rollback_host(ctx, show):
            calls.append(("rollback", ctx.remote.name))
            return Outcome(ctx.remote.name, "rolled-back-by-request")

        mocker.patch("tasks.batches.deploy_host", deploy_host)
        mocker.patch("tasks.batches.rollback_host", rollback_host)
        ctx_for = lambda remote, pin="": Ctx(remote, remote.settings, "me", pin=pin)  # noqa: E731
        args = {"batch": "2", "max_fail": "0", "on_fail": "stop", **kw}
        return batches.roll(_fleet(6), ctx_for, True, **args)

    return run, calls


def results(out):
    return [(r.host[-2:], r.batch, r.result) for r in out.runs]


def test_every_batch_deploys_the_pinned_commit(rolled):
    run, calls = rolled
    out = run({})
    assert out.stopped_after is None and out.exit_code == 0
    assert [b for _, b, _ in results(out)] == [1, 1, 2, 2, 3, 3]
    assert {pin for _, _, pin in calls} == {"new"}


def test_the_first_failure_stops_the_rollout_by_default(rolled):
    run, calls = rolled
    out = run({"12": "rolled-back"})
    assert out.stopped_after == 2 and out.exit_code == 1
    assert results(out)[2:] == [
        ("12", 2, "rolled-back"),
        ("13", 2, "deployed"),  # its batch mate had started: it finishes
        ("14", None, "not reached"),
        ("15", None, "not reached"),
    ]
    assert not any(c[0] == "rollback" for c in calls)


def test_max_fail_tolerates_some_failed_hosts(rolled):
    run, _ = rolled
    out = run({"10": "refused", "14": "rolled-back"}, max_fail="1")
    assert out.stopped_after == 3 and "2 host(s) failed" in out.reason
    out = run({"10": "refused"}, max_fail="20%")  # 1 of 6 is 16.7%: within
    assert out.stopped_after is None and out.exit_code == 1


def test_rollback_all_returns_the_hosts_that_got_the_new_commit(rolled):
    run, calls = rolled
    out = run({"13": "rolled-back", "12": "up-to-date"}, on_fail="rollback-all")
    returned = [c[1][-2:] for c in calls if c[0] == "rollback"]
    # Not the failed host, nor the one that was up to date before the rollout.
    assert sorted(returned) == ["10", "11"]
    assert [r.result for r in out.runs[:4]] == [
        "returned (rollback-all)",
        "returned (rollback-all)",
        "up-to-date",
        "rolled-back",
    ]


def test_a_host_that_could_not_roll_back_stops_whatever_max_fail_says(rolled):
    run, _ = rolled
    out = run({"11": "rollback-failed"}, max_fail="100%")
    assert out.stopped_after == 1 and "could not roll back" in out.reason


def test_rollback_all_goes_latest_batch_first(rolled):
    run, calls = rolled
    run({"14": "rolled-back"}, on_fail="rollback-all")
    returned = [c[1][-2:] for c in calls if c[0] == "rollback"]
    # 15 finished its deploy beside the failing 14: it goes back first, then batches 2 and 1.
    assert returned[0] == "15"
    assert sorted(returned[1:3]) == ["12", "13"] and sorted(returned[3:]) == ["10", "11"]
