"""The app's code run as the service runs it (tasks/service.py), on a lab host whose database is
outside the checkout, named only by the unit's EnvironmentFile (root's, mode 0600). Before,
`fab deploy` ran manage.py without that file: it migrated a new, empty db.sqlite3 it created in
the checkout and reported `deployed`, while the service's database never got the migration."""

from __future__ import annotations

import pytest

from tests.lab.helpers import (
    APP,
    NOTE_MIGRATION,
    NOTE_MODEL,
    fab_json,
    lab_args,
    push_commit,
    restart_gunicorn,
    wait_for,
)
from tests.lab.test_deploy import get

pytestmark = pytest.mark.lab

DB = "/var/lib/cynow/db.sqlite3"
MOVE_DB = (
    f"install -d -o cynow -g cynow -m 750 /var/lib/cynow && mv {APP}/db.sqlite3 {DB} && "
    f"mkdir -p /etc/cynow && echo CYNOW_DB_PATH={DB} > /etc/cynow/db.env && "
    "chmod 600 /etc/cynow/db.env && mkdir -p /etc/systemd/system/gunicorn.service.d && "
    "printf '[Service]\\nEnvironmentFile=/etc/cynow/db.env\\n' > "
    "/etc/systemd/system/gunicorn.service.d/db.conf && systemctl daemon-reload"
)


def applied(host, app: str = "orders") -> list[str]:
    out = host.sh(f"sqlite3 {DB} \"select name from django_migrations where app='{app}'\"")
    return out.stdout.split()


@pytest.fixture
def moved(fresh_host):
    fresh_host.sh(MOVE_DB)
    restart_gunicorn(fresh_host)
    wait_for(fresh_host, f"test -S {APP}/gunicorn.sock")
    assert get(fresh_host) == 200
    return fresh_host


def test_diagnose_reads_the_database_the_unit_names(moved):
    doc, r = fab_json(*lab_args(moved), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr)
    assert not moved.sh(f"test -e {APP}/db.sqlite3 && echo created || true").stdout.strip()


def test_deploy_migrates_the_services_database_and_no_other(moved):
    push_commit(
        moved,
        {"orders/models.py": NOTE_MODEL, "orders/migrations/0002_order_note.py": NOTE_MIGRATION},
        "orders: notes",
    )
    doc, r = fab_json(*lab_args(moved), "deploy", "--target", "lab")
    assert doc["result"] == "deployed", (doc.get("failed_step"), doc.get("error"), r.stderr)
    assert "0002_order_note" in applied(moved)
    # No database appeared in the checkout, and the secret file's text is nowhere in the output.
    assert not moved.sh(f"test -e {APP}/db.sqlite3 && echo created || true").stdout.strip()
    assert "CYNOW_DB_PATH" not in r.stdout + r.stderr
    assert get(moved) == 200
    # The snapshot taken before the migration is of that database too: its rows, not none.
    rows = int(moved.sh(f"sqlite3 {DB} 'select count(*) from orders_order'").stdout)
    assert rows > 0 and doc["snapshot"]["tables"].get("orders_order") == rows

    doc, r = fab_json(*lab_args(moved), "rollback", "--target", "lab")
    assert doc["result"] == "rolled-back-by-request", (doc.get("error"), r.stderr)
    assert "0002_order_note" not in applied(moved)


def test_a_deploy_that_cannot_see_the_services_database_refuses(moved):
    """The unit's file holds the only copy of the path; hidden from the tool's wrapper it is
    refused (strict), never replaced by the checkout's default database."""
    moved.sh("mv /etc/cynow/db.env /etc/cynow/db.env.hidden")
    doc, r = fab_json(*lab_args(moved), "deploy", "--target", "lab")
    assert doc["result"] == "refused" or doc.get("failed_step") == "preflight", doc
    assert "EnvironmentFile /etc/cynow/db.env cannot be read" in doc["error"]
    assert not moved.sh(f"test -e {APP}/db.sqlite3 && echo created || true").stdout.strip()
