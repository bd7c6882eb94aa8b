"""`fab repair --yes` on the lab: for each cause it can fix, break a host that way, repair it,
and require 200 through nginx and a second diagnosis that says healthy."""

from __future__ import annotations

import urllib.request

import pytest

from tests.lab.helpers import (
    APP,
    NOTE_MIGRATION,
    NOTE_MODEL,
    fab,
    fab_json,
    lab_args,
    push_commit,
    restart_gunicorn,
    server_pull,
    wait_for,
)
from tests.lab.test_diagnose import ORDERS_URLS, ORIGINAL_VIEWS

pytestmark = pytest.mark.lab


def break_code_outdated(h):
    push_commit(h, {"orders/urls.py": None}, "orders: restructure urls")
    server_pull(h)
    restart_gunicorn(h)
    push_commit(h, {"orders/urls.py": ORDERS_URLS}, "orders: add the forgotten urls.py")


def break_migrations(h):
    push_commit(
        h,
        {"orders/models.py": NOTE_MODEL, "orders/migrations/0002_order_note.py": NOTE_MIGRATION},
        "orders: notes",
    )
    server_pull(h)
    restart_gunicorn(h)


def break_start_limit(h):
    h.sh(
        # Three starts in two minutes: the limit is hit however slowly a crash comes (the
        # default, five in ten seconds, is missed when the machine is busy).
        "mkdir -p /etc/systemd/system/gunicorn.service.d && printf '[Unit]\\n"
        "StartLimitIntervalSec=120\\nStartLimitBurst=3\\n[Service]\\nRestart=always"
        "\\nRestartSec=100ms\\n' > /etc/systemd/system/gunicorn.service.d/r.conf && "
        f"systemctl daemon-reload && mv {APP}/.env /root/env.bak"
    )
    restart_gunicorn(h, settle=0)
    wait_for(h, "journalctl -u gunicorn | grep -q 'Start request repeated too quickly'")
    h.sh(f"mv /root/env.bak {APP}/.env")


def break_dependency(h):
    views = "import markdown  # noqa: F401\n" + ORIGINAL_VIEWS
    push_commit(
        h,
        {
            "orders/views.py": views,
            "requirements.txt": "Django==4.2.30\ngunicorn==23.0.0\nMarkdown==3.7\n",
        },
        "orders: markdown notes",
    )
    server_pull(h)
    restart_gunicorn(h)


BREAKS = {
    "missing_dependency": break_dependency,
    "gunicorn_stopped": lambda h: h.sh("systemctl stop gunicorn.service"),
    "stale_socket": lambda h: (
        h.sh("kill -9 $(systemctl show -p MainPID --value gunicorn.service)"),
        wait_for(h, "! ss -xlpnH | grep -F gunicorn.sock | grep -q users"),
    ),
    "gunicorn_start_limit_hit": break_start_limit,
    "unit_not_reloaded": lambda h: h.sh(
        "sed -i 's/--workers 3/--workers 2/' /etc/systemd/system/gunicorn.service"
    ),
    "socket_permission_denied": lambda h: h.sh("chmod 700 /home/cynow"),
    "static_unreadable": lambda h: h.sh(
        f"cd {APP} && rm -rf static && (umask 077 && venv/bin/python manage.py collectstatic "
        "--noinput -v0)"
    ),
    "database_unwritable": lambda h: h.sh(
        f"chown root:root {APP}/db.sqlite3 && chmod 644 {APP}/db.sqlite3"
    ),
    "migrations_pending": break_migrations,
    "code_outdated": break_code_outdated,
    "nginx_stopped": lambda h: h.sh("systemctl stop nginx.service"),
}


def diagnose(host):
    doc, _ = fab_json(*lab_args(host), "diagnose", "--target", "lab")
    return doc["verdict"]["cause"]


@pytest.mark.parametrize("cause", list(BREAKS))
def test_repair_fixes(fresh_host, cause):
    BREAKS[cause](fresh_host)
    assert diagnose(fresh_host) == cause
    doc, r = fab_json(*lab_args(fresh_host), "repair", "--yes", "--target", "lab")
    assert r.returncode == 0, f"{doc}\n{r.stderr}"
    assert doc["before"] == cause and doc["after"] == "healthy" and doc["healthy"]
    assert all(a["ok"] for a in doc["actions"])
    for path in ("/cynow/", "/cynow/orders/", "/cynow/static/orders/style.css"):
        assert urllib.request.urlopen(f"http://{fresh_host.address}{path}").status == 200
    assert diagnose(fresh_host) == "healthy"


def test_a_code_error_is_explained_and_left_alone(fresh_host):
    views = "from orders.models import Invoice\n"
    push_commit(fresh_host, {"orders/views.py": views}, "orders: invoices")
    server_pull(fresh_host)
    restart_gunicorn(fresh_host)
    head = fresh_host.sh(f"git -C {APP} rev-parse HEAD", user="cynow").stdout
    doc, r = fab_json(*lab_args(fresh_host), "repair", "--yes", "--target", "lab")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert doc["before"] == "app_import_error" and not doc["healthy"]
    assert "app_import_error" in doc["by_hand"]
    assert "fix the code" in doc["by_hand"]["app_import_error"]
    assert fresh_host.sh(f"git -C {APP} rev-parse HEAD", user="cynow").stdout == head


def test_repair_without_a_terminal_needs_yes(fresh_host):
    fresh_host.sh("systemctl stop gunicorn.service")
    r = fab(*lab_args(fresh_host), "repair", "--target", "lab")
    assert r.returncode == 3 and "pass --yes" in r.stderr, r.stdout[-3000:] + r.stderr[-2000:]
    assert diagnose(fresh_host) == "gunicorn_stopped"  # nothing was changed
