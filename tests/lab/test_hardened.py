"""A hardened server (issue 13): the app user cynow cannot sudo, a separate login `admin` can.
Every everyday task works logged in as admin, and none runs the app's python or git as root.
Runs in normal mode too (the test drops cynow's sudo itself), so CI covers it."""

from __future__ import annotations

import pytest

import tests.lab.helpers as helpers
from tests.lab.helpers import APP, deploy_notes, drop_app_sudo, fab, fab_json, lab_args

pytestmark = pytest.mark.lab

UIDS = "/var/log/cynow-lab-uids.log"

# Wrappers that log the uid running the app's python and git, then run the real ones.
WRAP = f"""set -e
install -m 0666 /dev/null {UIDS}
rm {APP}/venv/bin/python
printf '#!/bin/sh\\necho "$(id -u) python $*" >> {UIDS}\\nexec {APP}/venv/bin/python3 "$@"\\n' \\
  > {APP}/venv/bin/python
chown cynow:www-data {APP}/venv/bin/python && chmod 0755 {APP}/venv/bin/python
printf '#!/bin/sh\\necho "$(id -u) git $*" >> {UIDS}\\nexec /usr/bin/git "$@"\\n' \\
  > /usr/local/bin/git
chmod 0755 /usr/local/bin/git
"""


def test_everyday_tasks_as_admin_with_an_app_user_without_sudo(fresh_host):
    drop_app_sudo(fresh_host)
    fresh_host.sh(WRAP)
    admin = lab_args(fresh_host, user="admin")

    doc, r = fab_json(*admin, "diagnose", "--target", "lab")
    assert r.returncode == 0 and doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr)
    for task in (["status"], ["info"]):
        r = fab(*admin, *task, "--target", "lab")
        assert r.returncode == 0, (task, r.stdout, r.stderr)

    # deploy_notes logs in as helpers.LOGIN; here the login is admin whatever the mode.
    login, helpers.LOGIN = helpers.LOGIN, "admin"
    try:
        deploy_notes(fresh_host)
    finally:
        helpers.LOGIN = login
    doc, r = fab_json(*admin, "rollback", "--target", "lab")
    assert r.returncode == 0 and doc["result"] == "rolled-back-by-request", (doc, r.stderr)
    for task in (["fix-permissions", "--dry-run"], ["logs", "-n", "5"]):
        r = fab(*admin, *task, "--target", "lab")
        assert r.returncode == 0, (task, r.stdout, r.stderr)

    log = fresh_host.sh(f"cat {UIDS}").stdout
    assert "python" in log and "git" in log, log  # the wrappers did run
    as_root = [line for line in log.splitlines() if line.startswith("0 ")]
    assert as_root == [], "\n".join(as_root)


def test_a_django_log_symlinked_to_a_root_only_file_is_not_read_as_root(fresh_host):
    # /var/log/cynow is the app's (0775 cynow:www-data): the app can swap its log for a link.
    fresh_host.sh(
        "install -m 0600 /dev/null /root/secret && echo TOPSECRET-4471 > /root/secret && "
        "ln -sf /root/secret /var/log/cynow/django.log"
    )
    doc, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert "TOPSECRET" not in r.stdout + r.stderr
    assert doc["checks"], r.stderr  # the report was made, without the file
    r = fab(*lab_args(fresh_host), "logs", "-n", "50", "--target", "lab")
    assert "TOPSECRET" not in r.stdout + r.stderr, r.stdout
