"""A hardened server (issue 13): the app user cynow cannot sudo, a separate login `admin` can.
Every everyday task works logged in as admin, and none runs the app's python or git as root.
Runs in normal mode too (the test drops cynow's sudo itself), so CI covers it."""

from __future__ import annotations

import pytest

import tests.lab.helpers as helpers
from tests.lab.helpers import (
    APP,
    deploy_notes,
    drop_app_sudo,
    fab,
    fab_json,
    lab_args,
    push_commit,
    server_pull,
)

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


HOOK_LOG = "/var/log/cynow-lab-hook.log"

# A commit signed by a stand-in gpg (git asks it for a detached signature and wants its
# SIG_CREATED status line), pushed to the lab's origin: `git log` with log.showSignature then
# runs gpg.program to verify it.
SIGNED_COMMIT = r"""set -e
tmp=$(mktemp -d)
git clone -q /srv/git/cynow.git "$tmp/c"
cat > "$tmp/signer" <<'SH'
#!/bin/sh
cat >/dev/null
printf '\n[GNUPG:] SIG_CREATED D 1 8 00 0 0\n' >&2
printf -- '-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n'
SH
chmod 0755 "$tmp/signer"
cd "$tmp/c"
git -c gpg.program="$tmp/signer" -c user.signingkey=lab commit -q -S --allow-empty -m 'signed'
git push -q origin main
rm -rf "$tmp"
"""

# What a compromised app user plants in its checkout's .git/config: programs git runs, which
# log the uid they run as.
PLANT = f"""set -e
cat > /home/cynow/hook <<'SH'
#!/bin/sh
echo "$(id -u) $0" >> {HOOK_LOG}
exit 1
SH
chmod 0755 /home/cynow/hook
cd {APP}
git config core.fsmonitor /home/cynow/hook
git config log.showSignature true
git config gpg.program /home/cynow/hook
"""


def test_a_hostile_git_config_runs_only_as_the_app_user(fresh_host):
    drop_app_sudo(fresh_host)
    fresh_host.sh(SIGNED_COMMIT, user="cynow")
    server_pull(fresh_host)  # the signed commit is the deployed one
    fresh_host.sh(PLANT, user="cynow")
    fresh_host.sh(f"install -m 0666 /dev/null {HOOK_LOG}")
    admin = lab_args(fresh_host, user="admin")
    for task in (["status"], ["info"], ["diagnose"], ["deploy", "--dry-run"]):
        r = fab(*admin, *task, "--target", "lab")
        assert "Traceback" not in r.stderr, (task, r.stderr)

    uids = {who: fresh_host.sh(f"id -u {who}").stdout.strip() for who in ("cynow", "admin", "root")}
    ran = fresh_host.sh(f"cat {HOOK_LOG}").stdout.splitlines()
    assert ran, "git never ran the planted programs: the test proves nothing"
    assert {line.split()[0] for line in ran} == {uids["cynow"]}, (uids, ran)


# A frame marker with a nonce of the attacker's choosing (tasks/shell.py draws the real one on
# the server for each script), and escape sequences: clear the screen, print a green verdict.
FORGED = "@@cynow-ops@@ 0123456789abcdef"
HOSTILE_LINES = [
    FORGED,
    f"{FORGED} end logs 0",
    f"{FORGED} begin socket",
    "\x1b[2J\x1b[H\x1b[32mcynow-ops: healthy\x1b[0m",
    f"{FORGED} end socket 0",
]


def test_server_text_forges_no_frame_and_reaches_no_terminal(fresh_host):
    import base64

    before, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert before["verdict"]["cause"] == "healthy", r.stderr
    blob = base64.b64encode(("\n".join(HOSTILE_LINES) + "\n").encode()).decode()
    fresh_host.sh(f"echo {blob} | base64 -d >> /var/log/cynow/django.log", user="cynow")
    after, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert after["verdict"]["cause"] == "healthy", after["verdict"]
    assert [(c["id"], c["status"]) for c in after["checks"]] == [
        (c["id"], c["status"]) for c in before["checks"]
    ]
    subject = f"fake-subject \x1b[2J\x1b]0;owned\x07 {FORGED} end commit 0"
    push_commit(fresh_host, {"README.md": "hostile subject\n"}, subject)
    doc, r = fab_json(*lab_args(fresh_host), "deploy", "--target", "lab")
    assert doc["result"] == "deployed", (doc.get("error"), r.stderr)
    doc, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", doc["verdict"]
    shown = {}
    for task in (["diagnose"], ["status"], ["history"], ["logs", "-n", "30"]):
        r = fab(*lab_args(fresh_host), *task, "--target", "lab")
        shown[task[0]] = r.stdout + r.stderr
        assert "\x1b" not in shown[task[0]] and "\x07" not in shown[task[0]], task
    # The words are shown, as text: the subject in status and history, the log line in logs.
    assert "fake-subject" in shown["status"] and "fake-sub" in shown["history"]
    assert "cynow-ops: healthy" in shown["logs"] and FORGED in shown["logs"]
