"""A lab host laid out as many hand-made servers are: gunicorn on TCP (`--bind HOST:PORT`,
nginx `proxy_pass http://HOST:PORT`), the guide's step 1 port. Lab hosts share one network
namespace, so the host binds its own 127.0.0.x address, not 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.lab.helpers import APP, fab_json, lab_args, push_commit, wait_for
from tests.lab.test_deploy import get

pytestmark = pytest.mark.lab


def to_tcp(host) -> str:
    bind = f"{host.address}:8000"
    host.sh(
        f"sed -i 's|--bind unix:{APP}/gunicorn.sock|--bind {bind}|' "
        "/etc/systemd/system/gunicorn.service && "
        f"sed -i 's|proxy_pass http://unix:{APP}/gunicorn.sock;|proxy_pass http://{bind};|' "
        "/etc/nginx/sites-available/cynow && "
        f"systemctl daemon-reload && systemctl restart gunicorn && rm -f {APP}/gunicorn.sock && "
        "nginx -t && systemctl reload nginx"
    )
    wait_for(host, f"ss -tlnH 'sport = :8000' | grep -qF {bind}")
    assert get(host) == 200
    return bind


@pytest.fixture
def tcp_host(fresh_host):
    fresh_host.bind = to_tcp(fresh_host)
    return fresh_host


def check(doc, check_id):
    return next(c for c in doc["checks"] if c["id"] == check_id)


def run(host, *args):
    return fab_json(*lab_args(host), *args, env={"FABRIC_CYNOW_SOCKET": host.bind})


def test_a_tcp_bind_is_healthy_when_configured(tcp_host):
    doc, r = run(tcp_host, "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr)
    assert check(doc, "listener.socket")["summary"].startswith("listened by gunicorn")
    assert check(doc, "layout.config")["status"] == "ok"
    assert check(doc, "http.socket")["status"] == "ok"


def test_without_the_setting_the_tcp_bind_is_taken_from_the_unit(tcp_host):
    # Only the host: the unit's --bind HOST:PORT is the one the tool uses (tasks/discovery.py).
    doc, r = fab_json(*lab_args(tcp_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr)
    assert doc["discovered"]["socket"] == {"value": tcp_host.bind, "source": "gunicorn's --bind"}
    assert check(doc, "layout.config")["status"] == "ok"
    info, r = fab_json(*lab_args(tcp_host), "info", "--target", "lab")
    layout = {v["key"]: v for v in info["hosts"][0]["layout"]}
    assert layout["socket"]["value"] == tcp_host.bind and not layout["socket"]["disagrees"]
    assert layout["socket"]["config_source"] == "discovered: gunicorn's --bind"
    assert layout["nginx_upstream"]["value"] == tcp_host.bind


def test_a_configured_socket_the_unit_contradicts_is_named(tcp_host):
    socket = f"{APP}/gunicorn.sock"
    doc, r = fab_json(
        *lab_args(tcp_host), "diagnose", "--target", "lab", env={"FABRIC_CYNOW_SOCKET": socket}
    )
    c = check(doc, "layout.config")
    assert c["status"] == "warn", c
    assert any(
        f"socket: expected {socket} (config); gunicorn's TCP --bind says {tcp_host.bind}" in e
        for e in c["evidence"]
    ), c["evidence"]


def test_deploy_and_a_stopped_gunicorn_on_tcp(tcp_host):
    push_commit(tcp_host, {"README": "tcp\n"}, "docs")
    doc, r = run(tcp_host, "deploy", "--target", "lab")
    assert r.returncode == 0 and doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]
    assert get(tcp_host) == 200
    tcp_host.sh("systemctl stop gunicorn")
    doc, r = run(tcp_host, "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "gunicorn_stopped", doc["verdict"]
    assert "nothing listens on" in check(doc, "listener.socket")["summary"]
    r2 = run(tcp_host, "restart", "--target", "lab")[1]
    assert r2.returncode == 0, r2.stdout[-3000:] + r2.stderr[-2000:]
    assert get(tcp_host) == 200
