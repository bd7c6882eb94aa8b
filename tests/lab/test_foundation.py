"""Foundation, end to end: the real `fab` over real SSH against a lab host."""

from __future__ import annotations

import socket
import subprocess
import threading

import paramiko
import pytest
from fabric import Config

import tests.lab.helpers as helpers
from tasks import connect
from tasks.errors import ConnectError
from tasks.runner import Remote
from tasks.settings import resolve
from tests.lab import lab
from tests.lab.helpers import fab, fab_json, lab_args, trusting_home

pytestmark = pytest.mark.lab


def host_fingerprint(n: int) -> str:
    pub = lab.Host(n).dir / "ssh_host_ed25519_key.pub"
    return connect.fingerprint(
        paramiko.Ed25519Key(data=__import__("base64").b64decode(pub.read_text().split()[1]))
    )


def test_info_with_H_and_i_against_a_lab_host(lab_host, tmp_path):
    home = trusting_home(tmp_path)
    doc, r = fab_json(*lab_args(lab_host), "info", home=home)
    assert r.returncode == 0, r.stderr
    assert doc["schema"] == "cynow-ops.info.v1"
    (facts,) = doc["hosts"]
    assert facts["host"] == f"{helpers.LOGIN}@{lab_host.address}"
    assert facts["hostname"] == "lab1"
    assert facts["os"].startswith("Debian GNU/Linux 12")
    assert facts["systemd"].startswith("systemd 252")
    assert facts["python"].startswith("Python 3.11")
    assert facts["branch"] == "main" and len(facts["commit"]) == 40
    assert facts["units"]["gunicorn.service"]["active"] == "active"
    assert facts["units"]["nginx.service"]["enabled"] == "enabled"
    head = lab_host.sh("git -C /home/cynow/cynow rev-parse HEAD", user="cynow").stdout.strip()
    assert facts["commit"] == head


def test_info_human_report(lab_host, tmp_path):
    r = fab(*lab_args(lab_host), "info", home=trusting_home(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    for word in (
        "lab1",
        "bookworm",
        "gunicorn.service",
        "active (running), enabled",
        "not installed",
    ):
        assert word in r.stdout


def test_named_target_selects_hosts_keys_and_known_hosts(lab_host, tmp_path):
    doc, r = fab_json("info", "--target", "lab", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert doc["hosts"][0]["hostname"] == "lab1"


def test_unknown_host_key_is_refused_with_its_fingerprint(lab_host, tmp_path):
    r = fab(*lab_args(lab_host), "info", home=tmp_path)  # empty ~/.ssh
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-2000:]
    line = r.stderr.strip()
    assert "\n" not in line
    assert f"unknown host key for {lab_host.address}: ssh-ed25519 {host_fingerprint(1)}" in line
    assert "ssh-keyscan -t ed25519" in line
    assert not (tmp_path / ".ssh" / "known_hosts").exists()


def test_changed_host_key_is_refused(lab_host, tmp_path):
    other = lab.Host(3)
    lab._host_keys(other)  # a real, different ed25519 key
    home = tmp_path / "h"
    (home / ".ssh").mkdir(parents=True)
    blob = (other.dir / "ssh_host_ed25519_key.pub").read_text().split()[1]
    (home / ".ssh" / "known_hosts").write_text(f"{lab_host.address} ssh-ed25519 {blob}\n")
    r = fab(*lab_args(lab_host), "info", home=home)
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-2000:]
    assert "HOST KEY CHANGED" in r.stderr and host_fingerprint(1) in r.stderr
    assert f"ssh-keygen -R {lab_host.address}" in r.stderr


def test_trust_on_first_use_is_an_explicit_opt_in(lab_host, tmp_path):
    env = {"FABRIC_CYNOW_HOST_KEY_POLICY": "accept-new"}
    r = fab(*lab_args(lab_host), "info", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    known = tmp_path / ".ssh" / "known_hosts"
    # Hashed when ssh_config says HashKnownHosts yes (Debian's /etc/ssh/ssh_config does);
    # ssh-keygen -F finds the entry either way.
    found = subprocess.run(
        ["ssh-keygen", "-F", lab_host.address, "-f", str(known)], capture_output=True, text=True
    )
    assert found.returncode == 0 and " ssh-ed25519 " in found.stdout
    # From now on the recorded key is verified under the strict default.
    assert fab(*lab_args(lab_host), "info", home=tmp_path).returncode == 0


def test_ssh_config_known_hosts_file_is_honoured(lab_host, tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host lab1\n  HostName {lab_host.address}\n  User cynow\n"
        f"  IdentityFile {lab.key_path()}\n"
        f"  UserKnownHostsFile {lab.known_hosts_path()}\n"
    )
    r = fab("-S", str(cfg), "-H", "lab1", "info", home=tmp_path)
    assert r.returncode == 0, r.stderr


def test_refused_connection(lab_image, tmp_path):
    r = fab("-H", "cynow@127.0.0.99", "info", home=tmp_path)
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-2000:]
    assert "cynow@127.0.0.99 refused the connection" in r.stderr


def test_silent_port_times_out(tmp_path):
    # Accepts TCP and says nothing, like a firewall or a hung sshd.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    conf = tmp_path / "fast.yaml"
    conf.write_text("cynow:\n  connect_timeout: 1\n")
    try:
        r = fab("-f", str(conf), "-H", f"cynow@127.0.0.1:{port}", "info", home=tmp_path, timeout=30)
    finally:
        srv.close()
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-2000:]
    assert "no SSH server spoke within 1s" in r.stderr


def test_authentication_failure(lab_host, tmp_path):
    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    home = trusting_home(tmp_path)
    r = fab("-H", f"cynow@{lab_host.address}", "-i", str(wrong), "info", home=home)
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-2000:]
    assert f"authentication failed for cynow@{lab_host.address}" in r.stderr


def test_bad_config_fails_before_any_connection(tmp_path):
    accepted = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def count():
        srv.settimeout(5)
        try:
            accepted.append(srv.accept())
        except OSError:
            pass

    t = threading.Thread(target=count)
    t.start()
    bad = tmp_path / "bad.yaml"
    bad.write_text("cynow:\n  project_dir: home/cynow/cynow\n")
    r = fab("-f", str(bad), "-H", f"cynow@127.0.0.1:{port}", "info", home=tmp_path)
    srv.close()
    t.join()
    assert r.returncode == 3, r.stdout[-3000:] + r.stderr[-2000:]
    assert r.stderr.strip() == (
        "cynow-ops: config: cynow.project_dir must be an absolute path, "
        "not 'home/cynow/cynow'; write it from the root, e.g. "
        "/home/cynow/cynow"
    )
    assert accepted == []


def test_no_target_is_an_error_not_the_local_machine(tmp_path):
    r = fab("info", home=tmp_path)
    assert r.returncode == 3, r.stdout[-3000:] + r.stderr[-2000:]
    assert "no target:" in r.stderr
    assert "hostname" not in r.stdout


def _remote(user: str, host, **sudo) -> Remote:
    settings = resolve(
        {"known_hosts": [str(lab.known_hosts_path())], "key_filename": str(lab.key_path())}
    )
    cfg = Config(overrides={"sudo": sudo} if sudo else {})
    conn = connect.make_connection(f"{user}@{host.address}", cfg, settings)
    remote = Remote(conn, settings)
    remote.open()
    return remote


def test_sudo_that_wants_a_password_is_a_clear_error(lab_host):
    remote = _remote("deployer", lab_host)
    try:
        with pytest.raises(ConnectError) as e:
            remote.run("id -u", root=True)
        assert "sudo on deployer@127.0.0.11 needs a password" in e.value.message
        assert e.value.code == 2
    finally:
        remote.close()


def test_sudo_password_from_config_is_used_and_not_logged(lab_host):
    remote = _remote("deployer", lab_host, password="lab-sudo-password")
    try:
        out = remote.run("id -u; echo done", root=True)
        assert out.lines == ["0", "done"]
        assert "lab-sudo-password" not in out.stdout + out.stderr
    finally:
        remote.close()


def test_wrong_sudo_password(lab_host):
    remote = _remote("deployer", lab_host, password="wrong")
    try:
        with pytest.raises(ConnectError, match="rejected the password"):
            remote.run("true", root=True)
    finally:
        remote.close()


def test_info_shows_the_layout_and_writes_a_target_that_works(lab_host, tmp_path):
    home = trusting_home(tmp_path)
    doc, r = fab_json(*lab_args(lab_host), "info", home=home)
    layout = {v["key"]: v for v in doc["hosts"][0]["layout"]}
    assert layout["socket"]["value"] == "/home/cynow/cynow/gunicorn.sock", layout
    assert layout["socket"]["source"] == "unit"
    assert layout["nginx_upstream"]["source"] == "nginx"
    assert layout["static_root"]["source"] == "django"
    assert layout["django_log"]["value"] == "/var/log/cynow/django.log"
    assert not any(v["disagrees"] for v in layout.values()), layout

    out = tmp_path / "written.yaml"
    r = fab(*lab_args(lab_host), "info", "--write-config", str(out), home=home)
    assert r.returncode == 0 and "wrote" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert "from the unit" in out.read_text()
    # The written target is a target: diagnose with it finds the lab healthy.
    key = str(lab.key_path())
    doc, r = fab_json("-i", key, "-f", str(out), "diagnose", "--target", "server", home=home)
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr)

    # An existing file is refused before connecting, and left as it was.
    before = out.read_text()
    r = fab(*lab_args(lab_host), "info", "--write-config", str(out), home=home)
    assert r.returncode == 3 and "exists; name a new file" in r.stderr, r.stderr
    assert out.read_text() == before
