from __future__ import annotations

from tasks import diagnose
from tasks.checks import http, socket
from tasks.checks import tools as tools_check
from tasks.checks.base import Facts
from tasks.settings import resolve
from tests.unit.test_diagnose_data import load

S = resolve({})


def test_all_present_none_read_and_missing():
    every = {n: True for n in tools_check.tools.PACKAGES}
    assert tools_check.evaluate(Facts(tools=every), S)[0].status == "ok"
    assert tools_check.evaluate(Facts(), S)[0].status == "skipped"
    [c] = tools_check.evaluate(Facts(tools={**every, "curl": False}), S)
    assert c.status == "fail" and c.summary == "missing: curl"
    assert c.findings[0].cause == "tools_missing"
    assert c.findings[0].fix == ["sudo apt-get install curl"]


def test_without_ss_a_socket_nobody_seems_to_hold_is_not_called_stale():
    facts = Facts(tools={"ss": False, "curl": True})
    facts.listener = {"exists": True, "type": "socket", "listening": False, "owner": "cynow"}
    out = socket.evaluate(facts, S)
    assert [c.status for c in out] == ["skipped", "skipped"]
    assert "ss is missing on the server (sudo apt-get install iproute2)" in out[0].summary
    assert not [f for c in out for f in c.findings]
    # With ss, the same facts are a stale socket.
    facts.tools = {"ss": True}
    assert socket.evaluate(facts, S)[0].findings[0].cause == "stale_socket"


def test_without_curl_nothing_is_asked_and_nothing_concluded():
    # A healthy server as captured in the lab, on which curl's errors replace every answer.
    facts, s = load("healthy_lab")
    facts.tools = {n: n != "curl" for n in tools_check.tools.PACKAGES}
    bad = {"code": 0, "seconds": 0.0, "error": "sh: 1: curl: not found"}
    facts.http = {via: {u: bad for u in s.health_urls} for via in ("socket", "nginx")}
    out = http.evaluate(facts, s)
    assert [c.status for c in out] == ["skipped"] * 3
    assert http.manual_command(s, facts) is None
    verdict = diagnose.conclude(diagnose.evaluate(facts, s), facts, s)
    assert verdict.cause == "tools_missing" and verdict.fix == ["sudo apt-get install curl"]
