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
    # curl and ss have fallbacks: said, not a cause.
    [c] = tools_check.evaluate(Facts(tools={**every, "curl": False, "ss": False}), S)
    assert c.status == "warn" and c.summary == "missing: curl, ss (fallback used)"
    assert not c.findings and "ss: missing (package iproute2): the listening" in c.evidence[1]
    [c] = tools_check.evaluate(Facts(tools={**every, "namei": False, "ss": False}), S)
    assert c.status == "fail" and c.summary == "missing: ss, namei"
    assert c.findings[0].cause == "tools_missing"
    assert c.findings[0].fix == ["sudo apt-get install iproute2 util-linux"]


def test_a_socket_nobody_seems_to_hold_is_stale_only_when_a_listing_was_made():
    facts = Facts(tools={"ss": False, "curl": True})
    li = {"exists": True, "type": "socket", "listening": False, "owner": "cynow"}
    # Neither ss nor /proc listed anything: not read, never stale (its repair would delete
    # the live socket).
    facts.listener = {**li, "listed_by": None}
    out = socket.evaluate(facts, S)
    assert [c.status for c in out] == ["skipped", "skipped"]
    assert out[0].summary == socket.NOT_LISTED
    assert not [f for c in out for f in c.findings]
    # Listed from /proc (ss missing): the same facts are a stale socket, said where from.
    facts.listener = {**li, "listed_by": "/proc", "port_listed_by": "/proc"}
    [c, _port] = socket.evaluate(facts, S)
    assert c.findings[0].cause == "stale_socket"
    assert "/proc/net/unix: no process listens on it" in c.evidence


def test_without_curl_the_requests_are_the_venvs_pythons_and_so_is_the_verdict():
    # The healthy lab's replies, as the python fallback prints them: the same checks.
    facts, s = load("healthy_lab")
    facts.tools = {n: n != "curl" for n in tools_check.tools.PACKAGES}
    out = http.evaluate(facts, s)
    assert [c.status for c in out[:2]] == ["ok", "ok"]
    verdict = diagnose.conclude(diagnose.evaluate(facts, s), facts, s)
    assert verdict.cause == "healthy"
    # No reply at all (that python failed too): not asked, never an answer.
    facts.http = {"socket": {}, "nginx": {}}
    assert [c.status for c in http.evaluate(facts, s)[:2]] == ["skipped", "skipped"]
    # nginx's address not listed: not "nginx listens nowhere".
    facts.http = {"socket": {}, "nginx": {}, "nginx_unlisted": True}
    assert "not read" in http.evaluate(facts, s)[1].summary
    # Not said: not known.
    assert tools_check.tools.missing({"curl": True}, ["curl", "ss"]) == ["ss"]
    assert tools_check.tools.lacks({"ss": False}, "ss")
    assert not tools_check.tools.lacks({}, "ss") and not tools_check.tools.lacks(None, "ss")
