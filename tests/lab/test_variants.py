"""Every server layout the tool supports, each put through the same core scenario with only the
host named (`-H`, no layout config): servers set up by hand differ from the guide, and the tool
must find each one as it is (issue 11).

The scenario, per layout:
1. `fab diagnose` says healthy;
2. a release with a new page deploys under load (4 clients through nginx): 0 failed requests,
   the new page answers;
3. `fab rollback` returns to the start: the code, the new page gone, the site up;
4. a fault (gunicorn stopped): diagnosed as such, `fab repair --yes` brings the site back;
5. the app's secret appears in no output of the tool, nor in its lock or history on the server.
"""

from __future__ import annotations

import os

import pytest

from tasks.shell import q
from tests.lab import lab
from tests.lab.helpers import APP, LabHost, Load, fab_json, lab_args, push_commit, wait_for
from tests.lab.test_deploy import COUNT_PAGE, get
from tests.lab.test_hand_made import HAND_MADE
from tests.lab.test_hand_made import NEW as HAND_MADE_DIR
from tests.lab.test_hand_made import SOCK as HAND_MADE_SOCK
from tests.lab.test_layout_more import to_config_file
from tests.lab.test_postgres import pg_setup
from tests.lab.test_service_env import DB
from tests.lab.test_socket_activation import activated
from tests.lab.test_tcp_bind import to_tcp

pytestmark = pytest.mark.lab

# The database outside the checkout and the secret out of .env, both in one EnvironmentFile
# only root can read (systemd reads it as root): the app's code must run with it.
ENVIRONMENT_FILE = (
    f"set -e; cd {APP}; secret=$(cut -d= -f2- .env); rm .env; "
    f"install -d -o cynow -g cynow -m 750 /var/lib/cynow; mv db.sqlite3 {DB}; "
    "install -d -m 755 /etc/cynow; "
    f'printf "DJANGO_SECRET_KEY=%s\\nCYNOW_DB_PATH=%s\\n" "$secret" {DB} > /etc/cynow/env; '
    "chmod 600 /etc/cynow/env; mkdir -p /etc/systemd/system/gunicorn.service.d; "
    "printf '[Service]\\nEnvironmentFile=/etc/cynow/env\\n' > "
    "/etc/systemd/system/gunicorn.service.d/env.conf; systemctl daemon-reload; "
    "systemctl restart gunicorn"
)


def _environment_file(host: LabHost) -> None:
    host.sh(ENVIRONMENT_FILE)
    wait_for(host, f"test -S {APP}/gunicorn.sock")


def _hand_made(host: LabHost) -> None:
    host.sh(HAND_MADE)
    wait_for(host, f"test -S {HAND_MADE_SOCK}")


# name: (Debian suite, the change from the guide's layout, the checkout it leaves)
VARIANTS = {
    "debian13": ("trixie", None, APP),
    "socket_activation": ("bookworm", activated, APP),
    "tcp_bind": ("bookworm", to_tcp, APP),
    "gunicorn_config_file": ("bookworm", to_config_file, APP),
    "environment_file": ("bookworm", _environment_file, APP),
    "hand_made": ("bookworm", _hand_made, HAND_MADE_DIR),
    "postgresql": ("bookworm", pg_setup, APP),
}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request, lab_image):
    suite, setup, checkout = VARIANTS[request.param]
    if suite != lab.SUITE:
        # Built by `./dev test` (lab.py build --suite …) before pytest: the build downloads.
        if not lab.image_is_current(suite):
            why = f"the {suite} lab image is not built: ./dev lab build --suite {suite}"
            pytest.fail(why) if os.environ.get("CI") == "true" else pytest.skip(why)
    host = LabHost(lab.reset(2, suite=suite))
    if setup:
        setup(host)
    host.checkout = checkout
    assert get(host) == 200
    # The secret key, wherever this layout keeps it (.env, or the unit's EnvironmentFile).
    env = host.sh(f"cat /etc/cynow/env {q(checkout)}/.env 2>/dev/null; true").stdout
    host.secret = next(
        line.split("=", 1)[1] for line in env.splitlines() if line.startswith("DJANGO_SECRET_KEY=")
    )
    yield host
    if suite != lab.SUITE:
        lab.down(2)  # the next test's lab2 boots on the default image


def fab(host, *args):
    doc, r = fab_json(*lab_args(host), *args, "--target", "lab")
    host.outputs.append(r.stdout + r.stderr)
    return doc, r


def why(doc, r) -> str:
    keep = {k: doc.get(k) for k in ("result", "failed_step", "error", "verdict")}
    return f"{keep}\n{r.stdout[-2500:]}\n{r.stderr[-1500:]}"


def test_core_scenario(variant):
    host = variant
    host.outputs = []
    head = host.sh(f"git -C {host.checkout} rev-parse HEAD", user="cynow").stdout.strip()

    doc, r = fab(host, "diagnose")
    assert doc["verdict"]["cause"] == "healthy", why(doc, r)

    new = push_commit(host, COUNT_PAGE, "orders: count")
    with Load(f"http://{host.address}/cynow/orders/", clients=4) as load:
        doc, r = fab(host, "deploy")
    assert r.returncode == 0 and doc["result"] == "deployed" and doc["new"] == new, why(doc, r)
    assert load.failed == 0 and load.ok > 0, (load.ok, load.failed)
    assert get(host, "/cynow/orders/count/") == 200

    doc, r = fab(host, "rollback")
    assert r.returncode == 0, why(doc, r)
    assert host.sh(f"git -C {host.checkout} rev-parse HEAD", user="cynow").stdout.strip() == head
    assert get(host, "/cynow/orders/count/") == 404
    assert get(host) == 200

    # The fault: gunicorn stopped (and, when systemd holds the socket, its socket unit too: with
    # the socket listening a stopped gunicorn is healthy, started by the next request).
    host.sh(
        "systemctl stop gunicorn.socket gunicorn.service 2>/dev/null || systemctl stop gunicorn"
    )
    doc, r = fab(host, "diagnose")
    assert doc["verdict"]["cause"] == "gunicorn_stopped", why(doc, r)
    doc, r = fab(host, "repair", "--yes")
    assert r.returncode == 0, why(doc, r)
    assert get(host) == 200
    doc, r = fab(host, "diagnose")
    assert doc["verdict"]["cause"] == "healthy", why(doc, r)

    # The secret: in no output, and not in what the tool keeps on the server.
    assert len(host.secret) >= 16
    for text in host.outputs:
        assert host.secret not in text
    kept = host.sh(f"grep -rlF -e {q(host.secret)} /var/lib/cynow-ops || true").stdout
    assert kept == "", kept


def test_restarts_of_a_socket_activated_server_fail_no_request(lab_image):
    """With systemd holding the socket, a restart keeps it: requests wait in its backlog while
    gunicorn comes back. Measured through nginx, for `fab restart` (graceful) and `fab restart
    --force`, and for the guide's own `systemctl restart gunicorn`."""
    host = LabHost(lab.reset(2))
    activated(host)
    url = f"http://{host.address}/cynow/orders/"
    for how in (["restart"], ["restart", "--force"]):
        with Load(url, clients=4) as load:
            doc, r = fab_json(*lab_args(host), *how, "--target", "lab")
        assert r.returncode == 0, why(doc, r)
        assert load.failed == 0 and load.ok > 0, (how, load.ok, load.failed)
    with Load(url, clients=4) as load:
        host.sh("systemctl restart gunicorn.service")
        wait_for(host, "systemctl is-active -q gunicorn.service")
    assert load.failed == 0 and load.ok > 0, ("systemctl restart", load.ok, load.failed)
