"""The guide's last-resort commands on the lab: status, restart (graceful and --force), logs."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.lab.helpers import Load, fab, fab_argv, fab_json, lab_args

pytestmark = pytest.mark.lab


def run(host, *args):
    return fab_json(*lab_args(host), *args, "--target", "lab")


def test_status(fresh_host):
    doc, r = run(fresh_host, "status")
    assert r.returncode == 0, r.stderr
    (st,) = doc["hosts"]
    g = st["units"]["gunicorn.service"]
    assert g["active"] == "active" and g["main_pid"] > 0
    assert st["units"]["gunicorn.socket"]["load"] == "not-found"
    pids = {p["pid"] for p in st["processes"]}
    assert g["main_pid"] in pids and len(pids) == 4  # master + the unit's 3 workers
    assert all("gunicorn" in p["args"] for p in st["processes"])
    assert st["socket"]["listening"] and st["socket"]["type"] == "socket"
    assert len(st["commit"]) == 40 and st["branch"] == "main"


def test_graceful_restart_drops_no_request(fresh_host):
    before, _ = run(fresh_host, "status")
    with Load(f"http://{fresh_host.address}/cynow/") as load:
        doc, r = run(fresh_host, "restart")
    assert r.returncode == 0, r.stderr
    assert doc["mode"] == "graceful" and doc["healthy"]
    assert doc["before"]["main_pid"] == doc["after"]["main_pid"]
    old_workers = set(doc["before"]["pids"]) - {doc["before"]["main_pid"]}
    assert old_workers and not old_workers & set(doc["after"]["pids"])
    assert load.ok > 20 and load.failed == 0


def test_restart_starts_a_stopped_service(fresh_host):
    fresh_host.sh("systemctl stop gunicorn.service")
    doc, r = run(fresh_host, "restart")
    assert r.returncode == 0 and doc["mode"] == "start" and doc["healthy"], (
        r.stdout[-3000:] + r.stderr[-2000:]
    )


def test_force_restart_kills_only_the_units_leftovers(fresh_host):
    # A stuck process inside the unit's control group that ignores SIGTERM, and a stranger
    # called "gunicorn" outside it (what `pkill -9 gunicorn` would also have killed).
    out = fresh_host.sh(
        "cg=$(systemctl show -p ControlGroup --value gunicorn.service)\n"
        "setsid bash -c \"echo \\$\\$ > /sys/fs/cgroup/systemd$cg/cgroup.procs; trap '' TERM; "
        'exec -a gunicorn-stuck sleep 600" >/dev/null 2>&1 < /dev/null & echo stuck=$!\n'
        "setsid bash -c 'exec -a gunicorn sleep 600' >/dev/null 2>&1 < /dev/null &\n"
        "echo stranger=$!\n"
        "sleep 0.3"
    ).stdout
    pids = dict(line.split("=") for line in out.split())
    try:
        doc, r = run(fresh_host, "restart", "--force")
        assert r.returncode == 0, r.stderr
        assert doc["mode"] == "force" and doc["healthy"]
        kill = next(s for s in doc["steps"] if s["name"].startswith("kill"))
        assert f"killed [{pids['stuck']}]" in kill["detail"]
        alive = fresh_host.sh(f"kill -0 {pids['stranger']} && echo alive", check=False)
        assert alive.stdout.strip() == "alive"
        stuck = fresh_host.sh(f"kill -0 {pids['stuck']} 2>/dev/null && echo alive", check=False)
        assert stuck.stdout.strip() == ""
        # No gunicorn outside the unit: every gunicorn process is the unit's or the stranger.
        ps = fresh_host.sh("pgrep -f 'venv/bin/gunicorn'").stdout.split()
        assert set(map(int, ps)) <= set(doc["after"]["pids"])
    finally:
        fresh_host.sh(f"kill {pids['stranger']} 2>/dev/null || true")


def test_logs_since_returns_only_the_window(fresh_host):
    fresh_host.sh(
        "old=$(date -d '1 hour ago' '+%Y/%m/%d %H:%M:%S'); new=$(date '+%Y/%m/%d %H:%M:%S')\n"
        'echo "$old [error] 1#1: *1 old-nginx-line" >> /var/log/nginx/error.log\n'
        'echo "$new [error] 1#1: *2 new-nginx-line" >> /var/log/nginx/error.log\n'
        "old=$(date -d '1 hour ago' '+%Y-%m-%d %H:%M:%S'); new=$(date '+%Y-%m-%d %H:%M:%S')\n"
        'echo "$old,1 ERROR x: old-django-line" >> /var/log/cynow/django.log\n'
        'echo "$new,1 ERROR x: new-django-line" >> /var/log/cynow/django.log\n'
    )
    doc, r = run(fresh_host, "logs", "--since", "10 minutes ago")
    assert r.returncode == 0, r.stderr
    text = {k: "\n".join(e["line"] for e in v) for k, v in doc["sources"].items()}
    assert "new-nginx-line" in text["nginx"] and "old-nginx-line" not in text["nginx"]
    assert "new-django-line" in text["django"] and "old-django-line" not in text["django"]
    assert "Booting worker" in text["gunicorn"]
    doc, _ = run(fresh_host, "logs", "--since", "2 hours ago", "-n", "500")
    assert "old-nginx-line" in "\n".join(e["line"] for e in doc["sources"]["nginx"])


def test_logs_known_keeps_catalogue_lines(fresh_host):
    fresh_host.sh("systemctl stop gunicorn.service")
    urllib.request.urlopen(f"http://{fresh_host.address}/cynow/static/orders/style.css").read()
    try:
        urllib.request.urlopen(f"http://{fresh_host.address}/cynow/", timeout=5)
    except urllib.error.HTTPError:
        pass
    doc, r = run(fresh_host, "logs", "--known")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    nginx = doc["sources"]["nginx"]
    assert nginx and all(e["signature"] for e in nginx)
    assert "nginx_enoent" in {e["signature"] for e in nginx}


def test_logs_bad_since_is_one_line_exit_3(fresh_host):
    r = fab(*lab_args(fresh_host), "logs", "--since", "yesterday-ish", "--target", "lab")
    assert r.returncode == 3, r.stdout[-3000:] + r.stderr[-2000:]
    assert r.stderr.startswith("cynow-ops: --since 'yesterday-ish' is not a time")


def test_logs_follow_streams_and_leaves_nothing_behind(fresh_host):
    cmd = fab_argv(
        *lab_args(fresh_host),
        "logs",
        "--follow",
        "--target",
        "lab",
    )
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
    try:
        fresh_host.sh("sleep 1.5; systemctl kill --kill-whom=main -s HUP gunicorn.service")
        deadline = time.monotonic() + 20
        seen = ""
        while time.monotonic() < deadline and "Handling signal: hup" not in seen:
            seen += proc.stdout.readline()
        assert "Handling signal: hup" in seen
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C, to the process this test started
        proc.wait(timeout=10)
    time.sleep(0.5)
    left = fresh_host.sh("pgrep -a 'tail|journalctl' || true").stdout
    assert left.strip() == ""


BREAK_PERMISSIONS = """
chmod 700 /home/cynow                                    # bookworm adduser's default home
chmod 644 /home/cynow/cynow/.env                         # a world-readable secret
chown -R root:root /home/cynow/cynow/static              # collectstatic run as root...
chmod -R go-rwx /home/cynow/cynow/static                 # ...under umask 077
chown root:root /home/cynow/cynow/db.sqlite3             # `sudo manage.py migrate`
chmod 444 /home/cynow/cynow/db.sqlite3
chmod 666 /home/cynow/cynow/orders/views.py
"""
MODES = (
    "stat -c '%a %U:%G %n' /home/cynow /home/cynow/cynow/.env /home/cynow/cynow/db.sqlite3 "
    "/home/cynow/cynow/static /home/cynow/cynow/static/orders/style.css "
    "/home/cynow/cynow/manage.py /home/cynow/cynow/venv/bin/gunicorn "
    "/home/cynow/cynow/orders/views.py"
)


def test_fix_permissions_from_a_broken_tree(fresh_host):
    fresh_host.sh(BREAK_PERMISSIONS)
    doc, _ = run(fresh_host, "diagnose")
    assert doc["verdict"]["cause"] == "socket_permission_denied"
    assert "database_unwritable" in {a["cause"] for a in doc["verdict"]["also"]}
    before = fresh_host.sh(MODES).stdout

    plan, r = run(fresh_host, "fix-permissions", "--dry-run")
    assert r.returncode == 0 and plan["dry_run"], r.stdout[-3000:] + r.stderr[-2000:]
    assert fresh_host.sh(MODES).stdout == before  # --dry-run changed nothing
    planned = {(c["path"], c["after"]) for c in plan["changes"]}
    assert ("/home/cynow", "701 cynow:cynow") in planned

    done, r = run(fresh_host, "fix-permissions")
    assert r.returncode == 0, r.stderr
    assert {(c["path"], c["after"]) for c in done["changes"]} == planned  # dry-run was exact
    assert done["remaining"] == [] and done["errors"] == []
    after = {
        path: f"{mode} {owner}"
        for mode, owner, path in (
            ln.split(" ", 2) for ln in fresh_host.sh(MODES).stdout.splitlines()
        )
    }
    assert after == {
        "/home/cynow": "701 cynow:cynow",
        "/home/cynow/cynow/.env": "640 cynow:cynow",
        "/home/cynow/cynow/db.sqlite3": "640 cynow:cynow",
        "/home/cynow/cynow/static": "750 cynow:www-data",
        "/home/cynow/cynow/static/orders/style.css": "640 cynow:www-data",
        "/home/cynow/cynow/manage.py": "644 cynow:www-data",  # no x added
        "/home/cynow/cynow/venv/bin/gunicorn": "755 cynow:www-data",  # x kept
        "/home/cynow/cynow/orders/views.py": "644 cynow:www-data",  # www-data writes no code
    }
    assert (
        urllib.request.urlopen(f"http://{fresh_host.address}/cynow/static/orders/style.css").status
        == 200
    )
    assert diagnose_cause(fresh_host) == "healthy"

    again, r = run(fresh_host, "fix-permissions")
    assert r.returncode == 0 and again["changes"] == [], r.stdout[-3000:] + r.stderr[-2000:]
    human = fab(*lab_args(fresh_host), "fix-permissions", "--target", "lab")
    assert "permissions already right; nothing to change" in human.stdout


def test_fix_permissions_refuses_a_system_directory(fresh_host, tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("cynow:\n  django_log: /var/log/django.log\n")
    r = fab("-f", str(conf), "-H", f"cynow@{fresh_host.address}", "fix-permissions", home=tmp_path)
    assert r.returncode == 3, r.stdout[-3000:] + r.stderr[-2000:]
    assert "refusing to change permissions under /var/log" in r.stderr


def diagnose_cause(host) -> str:
    doc, _ = run(host, "diagnose")
    return doc["verdict"]["cause"]


def pid1_started(host) -> str:
    return host.sh("stat -c %Y /proc/1").stdout.strip()


def test_reboot_waits_for_the_host_and_diagnoses(fresh_host):
    before = pid1_started(fresh_host)
    doc, r = run(fresh_host, "reboot", "--yes")
    assert r.returncode == 0, r.stderr
    assert doc["rebooted"] and doc["diagnosis"]["verdict"]["cause"] == "healthy"
    assert pid1_started(fresh_host) != before  # a new boot of the same host


def test_reboot_is_refused_when_gunicorn_would_not_come_back(fresh_host):
    fresh_host.sh("systemctl disable gunicorn.service")
    before = pid1_started(fresh_host)
    r = fab(*lab_args(fresh_host), "reboot", "--yes", "--target", "lab")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert "refusing to reboot: gunicorn.service is disabled" in r.stderr
    assert pid1_started(fresh_host) == before


def test_reboot_without_a_terminal_needs_yes(fresh_host):
    r = fab(*lab_args(fresh_host), "reboot", "--target", "lab")
    assert r.returncode == 3 and "pass --yes" in r.stderr, r.stdout[-3000:] + r.stderr[-2000:]
