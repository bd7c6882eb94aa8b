"""`fab history` on the lab: after a deploy, a deploy rolled back at its health gate, a
`fab rollback` and a `fab restore`; a corrupt line in the middle of the file (counted, skipped,
exit 0); two hosts merged by time with a host column; past 1,000 records, the oldest archived
(gzip) by the deploy that writes the next."""

from __future__ import annotations

import subprocess

import pytest

import tests.lab.helpers as helpers
from tests.lab import lab
from tests.lab.helpers import (
    REPO,
    LabHost,
    deploy_notes,
    fab,
    fab_json,
    lab_args,
    push_commit,
)

pytestmark = pytest.mark.lab

HISTORY = "/var/lib/cynow-ops/history.jsonl"
VIEWS = (REPO / "tests/lab/app/orders/views.py").read_text()


def history(host: LabHost, *extra: str) -> tuple[dict, object]:
    return fab_json(*lab_args(host), "history", "--target", "lab", *extra)


def deploy_css(host: LabHost, name: str) -> dict:
    """A release without a migration: a new static file."""
    push_commit(host, {f"orders/static/orders/{name}.css": "p { color: black; }\n"}, f"css: {name}")
    doc, r = fab_json(*lab_args(host), "deploy", "--target", "lab")
    if doc["result"] != "deployed":  # what the unit logged: the reason a health gate failed
        journal = host.sh("journalctl -u gunicorn --no-pager -n 60", check=False).stdout
        raise AssertionError((doc.get("failed_step"), doc.get("error"), r.stderr, journal))
    return doc


def test_history_after_deploy_failed_deploy_rollback_and_restore(fresh_host):
    doc, r = history(fresh_host)
    assert r.returncode == 0 and doc["schema"] == "cynow-ops.history.v1" and doc["records"] == []

    deployed = deploy_notes(fresh_host)
    doc, r = history(fresh_host)
    assert r.returncode == 0, r.stderr
    [rec] = doc["records"]
    assert rec["outcome"] == "deployed" and rec["command"] == "deploy"
    assert rec["from"]["commit"] == deployed["old"] and rec["to"]["commit"] == deployed["new"]
    assert rec["to"]["subject"] == "orders: notes" and rec["from"]["subject"]
    assert rec["migrations_applied"] == ["orders.0002_order_note"]
    assert rec["snapshot"] == deployed["snapshot"]["id"] != ""
    assert rec["slowest"]["step"] in {s["step"] for s in deployed["steps"]}
    assert rec["seconds"] == pytest.approx(sum(s["seconds"] for s in deployed["steps"]), abs=0.05)
    assert rec["host"] == f"{helpers.LOGIN}@{fresh_host.address}" and "@" in rec["by"]

    broken = VIEWS.replace("    lines = [", '    raise RuntimeError("boom")\n    lines = [')
    push_commit(fresh_host, {"orders/views.py": broken}, "orders: a view that fails")
    failed, r = fab_json(*lab_args(fresh_host), "deploy", "--target", "lab")
    assert r.returncode == 1 and failed["failed_step"] == "health"

    undo, r = fab_json(*lab_args(fresh_host), "rollback", "--target", "lab")
    assert r.returncode == 0, r.stdout + r.stderr

    restored, r = fab_json(
        *lab_args(fresh_host), "restore", deployed["snapshot"]["id"], "--yes", "--target", "lab"
    )
    assert r.returncode == 0 and restored["ok"], r.stdout + r.stderr

    doc, r = history(fresh_host)
    assert r.returncode == 0
    assert [x["outcome"] for x in doc["records"]] == [
        "restored",
        "rollback done",
        "rolled back at health",
        "deployed",
    ]
    restore, rollback, rolled_back, _ = doc["records"]
    assert restore["snapshot"] == deployed["snapshot"]["id"]
    assert restore["snapshot_before"] == restored["before"]["id"]
    assert rolled_back["to"]["subject"] == "orders: a view that fails"
    assert rolled_back["migrations_applied"] == [] and rolled_back["failed_step"] == "health"
    # The rollback moved the server from the notes release back to the one before it.
    assert rollback["from"]["commit"] == deployed["new"]
    assert rollback["to"]["commit"] == deployed["old"]
    assert rollback["migrations_reversed"] == ["orders.0002_order_note"]
    assert rollback["undoes"] == rec["id"]
    assert doc["hosts"] == [{"host": rec["host"], "exit_code": 0, "records": 4, "skipped": 0}]

    assert [x["outcome"] for x in history(fresh_host, "-n", "2")[0]["records"]] == [
        "restored",
        "rollback done",
    ]
    # Wide enough that no cell wraps: the phrases below stay on one line.
    r = fab(*lab_args(fresh_host), "history", "--target", "lab", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    for said in ("rolled back at", "rollback done", "deployed", "restored", "deploy durations"):
        assert said in r.stdout, r.stdout
    assert deployed["snapshot"]["id"] in r.stdout  # never cut: `fab restore` takes it

    r = fab(*lab_args(fresh_host), "history", "--target", "lab", "-n", "0")
    assert r.returncode == 3 and "-n must be a whole number" in r.stderr


def test_a_corrupt_line_in_the_middle_is_reported_and_skipped(fresh_host):
    first = deploy_css(fresh_host, "one")
    fresh_host.sh(f"printf '%s\\n' '{{\"id\": \"torn' 'not json at all' >> {HISTORY}")
    second = deploy_css(fresh_host, "two")
    lines = fresh_host.sh(f"cat {HISTORY}").stdout.splitlines()
    assert len(lines) == 4 and lines[1].startswith('{"id": "torn')  # in the middle

    doc, r = history(fresh_host)
    assert r.returncode == 0, r.stderr  # never fatal
    assert [x["to"]["commit"] for x in doc["records"]] == [second["new"], first["new"]]
    assert doc["hosts"][0]["skipped"] == 2 and doc["hosts"][0]["records"] == 2
    r = fab(*lab_args(fresh_host), "history", "--target", "lab")
    assert r.returncode == 0 and "2 unreadable line(s)" in r.stdout and "skipped" in r.stdout
    # The rollback reads the same file the same way: the torn lines do not stop it.
    undo, r = fab_json(*lab_args(fresh_host), "rollback", "--target", "lab")
    assert r.returncode == 0 and undo["new"] == first["new"], r.stdout + r.stderr


@pytest.fixture
def two(lab_image) -> list[LabHost]:
    return [LabHost(lab.reset(n)) for n in (3, 4)]


def test_two_hosts_merged_by_time_with_a_host_column(two):
    a, b = two
    a1 = deploy_css(a, "a1")
    b1 = deploy_css(b, "b1")
    a2 = deploy_css(a, "a2")
    hosts = ["-H", ",".join(f"{helpers.LOGIN}@{h.address}" for h in two)]
    doc, r = fab_json(*hosts, "history", "--target", "lab")
    assert r.returncode == 0, r.stderr
    got = [(x["host"], x["to"]["commit"]) for x in doc["records"]]
    name_a, name_b = (f"{helpers.LOGIN}@{h.address}" for h in two)
    assert got == [(name_a, a2["new"]), (name_b, b1["new"]), (name_a, a1["new"])]
    assert [h["host"] for h in doc["hosts"]] == [name_a, name_b]
    doc, r = fab_json(*hosts, "history", "--target", "lab", "-n", "2")
    assert [x["to"]["commit"] for x in doc["records"]] == [a2["new"], b1["new"]]

    r = fab(*hosts, "history", "--target", "lab", env={"COLUMNS": "140"})
    assert r.returncode == 0 and "host" in r.stdout and b.address in r.stdout, r.stdout

    # A host that cannot be reached is its own entry; the others are shown; exit 2.
    doc, r = fab_json(hosts[0], hosts[1] + ",cynow@127.0.0.1:1", "history", "--target", "lab")
    assert r.returncode == 2 and len(doc["records"]) == 3
    assert doc["hosts"][-1]["exit_code"] == 2 and doc["hosts"][-1]["error"]


def test_past_1000_records_the_oldest_are_archived_and_history_reads_the_rest(fresh_host):
    old = "".join(
        f'{{"id": "old-{i:04d}", "command": "deploy", "result": "deployed", '
        f'"started": "2026-01-01T00:00:00+00:00", "from": "a", "to": "b", "steps": []}}\n'
        for i in range(1000)
    )
    # As the tool makes them: the state directory root's alone, the file 0600.
    write = f"umask 077; mkdir -p /var/lib/cynow-ops && cat > {HISTORY}"
    subprocess.run(fresh_host.ssh_argv() + [write], input=old, text=True, check=True, timeout=60)
    new = deploy_css(fresh_host, "rotated")
    said = fresh_host.sh(
        f"wc -l < {HISTORY}; ls {HISTORY}.*.gz | wc -l; zcat {HISTORY}.*.gz | head -c 18"
    ).stdout.split()
    assert said == ["1000", "1", '{"id":', '"old-0000",'], said
    doc, r = history(fresh_host, "-n", "1000")
    assert r.returncode == 0 and len(doc["records"]) == 1000
    assert doc["records"][0]["to"]["commit"] == new["new"]
    assert doc["records"][-1]["id"] == "old-0001"  # old-0000 is in the archive
