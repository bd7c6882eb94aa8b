"""`fab diagnose` on the lab beyond naming each cause (tests/lab/test_diagnose.py): the exit
code when nothing answers, the human report, a server left exactly as found, and the service's
environment file read as systemd reads it. Every test starts from a pristine lab host."""

from __future__ import annotations

import pytest

from tests.lab.helpers import LOGIN, fab, fab_json, lab_args, restart_gunicorn
from tests.lab.test_diagnose import assert_cause, check, diagnose

pytestmark = pytest.mark.lab


def test_unreachable_is_exit_2_with_a_verdict(tmp_path):
    doc, r = fab_json("-H", "cynow@127.0.0.99", "diagnose", home=tmp_path)
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-2000:]
    assert doc["verdict"]["cause"] == "unreachable"
    assert "refused the connection" in doc["verdict"]["evidence"][0]


def test_human_report(fresh_host):
    fresh_host.sh("systemctl stop gunicorn.service")
    r = fab(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    for text in (
        "gunicorn.service running",
        "✗",
        "Verdict: gunicorn_stopped",
        "$ sudo systemctl start gunicorn.service",
        "checks in",
    ):
        assert text in r.stdout


# What diagnose must leave exactly as it found it. Left out: logs and the journal (reading a
# server appends to them like any visit), Python's bytecode caches, and /tmp's own mtime
# (systemd-analyze verify uses scratch files there); everything inside /tmp is compared.
SNAPSHOT = r"""
{ find /home/cynow /etc/nginx /etc/systemd/system /srv/git \
     -path '*/__pycache__' -prune -o -path /home/cynow/cynow/venv -prune -o \
     -printf '%p %m %u:%g %s %T@\n'
  find /tmp -mindepth 1 -printf '%p %m %u:%g %s %T@\n'; } | sort
ls -l /home/cynow/cynow/gunicorn.sock 2>&1
systemctl show -p ActiveState -p SubState -p MainPID -p NRestarts -p NeedDaemonReload \
     gunicorn.service nginx.service
git -C /home/cynow/cynow rev-parse HEAD; git -C /home/cynow/cynow for-each-ref
git -C /home/cynow/cynow status --porcelain
pgrep -a gunicorn | sort
"""


@pytest.mark.parametrize("broken", [False, True], ids=["healthy", "gunicorn-stopped"])
def test_diagnose_changes_nothing_on_the_server(fresh_host, broken):
    if broken:  # also exercises the by-hand gunicorn run on a temporary socket
        fresh_host.sh("systemctl stop gunicorn.service")
    # Like any server whose admin has used sudo before: sudo's first use creates a marker file.
    fresh_host.sh("sudo -n true", user=LOGIN)
    before = fresh_host.sh(SNAPSHOT).stdout
    doc, r = diagnose(fresh_host)
    assert r.returncode in (0, 1)
    assert (check(doc, "http.manual")["status"] == "ok") is broken
    after = fresh_host.sh(SNAPSHOT).stdout
    assert after.splitlines() == before.splitlines()


MOVE_SECRET = (
    "cd /home/cynow/cynow && secret=$(cut -d= -f2 .env) && rm .env && mkdir -p /etc/cynow && "
    'echo "DJANGO_SECRET_KEY=$secret" > /etc/cynow/env && chgrp www-data /etc/cynow/env && '
    "chmod {mode} /etc/cynow/env && mkdir -p /etc/systemd/system/gunicorn.service.d && "
    "printf '[Service]\\nEnvironmentFile=/etc/cynow/env\\n' > "
    "/etc/systemd/system/gunicorn.service.d/env.conf && systemctl daemon-reload"
)


def test_the_units_environment_file_is_used(fresh_host):
    # The secret moved from .env to the unit's EnvironmentFile: a working setup, not an error.
    fresh_host.sh(MOVE_SECRET.format(mode="640"))
    restart_gunicorn(fresh_host)
    doc, r = diagnose(fresh_host)
    assert_cause(doc, r, "healthy")


def test_an_environment_file_only_root_can_read_is_used(fresh_host):
    fresh_host.sh(MOVE_SECRET.format(mode="600"))
    restart_gunicorn(fresh_host)
    doc, r = diagnose(fresh_host)
    # systemd reads the file as root, and so does the probe's wrapper (tasks/service.py): the
    # import runs with the secret, as the service's does, and nothing had to be guessed.
    assert_cause(doc, r, "healthy")
    assert check(doc, "django.wsgi")["status"] == "ok"
    assert "s3cr3t" not in r.stdout and "DJANGO_SECRET_KEY=" not in r.stdout


def test_an_environment_file_the_unit_names_but_nobody_can_read_is_said(fresh_host):
    fresh_host.sh(MOVE_SECRET.format(mode="600") + " && mv /etc/cynow/env /etc/cynow/env.gone")
    doc, r = diagnose(fresh_host)
    # The service cannot start with it missing; the probe ran without it and says so.
    wsgi = check(doc, "django.wsgi")
    assert any("EnvironmentFile /etc/cynow/env cannot be read" in e for e in wsgi["evidence"])
