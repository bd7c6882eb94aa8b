"""Many hosts on three lab hosts (lab3-5): diagnose with one host broken, a rolling deploy that
stops at a host failing its health gate, an unreachable host among reachable ones, and the
other tasks taking the same host lists."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

import tests.lab.helpers as helpers
from tests.lab import lab
from tests.lab.helpers import (
    APP,
    REPO,
    LabHost,
    curl_nginx,
    fab,
    fab_argv,
    fab_json,
    push_commit,
)

pytestmark = pytest.mark.lab

# A host that refuses SSH at once: nothing listens on port 1 of the loopback.
DOWN = "cynow@127.0.0.1:1"

# New code that needs a per-server file the servers do not all have (configuration drift):
# the module loads, `manage.py check` passes, but the page answers 500 where the file is missing.
REGION_VIEWS = (REPO / "tests/lab/app/orders/views.py").read_text() + (
    '\n\ndef region():\n    with open("/etc/cynow/region") as f:\n        return f.read().strip()\n'
)
REGION_VIEWS = REGION_VIEWS.replace(
    'return HttpResponse("orders\\n"', 'return HttpResponse(f"orders in {region()}\\n"'
)
WHEN = "2026-11-27T12:00:00+00:00"  # same change, same parent, same date: the same commit


@pytest.fixture
def three(lab_image) -> list[LabHost]:
    return [LabHost(lab.reset(n)) for n in (3, 4, 5)]


def hosts_arg(hosts: list, *extra: str) -> list[str]:
    return ["-H", ",".join([f"{helpers.LOGIN}@{h.address}" for h in hosts] + list(extra))]


def many(hosts, *args, extra=(), json_out=True):
    argv = [*hosts_arg(hosts, *extra), *args, "--target", "lab"]
    return fab_json(*argv) if json_out else fab(*argv)


def summary(doc: dict) -> list:
    """Each host's result, failed step and error: what a failed assertion should show."""
    return [
        (
            h["host"],
            h["result"],
            (h.get("deploy") or {}).get("failed_step"),
            (h.get("deploy") or {}).get("error"),
            (h.get("deploy") or {}).get("output"),
        )
        for h in doc.get("hosts", [])
    ]


def head(host: LabHost) -> str:
    return host.sh(f"cd {APP} && sudo -u cynow git rev-parse HEAD").stdout.strip()


def history(host: LabHost) -> list[dict]:
    text = host.sh("cat /var/lib/cynow-ops/history.jsonl 2>/dev/null || true").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_diagnose_every_host_one_broken(three):
    a, b, c = three
    b.sh("systemctl stop gunicorn.service")
    doc, r = many(three, "diagnose")
    assert r.returncode == 1, r.stderr
    assert doc["schema"] == "cynow-ops.diagnose-hosts.v1" and doc["exit_code"] == 1
    got = {h["host"]: h["verdict"]["cause"] for h in doc["hosts"]}
    assert got == {
        f"{helpers.LOGIN}@{a.address}": "healthy",
        f"{helpers.LOGIN}@{b.address}": "gunicorn_stopped",
        f"{helpers.LOGIN}@{c.address}": "healthy",
    }
    assert [h["host"] for h in doc["hosts"]] == [f"{helpers.LOGIN}@{h.address}" for h in three]
    # The human run: a line per host, the table (host x step), and each host's verdict.
    r = many(three, "diagnose", json_out=False)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    for h in three:
        assert any(ln.startswith(f"{helpers.LOGIN}@{h.address} ") for ln in lines), r.stdout
    assert "every host" in r.stdout and "guide steps:" in r.stdout
    assert r.stdout.count("Verdict: healthy") == 2
    assert "Verdict: gunicorn_stopped" in r.stdout
    assert "sudo systemctl start gunicorn.service" in r.stdout


def test_an_unreachable_host_among_reachable_ones(three):
    doc, r = many(three[:2], "diagnose", extra=[DOWN])
    assert r.returncode == 2  # the worst host's code, r.stdout[-3000:] + r.stderr[-2000:]
    causes = [h["verdict"]["cause"] for h in doc["hosts"]]
    assert causes == ["healthy", "healthy", "unreachable"]
    assert "refused the connection" in doc["hosts"][2]["verdict"]["evidence"][0]
    doc, r = many(three[:2], "status", extra=[DOWN])
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-2000:]
    assert [bool(h.get("error")) for h in doc["hosts"]] == [False, False, True]
    assert all(h["socket"]["listening"] for h in doc["hosts"][:2])


def test_parallel_bounds_and_bad_flags_change_nothing(three):
    doc, r = many(three, "diagnose", "--parallel", "1")
    assert r.returncode == 0 and len(doc["hosts"]) == 3, r.stdout[-3000:] + r.stderr[-2000:]
    for flag in (["--parallel", "0"], ["--batch", "x%"], ["--max-fail", "a"]):
        task = "diagnose" if flag[0] == "--parallel" else "deploy"
        r = many(three, task, *flag, json_out=False)
        assert r.returncode == 3, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and flag[0] in r.stderr


def _push_region_commit(hosts: list[LabHost]) -> str:
    ids = {
        push_commit(h, {"orders/views.py": REGION_VIEWS}, "Orders: show the region", WHEN)
        for h in hosts
    }
    assert len(ids) == 1  # every host's origin has the same commit
    return ids.pop()


def test_rolling_deploy_stops_at_a_host_failing_its_health_gate(three):
    a, b, c = three
    old = head(a)
    new = _push_region_commit(three)
    for h in (a, c):  # b lacks the file the new code needs
        h.sh("mkdir -p /etc/cynow && echo north > /etc/cynow/region")
    doc, r = many(three, "deploy", "--batch", "1", "--max-fail", "0")
    assert r.returncode == 1, r.stderr
    assert doc["schema"] == "cynow-ops.rollout.v1"
    assert doc["batches"] == [[f"{helpers.LOGIN}@{h.address}"] for h in three]
    assert doc["stopped_after_batch"] == 2
    rows = {row["host"]: row for row in doc["hosts"]}
    ra, rb, rc = (rows[f"{helpers.LOGIN}@{h.address}"] for h in three)
    # The first batch keeps the new commit, and says so.
    assert (ra["result"], ra["commit"]) == ("deployed", new)
    assert head(a) == new and curl_nginx(a) == 200
    # The failing host rolled itself back, health-gated.
    assert rb["result"] == "rolled-back" and rb["deploy"]["failed_step"] == "health"
    assert rb["commit"] == old == head(b)
    assert curl_nginx(b) == 200
    assert history(b)[-1]["result"] == "rolled-back"
    # The third batch never started: untouched, no deploy recorded.
    assert (rc["result"], rc["batch"], rc["commit"]) == ("not reached", None, old)
    assert head(c) == old and history(c) == []


def test_rollback_all_returns_the_earlier_batches(three):
    a, b, c = three
    old = head(a)
    new = _push_region_commit(three)
    a.sh("mkdir -p /etc/cynow && echo north > /etc/cynow/region")
    r = many(three, "deploy", "--batch", "1", "--on-fail", "rollback-all", json_out=False)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert "returned (rollback-all)" in r.stdout and "not reached" in r.stdout
    assert [head(h) for h in three] == [old, old, old]
    assert curl_nginx(a) == 200 and new not in head(a)
    assert [x["result"] for x in history(a)] == ["deployed", "rollback"]


def test_rolling_deploy_in_batches_then_rollback_every_host(three):
    old = head(three[0])
    new = _push_region_commit(three)
    for h in three:
        h.sh("mkdir -p /etc/cynow && echo north > /etc/cynow/region")
    doc, r = many(three, "deploy", "--batch", "2")
    assert r.returncode == 0, summary(doc)
    assert [len(b) for b in doc["batches"]] == [2, 1]
    assert {row["result"] for row in doc["hosts"]} == {"deployed"}
    assert {row["commit"] for row in doc["hosts"]} == {new}
    assert all(curl_nginx(h) == 200 for h in three)
    doc, r = many(three, "rollback")
    assert r.returncode == 0, r.stderr
    assert [o["result"] for o in doc["hosts"]] == ["rolled-back-by-request"] * 3
    assert [head(h) for h in three] == [old] * 3


def test_fix_permissions_on_every_host(three):
    three[1].sh("chmod 700 /home/cynow")
    assert curl_nginx(three[1]) == 502
    doc, r = many(three, "fix-permissions")
    assert r.returncode == 0, r.stderr
    paths = [{c["path"] for c in h["changes"]} for h in doc["hosts"]]
    # Every host gets the same fixes; the broken one also its home directory back.
    assert paths[0] == paths[2] and paths[1] - paths[0] == {"/home/cynow"}
    assert curl_nginx(three[1]) == 200
    doc, r = many(three, "fix-permissions", "--dry-run", "--parallel", "2")
    assert r.returncode == 0 and [h["changes"] for h in doc["hosts"]] == [[], [], []]


def test_later_batches_deploy_only_what_the_first_batch_deployed(three):
    a, b, c = three
    old = head(a)
    new = push_commit(a, {"orders/views.py": REGION_VIEWS}, "Orders: show the region", WHEN)
    # b's origin has another commit on main (origins drifted apart, or main moved meanwhile).
    other = push_commit(b, {"README.md": "another change\n"}, "Something else", WHEN)
    for h in three:
        h.sh("mkdir -p /etc/cynow && echo north > /etc/cynow/region")
    doc, r = many(three, "deploy", "--batch", "1", "--max-fail", "1")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    rows = [(h["result"], h["commit"]) for h in doc["hosts"]]
    assert rows[0] == ("deployed", new), summary(doc)
    assert rows[1] == ("refused", old), summary(doc)  # would have deployed `other`: untouched
    assert other[:12] in doc["hosts"][1]["deploy"]["error"]
    # c's origin has nothing new: it would stay on the old commit, not the rollout's either.
    assert rows[2] == ("refused", old)
    assert doc["stopped_after_batch"] == 3  # the second failure passed --max-fail 1


def test_ctrl_c_finishes_the_host_under_way_and_starts_no_other(three):
    a, b, c = three
    old = head(a)
    new = _push_region_commit(three)
    for h in three:
        h.sh("mkdir -p /etc/cynow && echo north > /etc/cynow/region")
    argv = fab_argv(*hosts_arg(three), "deploy", "--target", "lab", "--batch", "1")
    env = {**os.environ, "COLUMNS": "200"}
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in p.stdout:  # Ctrl-C once the first host has taken its lock
        if line.startswith(f"{helpers.LOGIN}@{a.address} ✓ lock"):
            p.send_signal(signal.SIGINT)
            break
    rest, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert "interrupted: the hosts under way finish" in err
    assert "stopped after batch 1: interrupted (Ctrl-C)" in rest
    # The host under way finished its deploy; the others never began.
    assert head(a) == new and curl_nginx(a) == 200
    assert a.sh("test -e /var/lib/cynow-ops/deploy.lock", check=False).returncode == 1
    assert head(b) == head(c) == old and history(b) == history(c) == []
