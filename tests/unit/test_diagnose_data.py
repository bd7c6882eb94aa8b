"""Every diagnose scenario as data: real command output captured from the lab (see
tests/lab/test_diagnose*.py, CYNOW_RECAPTURE=1), the command that produced it, and the cause it
must give. Adding a case is adding a folder."""

import json
from pathlib import Path

import pytest

from tasks import diagnose, tools
from tasks.causes import TITLES as CAUSES
from tasks.runner import Output
from tasks.settings import resolve
from tasks.verdict import decide

DATA = Path(__file__).parent / "data" / "diagnose"
SCENARIOS = sorted(p.name for p in DATA.iterdir() if (p / "expected.json").exists())


def load(name, second: bool = True):
    """The scenario's facts; `second=False`: as they stood after round one (what decides the
    second round's commands)."""
    outs = {f.stem: Output(f.stem, f.read_text(), "", 0, 0.01) for f in (DATA / name).glob("*.out")}
    s = resolve({})
    facts = diagnose.parse_first_round(
        {k: v for k, v in outs.items() if k in diagnose.first_round(s)}, s
    )
    if second:
        diagnose.parse_second_round(
            facts, {k: v for k, v in outs.items() if k in ("unit_paths", "manual")}
        )
    if "tools" in outs:  # read before the task (tasks/discovery.py), captured beside the rest
        facts.tools = tools.parse(outs["tools"].stdout)
    return facts, s


def test_every_cause_has_a_captured_scenario():
    causes = {json.loads((DATA / n / "expected.json").read_text())["cause"] for n in SCENARIOS}
    assert causes == set(CAUSES) - {"unreachable", "unknown"}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_gives_its_cause(name, monkeypatch):
    # Log windows are cut by the server's clock recorded in the capture, so no time mocking.
    facts, s = load(name)
    checks = diagnose.evaluate(facts, s)
    verdict = diagnose.conclude(checks, facts, s)
    expected = json.loads((DATA / name / "expected.json").read_text())["cause"]
    assert verdict.cause == expected
    assert verdict.fix or expected == "healthy"
    assert {c.step for c in checks} == set(range(0, 11))


def test_unknown_when_nginx_fails_without_a_known_cause():
    facts, s = load("healthy_lab")
    facts.http["nginx"]["/cynow/"] = {"code": 502, "seconds": 0.01, "error": ""}
    checks = diagnose.evaluate(facts, s)
    v = decide([f for c in checks for f in c.findings], facts, s)
    assert v.cause == "unknown"  # never healthy while a request through nginx fails
    assert "GET /cynow/ through nginx -> 502" in v.evidence[0]


# Facts whose command changed after most scenarios were captured: their recorded output still
# gives each scenario's cause (above), but their NAME.cmd is an older command. The lab
# recaptures them (CYNOW_RECAPTURE=1); then the scenario joins RECAPTURED, or STALE empties.
# Every scenario was recaptured on 2026-12-07: none is stale.
STALE: set[str] = set()
RECAPTURED = {"tools_missing"}


def commands_today(name: str) -> dict[str, str]:
    """Each fact's NAME.cmd as a diagnosis of this scenario would record it today."""
    facts, s = load(name, second=False)
    jobs = diagnose.first_round(s) | diagnose.second_round(facts, s)
    jobs["tools"] = {"command": tools.command()}  # read before the task, as gather records it
    return {fact: diagnose.command_file(job) for fact, job in jobs.items()}


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_recorded_command_is_the_one_that_runs_today(name):
    today = commands_today(name)
    for cmd in sorted((DATA / name).glob("*.cmd")):
        stale = cmd.stem in STALE and name not in RECAPTURED
        same = today.get(cmd.stem) == cmd.read_text()
        assert same != stale, f"{name}/{cmd.name}: " + (
            "matches today's command: take it out of STALE" if stale else "not today's command"
        )
