"""`fab diagnose` on the lab: each cause identifier, produced the way it happens on real servers,
must be named with its evidence and fix. Every test starts from a pristine lab host."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.lab.helpers import (
    APP,
    NOTE_MIGRATION,
    NOTE_MODEL,
    curl_nginx,
    fab,
    fab_json,
    lab_args,
    push_commit,
    restart_gunicorn,
    server_pull,
    wait_for,
)

pytestmark = pytest.mark.lab
CAPTURES = Path(__file__).resolve().parents[1] / "unit" / "data" / "diagnose"

ORIGINAL_VIEWS = (
    "from django.http import HttpResponse\n\nfrom orders.models import Order\n\n\n"
    "def order_list(request):\n"
    '    lines = [f"{o.id}\\t{o.customer}\\t{o.quantity}" for o in Order.objects.order_by("id")]\n'
    '    return HttpResponse("orders\\n" + "\\n".join(lines) + "\\n", content_type="text/plain")\n'
)
ORDERS_URLS = (
    "from django.urls import path\n\nfrom orders import views\n\n"
    'app_name = "orders"\nurlpatterns = [path("", views.order_list, name="list")]\n'
)


def diagnose(host, *extra):
    # CYNOW_RECAPTURE=1 refreshes the unit tests' data: each scenario's raw command output.
    env = {}
    if os.environ.get("CYNOW_RECAPTURE"):
        name = os.environ["PYTEST_CURRENT_TEST"].split("::")[-1].split(" ")[0]
        env["CYNOW_OPS_CAPTURE"] = str(CAPTURES / name.removeprefix("test_"))
    doc, r = fab_json(*lab_args(host), "diagnose", "--target", "lab", *extra, env=env)
    if env:
        (CAPTURES / name.removeprefix("test_") / "expected.json").write_text(
            json.dumps({"cause": doc["verdict"]["cause"]}) + "\n"
        )
    return doc, r


def check(doc, check_id):
    return next(c for c in doc["checks"] if c["id"] == check_id)


def assert_cause(doc, r, cause, evidence=(), fix=(), chain=()):
    v = doc["verdict"]
    assert v["cause"] == cause, f"{v}\n{r.stderr}"
    assert r.returncode == (0 if cause == "healthy" else 1)
    text = "\n".join(v["evidence"])
    for e in evidence:
        assert e in text, f"{e!r} not in evidence:\n{text}"
    fixes = "\n".join(v["fix"])
    for f in fix:
        assert f in fixes, f"{f!r} not in fix:\n{fixes}"
    chained = " → ".join(v["chain"])
    for c in chain:
        assert c in chained, f"{c!r} not in chain:\n{chained}"


def test_healthy_lab(fresh_host):
    doc, r = diagnose(fresh_host)
    assert_cause(doc, r, "healthy")
    assert doc["schema"] == "cynow-ops.diagnose.v1"
    odd = [(c["id"], c["summary"]) for c in doc["checks"] if c["status"] not in ("ok", "skipped")]
    # The lab's unit is the guide's: no --umask, so gunicorn's socket is 0777 (any local user
    # can reach the app past nginx): a warning, not a cause.
    assert [i for i, _ in odd] == ["permissions.socket"], odd
    assert "mode 777" in odd[0][1]
    steps = {c["step"] for c in doc["checks"]}
    assert steps == set(range(0, 11))


def test_code_outdated_the_guides_current_problem(fresh_host):
    # A restructure lands without orders/urls.py; the server pulls it and restarts (crash);
    # the forgotten file follows on origin, but the server has not pulled it yet.
    push_commit(fresh_host, {"orders/urls.py": None}, "orders: restructure urls")
    server_pull(fresh_host)
    restart_gunicorn(fresh_host)
    push_commit(fresh_host, {"orders/urls.py": ORDERS_URLS}, "orders: add the forgotten urls.py")
    assert curl_nginx(fresh_host) == 502
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "code_outdated",
        evidence=[
            "ModuleNotFoundError: No module named 'orders.urls'",
            "1 commit(s) behind origin/main",
        ],
        fix=["git pull --ff-only origin main", "manage.py migrate", "systemctl restart"],
        chain=[
            "No module named 'orders.urls'",
            "workers fail to boot",
            "gunicorn master exits",
            "socket /home/cynow/cynow/gunicorn.sock gone",
            "(2: No such file or directory)",
            "502 Bad Gateway",
        ],
    )
    assert check(doc, "code.origin")["status"] == "warn"
    assert check(doc, "django.required")["status"] == "fail"
    assert check(doc, "http.manual")["status"] == "fail"
    assert any(c["cause"] == "gunicorn_stopped" for c in doc["verdict"]["also"])


def test_app_import_error(fresh_host):
    views = ORIGINAL_VIEWS.replace("import Order\n", "import Order, Invoice\n")
    push_commit(fresh_host, {"orders/views.py": views}, "orders: invoices")
    server_pull(fresh_host)
    restart_gunicorn(fresh_host)
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "app_import_error",
        evidence=["ImportError: cannot import name 'Invoice' from 'orders.models'"],
        fix=["fix the code the traceback names"],
    )
    assert check(doc, "code.origin")["status"] == "ok"


def test_missing_dependency(fresh_host):
    views = "import markdown\n" + ORIGINAL_VIEWS
    push_commit(
        fresh_host,
        {
            "orders/views.py": views,
            "requirements.txt": "Django==4.2.30\ngunicorn==23.0.0\nMarkdown\n",
        },
        "orders: markdown notes",
    )
    server_pull(fresh_host)
    restart_gunicorn(fresh_host)
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "missing_dependency",
        evidence=["ModuleNotFoundError: No module named 'markdown'"],
        fix=["venv/bin/pip install -r requirements.txt"],
    )


def test_settings_error(fresh_host):
    fresh_host.sh(f"rm {APP}/.env")  # a cleanup of untracked files took the secret with it
    restart_gunicorn(fresh_host)
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "settings_error",
        evidence=["ImproperlyConfigured: Set the DJANGO_SECRET_KEY environment"],
    )


def test_migrations_pending(fresh_host):
    push_commit(
        fresh_host,
        {"orders/models.py": NOTE_MODEL, "orders/migrations/0002_order_note.py": NOTE_MIGRATION},
        "orders: notes",
    )
    server_pull(fresh_host)
    restart_gunicorn(fresh_host)
    assert curl_nginx(fresh_host) == 500
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "migrations_pending",
        evidence=["You have 1 unapplied migration(s): orders.0002_order_note", "no such column"],
        fix=["manage.py migrate --noinput"],
    )


def test_database_unwritable(fresh_host):
    # `sudo python manage.py migrate` leaves the database owned by root.
    fresh_host.sh(f"chown root:root {APP}/db.sqlite3 && chmod 644 {APP}/db.sqlite3")
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "database_unwritable",
        evidence=[f"{APP}/db.sqlite3 (root:root 644) is not writable by cynow"],
        fix=[f"sudo chown cynow:www-data {APP}/db.sqlite3"],
    )


def test_gunicorn_stopped(fresh_host):
    fresh_host.sh("systemctl stop gunicorn.service")
    assert curl_nginx(fresh_host) == 502
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "gunicorn_stopped",
        evidence=["Active: inactive (dead)"],
        fix=["sudo systemctl start gunicorn.service"],
        chain=["(2: No such file or directory)", "502 Bad Gateway"],
    )
    assert check(doc, "http.manual")["status"] == "ok"  # Django is fine by hand


def _restart_always(host, restart_sec: str) -> None:
    host.sh(
        "mkdir -p /etc/systemd/system/gunicorn.service.d && printf "
        f"'[Service]\\nRestart=always\\nRestartSec={restart_sec}\\n' > "
        "/etc/systemd/system/gunicorn.service.d/restart.conf && systemctl daemon-reload"
    )


def test_gunicorn_crash_loop(fresh_host):
    # Restart=always, and a switch to gevent workers without installing gevent.
    _restart_always(fresh_host, "3")
    fresh_host.sh(
        "sed -i 's/--workers 3/--workers 3 --worker-class gevent/' "
        "/etc/systemd/system/gunicorn.service && systemctl daemon-reload"
    )
    restart_gunicorn(fresh_host, settle=0)
    wait_for(
        fresh_host,
        '[ "$(systemctl show -p NRestarts --value gunicorn)" -ge 1 ] && '
        "systemctl show -p SubState --value gunicorn | grep -q auto-restart",
    )
    doc, r = diagnose(fresh_host)
    assert_cause(doc, r, "gunicorn_crash_loop", evidence=["activating (auto-restart)", "gevent"])


def test_gunicorn_start_limit_hit(fresh_host):
    _restart_always(fresh_host, "100ms")
    # Three starts in two minutes: the limit is hit however slowly a crash comes (the default,
    # five in ten seconds, is missed when the machine is busy).
    fresh_host.sh(
        "printf '[Unit]\\nStartLimitIntervalSec=120\\nStartLimitBurst=3\\n' > "
        "/etc/systemd/system/gunicorn.service.d/limit.conf && systemctl daemon-reload"
    )
    fresh_host.sh(f"mv {APP}/.env /root/env.bak")
    restart_gunicorn(fresh_host, settle=0)
    wait_for(fresh_host, "journalctl -u gunicorn | grep -q 'Start request repeated too quickly'")
    fresh_host.sh(f"mv /root/env.bak {APP}/.env")  # the cause is fixed; the service gave up
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "gunicorn_start_limit_hit",
        evidence=["systemd gave up restarting: gunicorn.service: Start request repeated"],
        fix=["sudo systemctl reset-failed gunicorn.service"],
    )


def test_stale_socket(fresh_host):
    fresh_host.sh("kill -9 $(systemctl show -p MainPID --value gunicorn.service)")
    # systemd then stops the orphaned workers; the socket file stays behind.
    wait_for(fresh_host, "! ss -xlpnH | grep -F gunicorn.sock | grep -q users")
    assert curl_nginx(fresh_host) == 502
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "stale_socket",
        evidence=["ss -xl: no process listens on it"],
        fix=["sudo rm -f /home/cynow/cynow/gunicorn.sock"],
        chain=["(111: Connection refused)"],
    )


def test_tools_missing(fresh_host):
    # A server set up by hand without iproute2 (ss) and util-linux's namei. ss has a fallback:
    # the listening sockets read from /proc, so step 5 still sees gunicorn hold its socket
    # (before, an empty `ss` read as "nobody listens", and its repair deleted the live socket).
    # namei has none: its evidence is not read, and the verdict names both packages.
    fresh_host.sh("mv /usr/bin/ss /usr/bin/ss.gone && mv /usr/bin/namei /usr/bin/namei.gone")
    pid = fresh_host.sh("systemctl show -p MainPID --value gunicorn").stdout.strip()
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "tools_missing",
        evidence=["namei: missing (package util-linux)", "ss: missing (package iproute2)"],
        fix=["sudo apt-get install iproute2 util-linux"],
    )
    listener = check(doc, "listener.socket")
    assert listener["status"] == "ok", listener
    assert "(read from /proc: ss is missing)" in listener["summary"]
    assert check(doc, "http.nginx")["status"] == "ok"  # nginx's address, from /proc too
    # The changing tasks need neither: restart --force's stale-socket removal asks /proc who
    # holds the socket, and the health gate finds nginx there too.
    r = fab(*lab_args(fresh_host), "restart", "--target", "lab", "--force")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert fresh_host.sh("systemctl show -p MainPID --value gunicorn").stdout.strip() != pid
    assert fresh_host.sh(f"test -S {APP}/gunicorn.sock", check=False).returncode == 0
    push_commit(fresh_host, {"README": "without ss\n"}, "docs: a server without ss")
    doc, r = fab_json(*lab_args(fresh_host), "deploy", "--target", "lab")
    assert doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]


def test_a_missing_curl_is_replaced_by_the_venvs_python(fresh_host):
    # Without curl the pages are asked by the venv's python, as the service: the same
    # answers, a healthy verdict, a deploy gated as before.
    fresh_host.sh("mv /usr/bin/curl /usr/bin/curl.gone")
    doc, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", doc["verdict"]
    for c in ("http.socket", "http.nginx"):
        assert check(doc, c)["status"] == "ok", check(doc, c)
    assert check(doc, "tools")["status"] == "warn"
    push_commit(fresh_host, {"README": "without curl\n"}, "docs: a server without curl")
    doc, r = fab_json(*lab_args(fresh_host), "deploy", "--target", "lab")
    assert doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]


def test_socket_permission_denied(fresh_host):
    # Debian bookworm's adduser makes homes 0700: a rebuilt home locks www-data out.
    fresh_host.sh("chmod 700 /home/cynow")
    assert curl_nginx(fresh_host) == 502
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "socket_permission_denied",
        evidence=[
            "www-data cannot traverse drwx------ cynow:cynow /home/cynow",
            "(13: Permission denied)",
        ],
        fix=["sudo chmod o+x /home/cynow"],
    )


def test_socket_path_mismatch(fresh_host):
    fresh_host.sh(
        "sed -i 's#unix:/home/cynow/cynow/gunicorn.sock#unix:/run/gunicorn.sock#' "
        "/etc/nginx/sites-available/cynow && systemctl reload nginx"
    )
    wait_for(
        fresh_host,
        "[ \"$(curl -s -o /dev/null -w '%{http_code}' "
        f'http://{fresh_host.address}/cynow/)" = 502 ]',
    )
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "socket_path_mismatch",
        evidence=[
            "nginx: proxy_pass http://unix:/run/gunicorn.sock;",
            "gunicorn: --bind unix:/home/cynow/cynow/gunicorn.sock",
        ],
    )


def test_unit_file_invalid(fresh_host):
    # The venv was rebuilt as env/, the unit still names venv/... the other way round.
    fresh_host.sh(
        "sed -i 's#cynow/venv/bin/gunicorn#cynow/env/bin/gunicorn#' "
        "/etc/systemd/system/gunicorn.service && systemctl daemon-reload"
    )
    restart_gunicorn(fresh_host)
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "unit_file_invalid",
        evidence=["ExecStart binary /home/cynow/cynow/env/bin/gunicorn is missing"],
        fix=["sudo systemctl daemon-reload"],
    )


def test_unit_not_reloaded(fresh_host):
    fresh_host.sh("sed -i 's/--workers 3/--workers 2/' /etc/systemd/system/gunicorn.service")
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "unit_not_reloaded",
        evidence=["NeedDaemonReload=yes"],
        fix=["sudo systemctl daemon-reload", "sudo systemctl restart gunicorn.service"],
    )


def test_nginx_config_invalid(fresh_host):
    # A typo in the site, and a reload that failed (nginx keeps the old config until restart).
    fresh_host.sh(
        "sed -i 's#proxy_set_header Host $host;#proxy_set_header Host $host#' "
        "/etc/nginx/sites-available/cynow; systemctl reload nginx || true"
    )
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "nginx_config_invalid",
        evidence=["[emerg]", "sites-enabled/cynow"],
        fix=["sudo nginx -t && sudo systemctl reload nginx"],
    )


def test_nginx_stopped(fresh_host):
    fresh_host.sh("systemctl stop nginx.service")
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "nginx_stopped",
        evidence=["Active: inactive (dead)"],
        fix=["sudo systemctl start nginx.service"],
    )


def test_worker_timeout(fresh_host):
    slow = ORIGINAL_VIEWS.replace(
        "def order_list(request):\n",
        "def order_list(request):\n    import time\n\n    time.sleep(4)\n",
    )
    push_commit(fresh_host, {"orders/views.py": slow}, "orders: slow report")
    server_pull(fresh_host)
    fresh_host.sh(
        "sed -i 's/--workers 3/--workers 3 --timeout 2/' "
        "/etc/systemd/system/gunicorn.service && systemctl daemon-reload"
    )
    restart_gunicorn(fresh_host)
    # gunicorn 23 answers 500 for the aborted request; older ones let nginx answer 502.
    assert curl_nginx(fresh_host) in (500, 502)
    doc, r = diagnose(fresh_host)
    assert_cause(doc, r, "worker_timeout", evidence=["[CRITICAL] WORKER TIMEOUT (pid:"])


def test_static_unreadable(fresh_host):
    # collectstatic run as root under a strict umask.
    fresh_host.sh(
        f"cd {APP} && rm -rf static && (umask 077 && venv/bin/python manage.py "
        "collectstatic --noinput -v0)"
    )
    assert curl_nginx(fresh_host, "/cynow/static/orders/style.css") == 403
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "static_unreadable",
        evidence=["cannot traverse /home/cynow/cynow/static", "(13: Permission denied)"],
        fix=["sudo chmod -R o+rX /home/cynow/cynow/static"],
    )


def test_a_unit_serving_an_app_the_code_lacks_is_the_units_fault(fresh_host):
    # gunicorn: "Failed to find attribute 'app' in 'config.wsgi'. App failed to load." (exit 4).
    # Django is fine; a restart fails again; the unit must change.
    fresh_host.sh(
        "sed -i 's/config.wsgi:application/config.wsgi:app/' "
        "/etc/systemd/system/gunicorn.service && systemctl daemon-reload"
    )
    restart_gunicorn(fresh_host)
    doc, r = diagnose(fresh_host)
    assert_cause(
        doc,
        r,
        "unit_file_invalid",
        evidence=["serves config.wsgi:app, which does not load"],
        fix=["systemctl edit --full gunicorn.service"],
    )
    assert not any(f.startswith("fab restart") for f in doc["verdict"]["fix"])
