"""A lab host set up as the DigitalOcean tutorial and gunicorn's own docs do it: systemd holds
`/run/gunicorn.sock` (gunicorn.socket, ListenStream=), gunicorn.service requires it, nginx
proxies to it, and the guide's socket path is nowhere. The user names only the host. Before,
diagnose said `unknown` here; it must find the socket through the socket unit, stay healthy
while gunicorn waits to be started by the first request, and deploy."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from tests.lab.helpers import APP, fab_json, lab_args, push_commit, wait_for
from tests.lab.test_deploy import get

pytestmark = pytest.mark.lab

SOCK = "/run/gunicorn.sock"
UNIT = "/etc/systemd/system/gunicorn.service"
SITE = "/etc/nginx/sites-available/cynow"
SOCKET_UNIT = f"""[Unit]
Description=gunicorn socket

[Socket]
ListenStream={SOCK}
SocketUser=www-data
SocketMode=0660

[Install]
WantedBy=sockets.target
"""


def activated(host) -> None:
    host.sh(
        " && ".join(
            [
                "set -e",
                f"printf %s {shlex.quote(SOCKET_UNIT)} > /etc/systemd/system/gunicorn.socket",
                "sed -i -e 's|^After=network.target|Requires=gunicorn.socket\\n&|'"
                f" -e 's|--bind unix:{APP}/gunicorn.sock|--bind unix:{SOCK}|' {UNIT}",
                f"sed -i 's|unix:{APP}/gunicorn.sock|unix:{SOCK}|' {SITE}",
                "systemctl daemon-reload",
                "systemctl stop gunicorn.service",
                f"rm -f {APP}/gunicorn.sock",
                "systemctl enable --now gunicorn.socket",
                "systemctl start gunicorn.service",
                "nginx -t && systemctl reload nginx",
            ]
        )
    )
    wait_for(host, f"test -S {SOCK}")
    assert get(host) == 200


@pytest.fixture
def socket_host(fresh_host):
    activated(fresh_host)
    return fresh_host


def check(doc, check_id):
    return next(c for c in doc["checks"] if c["id"] == check_id)


def test_the_socket_unit_names_the_socket_and_a_waiting_gunicorn_is_healthy(socket_host):
    doc, r = fab_json(*lab_args(socket_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr[-2000:])
    assert doc["discovered"]["socket"] == {
        "value": SOCK,
        "source": "the socket unit's ListenStream=",
    }
    assert check(doc, "services.gunicorn_socket")["status"] == "ok"
    # Socket activation: gunicorn stopped, systemd still listening; the next request starts it.
    socket_host.sh("systemctl stop gunicorn.service")
    state = socket_host.sh("systemctl is-active gunicorn.socket || true").stdout.strip()
    assert state == "active"
    doc, r = fab_json(*lab_args(socket_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr[-2000:])
    assert check(doc, "services.gunicorn")["status"] == "ok", check(doc, "services.gunicorn")
    assert check(doc, "listener.socket")["status"] == "ok", check(doc, "listener.socket")


SHOWN = "Id,LoadState,ActiveState,SubState,User,Group,WorkingDirectory,ExecStart,Listen"


def test_info_shows_the_socket_files_owner_and_mode_from_the_socket_unit(socket_host):
    doc, r = fab_json(*lab_args(socket_host), "info", "--target", "lab")
    [host] = doc["hosts"]
    said = {v["key"]: (v["value"], v["source"]) for v in host["layout"]}
    assert said["socket_user"] == ("www-data", "socket unit"), said
    assert said["socket_mode"] == ("0660", "socket unit")
    assert said["socket_group"] == ("root", "socket unit")  # none set: systemd's own
    if os.environ.get("CYNOW_RECAPTURE"):
        # The unit tests' captured `systemctl show` (tests/unit/test_layout.py).
        text = socket_host.sh(
            f"systemctl show -p {SHOWN},SocketUser,SocketGroup,SocketMode "
            "gunicorn.service gunicorn.socket"
        ).stdout
        Path(__file__).parents[1].joinpath(
            "unit", "data", "systemctl_show_socket_unit.txt"
        ).write_text(text)


def test_deploy_on_a_socket_activated_server(socket_host):
    push_commit(socket_host, {"README": "activated\n"}, "docs: socket activation")
    doc, r = fab_json(*lab_args(socket_host), "deploy", "--target", "lab")
    assert r.returncode == 0 and doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]
    assert get(socket_host) == 200
