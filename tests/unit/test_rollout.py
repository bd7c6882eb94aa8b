"""The rollout's bookkeeping: each host's result, exit code and commit in the summary."""

from tasks.deploy import Outcome
from tasks.errors import ConnectError, ExitCode, OpsError
from tasks.rollout import HostRun, Rollout, as_json, unusable


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
