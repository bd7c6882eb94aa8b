"""Never lose data, on the lab over real SSH: the guide's broken server deployed and rolled back
with every row kept, a migration that drops a column with data gated and undone only by
restoring its snapshot, snapshots taken while rows are being written, the lock refusing a
rollback beside a running deploy, and a failed rollback retried to the same release."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.lab import helpers
from tests.lab.helpers import APP, NOTE_MIGRATION, NOTE_MODEL, fab_json, lab_args, push_commit
from tests.lab.test_deploy import URLS, get, history, run_python

pytestmark = pytest.mark.lab


def sql(host, query: str) -> str:
    return host.sh(
        f"cd {APP} && sqlite3 -cmd '.timeout 5000' db.sqlite3 {json.dumps(query)}", user="cynow"
    ).stdout


def add_orders(host, n: int, customer: str = "kim") -> None:
    values = ", ".join(f"('{customer}{i}', {i + 1}, datetime('now'))" for i in range(n))
    sql(host, f"insert into orders_order (customer, quantity, created) values {values}")


def tables(host) -> dict:
    """Every table and its row count: what must survive whatever a rollback decides."""
    names = sql(host, "select name from sqlite_master where type='table' order by name").split()
    return {t: int(sql(host, f'select count(*) from "{t}"').strip()) for t in names}


def fab(host, *args):
    return fab_json(*lab_args(host), *args, "--target", "lab")


def test_the_guides_broken_server_is_deployed_and_rolled_back_without_losing_a_row(fresh_host):
    """The accident that dropped every table: the server runs code whose config/urls.py
    includes orders.urls, which is missing (the guide's own 502); origin has the fix."""
    seeded = tables(fresh_host)["orders_order"]
    add_orders(fresh_host, 5)
    fresh_host.sh(
        f"cd {APP} && git rm -q orders/urls.py && git commit -q -m 'orders: urls.py lost' && "
        "git push -q origin HEAD:main",
        user="cynow",
    )
    helpers.restart_gunicorn(fresh_host)
    assert get(fresh_host, "/cynow/orders/") != 200
    before = tables(fresh_host)
    assert before["orders_order"] == seeded + 5

    push_commit(fresh_host, {"orders/urls.py": URLS}, "orders: urls.py back")
    doc, r = fab(fresh_host, "deploy")
    assert doc["result"] == "deployed", r.stdout + r.stderr
    preflight = next(s for s in doc["steps"] if s["step"] == "preflight")
    assert (
        "migrations recorded for" in preflight["detail"] and "for 0 apps" not in preflight["detail"]
    )
    assert get(fresh_host, "/cynow/orders/") == 200

    doc, r = fab(fresh_host, "rollback")
    # Back to the broken code (whatever the health gate says of it), and every row kept.
    undo = next(s for s in doc["steps"] if s["step"] == "undo migrate")
    assert undo["detail"] == "nothing to reverse"
    assert tables(fresh_host) == before


def test_a_column_with_data_is_dropped_only_when_allowed_and_comes_back_by_restoring(fresh_host):
    add_orders(fresh_host, 3)
    n = tables(fresh_host)["orders_order"]
    helpers.deploy_notes(fresh_host)
    sql(fresh_host, "update orders_order set note = 'call first'")
    push_commit(fresh_host, helpers.NOTES_GONE, "orders: notes are gone")

    doc, r = fab(fresh_host, "deploy")
    assert r.returncode == 1 and doc["failed_step"] == "validate", (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    assert "lose data orders.0003_remove_note" in doc["error"]
    assert "RemoveField" in doc["error"] and "--allow-data-loss" in doc["error"]
    assert (
        sql(fresh_host, "select count(*) from orders_order where note = 'call first'") == f"{n}\n"
    )

    doc, r = fab(fresh_host, "deploy", "--allow-data-loss")
    assert doc["result"] == "deployed", r.stdout + r.stderr
    snap = next(s for s in doc["steps"] if s["step"] == "snapshot")["detail"]
    assert "(sqlite)" in snap
    assert "note" not in sql(fresh_host, "select sql from sqlite_master where name='orders_order'")
    snap_id = snap.split(":")[0]
    mode = fresh_host.sh(f"stat -c '%a %U' /var/lib/cynow-ops/snapshots/{snap_id}.snap").stdout
    assert mode.strip() == "600 root"

    doc, r = fab(fresh_host, "rollback")
    assert r.returncode == 1 and doc["result"] == "refused", r.stdout[-3000:] + r.stderr[-2000:]
    assert "--restore-db" in doc["error"] and snap_id in doc["error"]
    assert "note" not in sql(fresh_host, "select sql from sqlite_master where name='orders_order'")

    add_orders(fresh_host, 1, customer="late")  # written after the snapshot: discarded
    doc, r = fab(fresh_host, "rollback", "--restore-db")
    assert r.returncode == 0, r.stdout + r.stderr
    steps = {s["step"]: s["detail"] for s in doc["steps"]}
    assert f"orders_order {n}->{n + 1}" in steps["discarded"]
    assert (
        sql(fresh_host, "select count(*) from orders_order where note = 'call first'") == f"{n}\n"
    )
    assert get(fresh_host) == 200 and get(fresh_host, "/cynow/orders/") == 200
    assert history(fresh_host)[-1]["result"] == "rollback"


def test_backup_while_rows_are_written_then_restore(fresh_host):
    add_orders(fresh_host, 10)
    start = tables(fresh_host)["orders_order"]
    # A writer on the server, bounded: 150 single-row transactions over about 5 s.
    fresh_host.sh(
        f'cd {APP} && setsid -f sh -c \'for i in $(seq 1 150); do sqlite3 -cmd ".timeout 5000" '
        'db.sqlite3 "insert into orders_order (customer, quantity, created) values '
        "($i, 1, datetime())\"; sleep 0.03; done; touch /tmp/writer.done' "
        "</dev/null >/dev/null 2>&1",
        user="cynow",
    )
    time.sleep(0.5)
    doc, r = fab(fresh_host, "backup")
    assert r.returncode == 0, r.stdout + r.stderr
    snap = doc["snapshot"]
    taken = snap["tables"]["orders_order"]
    fresh_host.sh("for i in $(seq 1 300); do [ -f /tmp/writer.done ] && exit 0; sleep 0.1; done")
    after = tables(fresh_host)["orders_order"]
    assert start < taken < after == start + 150  # taken while rows were being written

    listed, r = fab(fresh_host, "backup", "--list")
    assert snap["id"] in [x["id"] for x in listed["snapshots"]]

    doc, r = fab(fresh_host, "restore", snap["id"], "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert tables(fresh_host)["orders_order"] == taken
    assert sql(fresh_host, "pragma integrity_check").strip() == "ok"
    assert ["orders_order", after, taken] in doc["discarded"]
    # The restore is itself undoable: the database as it was is the snapshot taken first.
    doc, r = fab(fresh_host, "restore", doc["before"]["id"], "--yes")
    assert r.returncode == 0 and tables(fresh_host)["orders_order"] == after, (
        r.stdout[-3000:] + r.stderr[-2000:]
    )


def test_restore_needs_confirmation_and_a_real_snapshot(fresh_host):
    r = helpers.fab(
        *lab_args(fresh_host), "restore", "20990101T000000Z-000000", "--yes", "--target", "lab"
    )
    assert r.returncode == 1 and "no snapshot '20990101T000000Z-000000'" in r.stderr, (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    r = helpers.fab(*lab_args(fresh_host), "restore", "x", "--target", "lab")
    assert r.returncode == 3 and "--yes" in r.stderr, r.stdout[-3000:] + r.stderr[-2000:]


def test_rollback_and_unlock_refuse_while_a_deploy_runs(fresh_host):
    push_commit(
        fresh_host,
        {
            "orders/models.py": NOTE_MODEL,
            "orders/migrations/0002_order_note.py": NOTE_MIGRATION,
            "orders/migrations/0003_slow.py": run_python(
                "0002_order_note", "import time; time.sleep(6)", reverse="migrations.RunPython.noop"
            ),
        },
        "orders: notes and a slow data migration",
    )
    proc = subprocess.Popen(
        helpers.fab_argv(
            *lab_args(fresh_host), "deploy", "--target", "lab", "--json", "--allow-data-loss"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_migrate(fresh_host)
        doc, r = fab(fresh_host, "rollback")
        assert r.returncode == 1 and doc["result"] == "refused", r.stdout[-3000:] + r.stderr[-2000:]
        assert "holds the lock" in doc["error"] and "deploy since" in doc["error"]
        r = helpers.fab(*lab_args(fresh_host), "unlock", "--stale", "--target", "lab")
        assert r.returncode == 1 and "live" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads(out)["result"] == "deployed"
    assert get(fresh_host) == 200


def wait_for_migrate(host, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "manage.py migrate" in host.sh("pgrep -af manage.py || true").stdout:
            return
        time.sleep(0.3)
    pytest.fail("the deploy never reached migrate")


def test_a_failed_rollback_is_retried_to_the_same_release_and_no_further(fresh_host):
    old = fresh_host.sh(f"cd {APP} && git rev-parse HEAD", user="cynow").stdout.strip()
    push_commit(fresh_host, {"README": "v1\n"}, "docs v1")
    doc, _ = fab(fresh_host, "deploy")
    v1 = doc["new"]
    push_commit(
        fresh_host,
        {"orders/models.py": NOTE_MODEL, "orders/migrations/0002_order_note.py": NOTE_MIGRATION},
        "orders: notes",
    )
    doc, _ = fab(fresh_host, "deploy")
    assert doc["result"] == "deployed", (doc["failed_step"], doc["error"], doc["output"])
    fresh_host.sh("systemctl stop nginx")  # the rollback's health gate fails
    try:
        doc, r = fab(fresh_host, "rollback")
    finally:
        fresh_host.sh("systemctl start nginx")
    assert r.returncode == 1 and doc["result"] == "rollback-failed", (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    assert fresh_host.sh("ls /var/lib/cynow-ops/deploy.lock/state").returncode == 0
    time.sleep(4)  # the lab's lock grace is 3 s: the failed run is gone
    doc, r = fab(fresh_host, "rollback")
    assert r.returncode == 0, r.stdout + r.stderr
    head = fresh_host.sh(f"cd {APP} && git rev-parse HEAD", user="cynow").stdout.strip()
    assert head == v1 and get(fresh_host) == 200
    assert "0002_order_note" not in sql(fresh_host, "select name from django_migrations")
    # Once more: now the deploy to v1 is the one to undo, and it says where it goes.
    doc, r = fab(fresh_host, "rollback")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert fresh_host.sh(f"cd {APP} && git rev-parse HEAD", user="cynow").stdout.strip() == old


def test_repair_changes_nothing_beside_a_live_deploy(fresh_host):
    """gunicorn is down (repair would start it) while a deploy's step runs, as its lock shows:
    repair refuses and leaves the server to that deploy."""
    lock = "/var/lib/cynow-ops/deploy.lock"
    fresh_host.sh("systemctl stop gunicorn.service")
    fresh_host.sh(
        f"install -d -m 700 {lock} && echo 'alice@laptop deploy since 2026-12-02T10:00:00' "
        f"> {lock}/owner && touch {lock}/heartbeat && "
        f"setsid -f sh -c 'echo $$ > {lock}/pid; exec sleep 60' </dev/null >/dev/null 2>&1 && "
        f"for i in $(seq 1 50); do [ -s {lock}/pid ] && break; sleep 0.1; done"
    )
    try:
        doc, r = fab(fresh_host, "repair", "--yes")
    finally:
        fresh_host.sh(f'kill -KILL "-$(cat {lock}/pid)"')  # the step this test started
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert "a deploy holds the lock (alice@laptop deploy since" in doc["error"]
    assert all(a["skipped"] == "lock held" for a in doc["actions"])
    assert fresh_host.sh("systemctl is-active gunicorn.service || true").stdout.strip() != "active"
