"""tasks/verdict.py: from the checks' findings to one cause, its chain and its fix."""

from tasks import causes, verdict
from tasks.checks.base import Facts, Finding
from tasks.settings import resolve

S = resolve({})
START = "sudo systemctl start gunicorn.service"
RESTART = "sudo systemctl restart gunicorn.service"


def test_no_finding_and_nothing_failing_is_healthy():
    v = verdict.decide([], Facts(listener={"exists": True}), S)
    assert v.healthy and v.title == causes.TITLES["healthy"] and v.fix == []


def test_a_failing_check_nothing_explains_is_unknown_never_healthy():
    v = verdict.decide([], Facts(listener={"exists": True}), S, ["socket: missing"])
    assert v.cause == "unknown" and "socket: missing" in v.evidence


def test_the_first_ranked_cause_wins_and_its_fab_command_leads_the_fix():
    findings = [
        Finding("gunicorn_stopped", ["inactive (dead)"], [START]),
        Finding("code_outdated", ["3 commits behind"], ["git pull", RESTART]),
    ]
    v = verdict.decide(findings, Facts(listener={"exists": True}), S)
    assert v.cause == "code_outdated"
    assert v.fix[0] == "fab repair  # or, by hand:"
    assert [a["cause"] for a in v.also] == ["gunicorn_stopped"]


def test_only_the_causes_marked_follows_add_their_fix_after_the_first():
    findings = [
        Finding("code_outdated", ["behind"], ["git pull"]),
        Finding("gunicorn_start_limit_hit", ["gave up"], ["sudo systemctl reset-failed g"]),
        Finding("static_unreadable", ["403"], ["sudo chmod o+x /home/cynow"]),
    ]
    v = verdict.decide(findings, Facts(listener={"exists": True}), S)
    assert causes.BY_ID["gunicorn_start_limit_hit"].follows
    assert not causes.BY_ID["static_unreadable"].follows
    assert "sudo systemctl reset-failed g" in v.fix
    assert "sudo chmod o+x /home/cynow" not in v.fix


def test_a_start_after_a_restart_adds_nothing():
    findings = [
        Finding("code_outdated", ["behind"], ["git pull", RESTART]),
        Finding("gunicorn_stopped", ["inactive"], [START]),
    ]
    v = verdict.decide(findings, Facts(listener={"exists": True}), S)
    assert START not in v.fix and RESTART in v.fix


def test_merge_joins_a_causes_evidence_and_fixes_without_repeats():
    merged = verdict.merge(
        [Finding("stale_socket", ["a", "b"], ["x"]), Finding("stale_socket", ["b", "c"], ["x"])]
    )
    assert merged["stale_socket"].evidence == ["a", "b", "c"]
    assert merged["stale_socket"].fix == ["x"]


def test_the_chain_starts_with_the_head_and_names_a_missing_socket():
    facts = Facts(listener={"exists": False})
    steps = verdict.chain("code_outdated", "ModuleNotFoundError", facts, S)
    assert steps[0] == "ModuleNotFoundError"
    assert f"socket {S.socket} gone" in steps


def test_every_omitted_link_is_a_link_the_chain_knows():
    for cause in causes.CAUSES:
        assert set(cause.omits) <= set(verdict.CHAIN_LINKS), cause.id


def test_a_cause_omits_the_links_its_own_evidence_states():
    stopped = {S.gunicorn_unit: {"ActiveState": "inactive", "SubState": "dead"}}
    facts = Facts(units=stopped, listener={"exists": False})
    exits = "gunicorn master exits (Active: inactive)"
    assert exits in verdict.chain("code_outdated", "head", facts, S)
    assert exits not in verdict.chain("gunicorn_stopped", "head", facts, S)
    assert exits not in verdict.chain("stale_socket", "head", facts, S)
    gone = f"socket {S.socket} gone"
    assert gone in verdict.chain("gunicorn_stopped", "head", facts, S)
    assert gone not in verdict.chain("socket_path_mismatch", "head", facts, S)
    gave_up = {S.gunicorn_unit: {"ActiveState": "failed", "Result": "start-limit-hit"}}
    facts = Facts(units=gave_up, listener={"exists": True})
    assert "systemd gives up: start-limit-hit" in verdict.chain("code_outdated", "h", facts, S)
    assert "systemd gives up: start-limit-hit" not in verdict.chain(
        "gunicorn_start_limit_hit", "h", facts, S
    )
