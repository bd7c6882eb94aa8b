"""`fab upgrade-unit` on the lab: the guide's unit becomes gunicorn.socket + gunicorn.service
under load with no failed request; a second run changes nothing and says so; `fab diagnose` is
healthy, `systemctl reload` works and a full `systemctl restart gunicorn` under load fails no
request; `--undo` brings the guide's unit back; a failure injected after the daemon-reload puts
the old units back and the site answers."""

from __future__ import annotations

import pytest

from tests.lab.helpers import REPO, Load, curl_nginx, fab, fab_json, lab_args

pytestmark = pytest.mark.lab

GUIDE_UNIT = (REPO / "tests/lab/gunicorn.service").read_text()
SOCKET = "/home/cynow/cynow/gunicorn.sock"


@pytest.fixture
def host(fresh_host):
    """lab2, pristine. The lab cannot kill a user manager's control group: a user@.service
    stopping (10 s after a login's last session) holds the next login for 90 s; lingering keeps
    them running."""
    fresh_host.sh("loginctl enable-linger root cynow admin")
    return fresh_host


def upgrade(host, *extra, env=None):
    return fab_json(*lab_args(host), "upgrade-unit", "--target", "lab", *extra, env=env)


def unit_files(host) -> dict:
    out = host.sh(
        "cat /etc/systemd/system/gunicorn.service; echo '@@'; "
        "cat /etc/systemd/system/gunicorn.socket 2>/dev/null; echo '@@'; "
        "systemctl is-active gunicorn.socket gunicorn.service; "
        "systemctl is-enabled gunicorn.socket 2>/dev/null; true"
    ).stdout
    service, socket, states = out.split("@@\n")
    return {"service": service, "socket": socket, "states": states.split()}


def healthy(host) -> None:
    doc, r = fab_json(*lab_args(host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr)
    assert r.returncode == 0


def test_upgrade_no_change_restart_and_undo(host):
    # --dry-run: the diff of both files, nothing changed.
    doc, r = upgrade(host, "--dry-run")
    assert r.returncode == 0 and doc["result"] == "would-change", doc
    assert "+++ /etc/systemd/system/gunicorn.socket" in doc["diff"]
    assert "+Requires=gunicorn.socket" in doc["diff"]
    assert unit_files(host)["service"] == GUIDE_UNIT and unit_files(host)["socket"] == ""

    with Load(f"http://{host.address}/cynow/") as load:
        doc, r = upgrade(host)
    assert r.returncode == 0 and doc["result"] == "upgraded", (doc, r.stderr)
    assert load.failed == 0 and load.ok > 0, (load.ok, load.failed)
    names = [st["name"] for st in doc["steps"]]
    assert names == [
        "snapshot",
        "stage",
        "verify",
        "daemon-reload",
        "switch",
        "health",
        "reload works",
    ]
    files = unit_files(host)
    assert "Requires=gunicorn.socket\n" in files["service"]
    assert "Type=notify\n" in files["service"] and "KillMode=mixed\n" in files["service"]
    assert "ExecReload=/bin/kill -s HUP $MAINPID\n" in files["service"]
    assert f"ListenStream={SOCKET}\n" in files["socket"]
    assert files["states"] == ["active", "active", "enabled"]
    st = host.sh(f"stat -c '%U:%G %a' {SOCKET}; stat -c %A /home/cynow/cynow").stdout.split()
    assert st[:2] == ["www-data:www-data", "660"]
    assert "s" not in st[2][4:7], "the directory's set-group-ID bit is removed again"
    healthy(host)

    # Already upgraded: no change, says so, exit 0.
    doc, r = upgrade(host)
    assert r.returncode == 0 and doc["result"] == "unchanged", doc
    assert "already socket-activated" in doc["message"] and doc["steps"] == []

    # The guide's restart, on the new unit, under load: nothing fails; reload works too.
    with Load(f"http://{host.address}/cynow/") as load:
        host.sh("systemctl restart gunicorn.service && sleep 1 && systemctl reload gunicorn")
    assert load.failed == 0 and load.ok > 0, (load.ok, load.failed)
    assert curl_nginx(host) == 200

    # --undo: the guide's unit back, the socket unit gone, nothing failed meanwhile.
    with Load(f"http://{host.address}/cynow/") as load:
        doc, r = upgrade(host, "--undo")
    assert r.returncode == 0 and doc["result"] == "restored", (doc, r.stderr)
    assert load.failed == 0, (load.ok, load.failed)
    files = unit_files(host)
    assert files["service"] == GUIDE_UNIT and files["socket"] == ""
    assert files["states"][:2] == ["inactive", "active"]
    healthy(host)


def test_failure_after_daemon_reload_puts_the_old_units_back(host):
    env = {"CYNOW_OPS_FAULT": "upgrade-unit:after-daemon-reload"}
    with Load(f"http://{host.address}/cynow/") as load:
        doc, r = upgrade(host, env=env)
    assert r.returncode == 1 and doc["result"] == "rolled-back", (doc, r.stderr)
    assert [st["name"] for st in doc["steps"]][-3:] == [
        "fault injected after daemon-reload",
        "undo: old units back",
        "undo: health",
    ]
    assert load.failed == 0, (load.ok, load.failed)
    files = unit_files(host)
    assert files["service"] == GUIDE_UNIT and files["socket"] == ""
    assert curl_nginx(host) == 200 and curl_nginx(host, "/cynow/") == 200
    # The snapshot stays, root-only.
    snap = host.sh(
        f"stat -c '%a %U' /var/lib/cynow-ops/unit-snapshots; "
        f"cmp /var/lib/cynow-ops/unit-snapshots/{doc['snapshot']}/old/gunicorn.service "
        "/etc/systemd/system/gunicorn.service && echo same"
    ).stdout.split()
    assert snap == ["700", "root", "same"]
    healthy(host)


def test_refuses_a_unit_with_drop_ins(host):
    host.sh(
        "mkdir -p /etc/systemd/system/gunicorn.service.d && printf '[Service]\\nNice=1\\n' "
        "> /etc/systemd/system/gunicorn.service.d/nice.conf && systemctl daemon-reload"
    )
    r = fab(*lab_args(host), "upgrade-unit", "--target", "lab")
    assert r.returncode == 1 and "drop-ins" in r.stderr, (r.stdout, r.stderr)
    assert r.stderr.startswith("cynow-ops: ") and "Traceback" not in r.stderr, r.stderr
    assert unit_files(host)["service"] == GUIDE_UNIT
