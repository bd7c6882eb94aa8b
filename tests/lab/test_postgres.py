"""The PostgreSQL variant of the lab: the same server with its database in PostgreSQL (unix
socket, peer authentication), and a deploy, a rollback, `fab backup`/`fab restore` and
`--restore-db` of a lossy deploy on it: snapshots by `pg_dump -Fc`, restored by `pg_restore`."""

from __future__ import annotations

import shlex

import pytest

from tests.lab import helpers
from tests.lab.helpers import APP, fab_json, lab_args, push_commit
from tests.lab.test_deploy import get

pytestmark = pytest.mark.lab


def psql(host, query: str) -> str:
    return host.sh(
        f"psql -h /var/run/postgresql -d cynow -XAtc {shlex.quote(query)}", user="cynow"
    ).stdout


COLUMNS = "select column_name from information_schema.columns where table_name = 'orders_order'"


def pg_setup(h) -> None:
    """A lab host moved onto PostgreSQL: the cluster started, a role and database for the app
    user, the driver in the venv (from the lab's package index), the schema migrated, three
    orders, gunicorn restarted on it."""
    h.sh(
        "systemctl start postgresql && "
        "runuser -u postgres -- createuser cynow && runuser -u postgres -- createdb -O cynow cynow"
    )
    h.sh(
        f"cd {APP} && venv/bin/pip install -q 'psycopg[binary]==3.2.3' && "
        "echo CYNOW_DATABASE=postgresql >> .env && venv/bin/python manage.py migrate -v0",
        user="cynow",
    )
    psql(
        h,
        "insert into orders_order (customer, quantity, created) values "
        "('pg1', 1, now()), ('pg2', 2, now()), ('pg3', 3, now())",
    )
    helpers.restart_gunicorn(h)
    assert get(h, "/cynow/orders/") == 200


@pytest.fixture
def pg_host(fresh_host):
    """lab2 moved onto PostgreSQL (pg_setup)."""
    h = fresh_host
    pg_setup(h)
    h.rows = count(h)  # the app's own seed rows, and these three
    return h


def count(host, where: str = "") -> int:
    return int(psql(host, "select count(*) from orders_order" + where).strip())


def fab(host, *args):
    return fab_json(*lab_args(host), *args, "--target", "lab")


def test_deploy_snapshots_with_pg_dump_and_rollback_reverses(pg_host):
    doc = helpers.deploy_notes(pg_host)
    snap = next(s for s in doc["steps"] if s["step"] == "snapshot")["detail"]
    assert "(postgresql)" in snap
    snap_id = snap.split(":")[0]
    head = pg_host.sh(f"head -c 5 /var/lib/cynow-ops/snapshots/{snap_id}.snap").stdout
    assert head == "PGDMP"  # pg_dump's custom format
    assert "note" in psql(pg_host, COLUMNS)
    doc, r = fab(pg_host, "rollback")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "note" not in psql(pg_host, COLUMNS)
    assert count(pg_host) == pg_host.rows
    assert get(pg_host, "/cynow/orders/") == 200


def test_backup_and_restore_on_postgresql(pg_host):
    doc, r = fab(pg_host, "backup")
    assert r.returncode == 0, r.stdout + r.stderr
    snap = doc["snapshot"]
    assert snap["engine"] == "postgresql" and snap["bytes"] > 0
    psql(pg_host, "delete from orders_order where customer <> 'pg1'")
    assert count(pg_host) == 1
    doc, r = fab(pg_host, "restore", snap["id"], "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert count(pg_host) == pg_host.rows
    assert get(pg_host, "/cynow/orders/") == 200
    listed, _ = fab(pg_host, "backup", "--list")
    ids = [x["id"] for x in listed["snapshots"]]
    assert snap["id"] in ids and doc["before"]["id"] in ids


def test_a_lossy_deploy_on_postgresql_comes_back_by_restore_db(pg_host):
    helpers.deploy_notes(pg_host)
    psql(pg_host, "update orders_order set note = 'fragile'")
    push_commit(pg_host, helpers.NOTES_GONE, "orders: no notes")
    doc, r = fab(pg_host, "deploy", "--allow-data-loss")
    assert doc["result"] == "deployed", r.stdout + r.stderr
    doc, r = fab(pg_host, "rollback")
    assert doc["result"] == "refused" and "--restore-db" in doc["error"]
    doc, r = fab(pg_host, "rollback", "--restore-db")
    assert r.returncode == 0, r.stdout + r.stderr
    assert count(pg_host, " where note = 'fragile'") == pg_host.rows
    assert get(pg_host, "/cynow/orders/") == 200
