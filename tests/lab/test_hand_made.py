"""A lab host set up by hand, not by the guide: the checkout in /srv/cynow, the venv `.venv`,
the socket in the unit's RuntimeDirectory (/run/cynow), nginx pointing there, and the guide's
paths gone. The user names only the host (`-H`), no config: every task must find the server
where it is (tasks/discovery.py). Before, diagnose said `socket_permission_denied` here, which
was false, and a deploy would have worked on a checkout that does not exist."""

from __future__ import annotations

import pytest

from tests.lab.helpers import APP, fab_json, lab_args, push_commit, wait_for
from tests.lab.test_deploy import get

pytestmark = pytest.mark.lab

NEW = "/srv/cynow"
SOCK = "/run/cynow/gunicorn.sock"
UNIT = "/etc/systemd/system/gunicorn.service"
SITE = "/etc/nginx/sites-available/cynow"

HAND_MADE = " && ".join(
    [
        "set -e",
        f"cp -a {APP} {NEW}",
        f"rm -rf {NEW}/venv {NEW}/gunicorn.sock",
        # A fresh venv at the new place (a venv cannot be moved: its scripts name their python).
        f"su cynow -c 'python3 -m venv {NEW}/.venv && {NEW}/.venv/bin/pip install -q "
        f"-r {NEW}/requirements.txt'",
        f"sed -i -e 's|WorkingDirectory={APP}|WorkingDirectory={NEW}|' "
        f"-e 's|{APP}/venv/bin/gunicorn|{NEW}/.venv/bin/gunicorn|' "
        f"-e 's|--bind unix:{APP}/gunicorn.sock|--bind unix:{SOCK}|' "
        f"-e 's|^\\[Service\\]|[Service]\\nRuntimeDirectory=cynow|' {UNIT}",
        f"sed -i -e 's|unix:{APP}/gunicorn.sock|unix:{SOCK}|' -e 's|{APP}/static/|{NEW}/static/|' "
        f"{SITE}",
        "systemctl daemon-reload && systemctl restart gunicorn",
        # The guide's checkout is gone: nothing can work by landing on it.
        f"mv {APP} {APP}.old",
        "nginx -t && systemctl reload nginx",
    ]
)


@pytest.fixture
def hand_made(fresh_host):
    fresh_host.sh(HAND_MADE)
    wait_for(fresh_host, f"test -S {SOCK}")
    assert get(fresh_host) == 200
    return fresh_host


def check(doc, check_id):
    return next(c for c in doc["checks"] if c["id"] == check_id)


def test_diagnose_with_only_the_host_finds_the_server_where_it_is(hand_made):
    doc, r = fab_json(*lab_args(hand_made), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr[-2000:])
    assert doc["discovered"] == {
        "project_dir": {"value": NEW, "source": "WorkingDirectory="},
        "venv": {"value": f"{NEW}/.venv", "source": "ExecStart's gunicorn"},
        "socket": {"value": SOCK, "source": "gunicorn's --bind"},
        "static_root": {"value": f"{NEW}/static", "source": "static/ in the checkout"},
    }
    assert check(doc, "layout.config")["status"] == "ok", check(doc, "layout.config")
    assert check(doc, "http.socket")["status"] == "ok"
    # The human report says which values came from the server.
    info = fab_json(*lab_args(hand_made), "info", "--target", "lab")[0]["hosts"][0]
    layout = {v["key"]: v for v in info["layout"]}
    assert layout["project_dir"]["config_source"] == "discovered: WorkingDirectory="
    assert not any(v["disagrees"] for v in layout.values()), layout


def test_deploy_fix_permissions_and_restart_work_on_the_servers_checkout(hand_made):
    push_commit(hand_made, {"README": "hand-made\n"}, "docs: a server set up by hand")
    doc, r = fab_json(*lab_args(hand_made), "deploy", "--target", "lab")
    assert r.returncode == 0 and doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]
    head = hand_made.sh(f"su cynow -c 'git -C {NEW} log -1 --format=%s'").stdout.strip()
    assert head == "docs: a server set up by hand"
    assert get(hand_made) == 200
    doc, r = fab_json(*lab_args(hand_made), "fix-permissions", "--dry-run", "--target", "lab")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert NEW in r.stdout and f"{APP}/" not in r.stdout.replace(f"{APP}.old", "")
    doc, r = fab_json(*lab_args(hand_made), "restart", "--target", "lab")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert get(hand_made) == 200


def test_a_config_that_says_otherwise_is_kept_and_the_disagreement_named(hand_made):
    # A value the user set is an expectation: never replaced by the server's, compared instead.
    doc, r = fab_json(
        *lab_args(hand_made),
        "diagnose",
        "--target",
        "lab",
        env={"FABRIC_CYNOW_PROJECT_DIR": f"{APP}.old"},
    )
    assert "project_dir" not in doc["discovered"]
    c = check(doc, "layout.config")
    assert c["status"] == "warn" and any(
        f"project_dir: expected {APP}.old (config); WorkingDirectory= says {NEW}" in e
        for e in c["evidence"]
    ), c
