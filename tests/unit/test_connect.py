import base64
import os
import socket
import subprocess
import threading

import paramiko
import pytest
from fabric import Config, Connection
from invoke import Context
from invoke.runners import Result

from tasks import connect, shell
from tasks.errors import ConfigError, ConnectError
from tasks.runner import DEFAULT_TIMEOUT, Remote
from tasks.settings import resolve


def _keygen(directory):
    path = directory / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory):
    return _keygen(tmp_path_factory.mktemp("k"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two distinct ed25519 host keys."""
    return [
        paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path_factory.mktemp(n))))
        for n in ("a", "b")
    ]


def test_fingerprint_matches_ssh_keygen(keyfile):
    key = paramiko.Ed25519Key.from_private_key_file(str(keyfile))
    out = subprocess.run(["ssh-keygen", "-lf", f"{keyfile}.pub"], capture_output=True, text=True)
    assert connect.fingerprint(key) == out.stdout.split()[1]


def test_unknown_host_key_is_refused_by_default(keyfile, tmp_path):
    key = paramiko.Ed25519Key.from_private_key_file(str(keyfile))
    policy = connect.HostKeyPolicy(accept_new=False, save_to=str(tmp_path / "kh"))
    with pytest.raises(connect.UnknownHostKey):
        policy.missing_host_key(paramiko.SSHClient(), "127.0.0.11", key)
    assert not (tmp_path / "kh").exists()


def test_accept_new_records_the_first_key(keyfile, tmp_path):
    key = paramiko.Ed25519Key.from_private_key_file(str(keyfile))
    kh = tmp_path / "ssh" / "known_hosts"
    client = paramiko.SSHClient()
    connect.HostKeyPolicy(accept_new=True, save_to=str(kh)).missing_host_key(
        client, "[127.0.0.11]:2222", key
    )
    assert kh.read_text() == f"[127.0.0.11]:2222 ssh-ed25519 {key.get_base64()}\n"
    assert client.get_host_keys().lookup("[127.0.0.11]:2222")


def test_no_target_never_means_the_local_machine():
    # Fabric hands a task a local Context when no -H is given: that must be an error.
    c = Context(config=Config(overrides={"cynow": {"targets": {"lab": {}}}}))
    with pytest.raises(ConfigError, match="no target: .*-H user@host.*--target NAME.*lab"):
        connect.target_hosts(c, resolve({}))


def test_connection_from_cli_keeps_user_and_port():
    c = Connection("deployer@example.invalid:2222")
    assert connect.target_hosts(c, resolve({})) == [
        {"host": "example.invalid", "user": "deployer", "port": 2222}
    ]


def test_ipv6_from_cli_stays_the_same_address():
    c = Connection("2001:db8::5", user="cynow", port=22)
    (spec,) = connect.target_hosts(c, resolve({}))
    conn = connect.make_connection(spec, Config(), resolve({}))
    assert (conn.host, conn.port, conn.user) == ("2001:db8::5", 22, "cynow")


def test_a_proxycommand_is_refused_and_not_recommended(tmp_path):
    # It would pass the address guard: the command decides where the connection goes.
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host behind\n  HostName 127.0.0.30\n  ProxyCommand ssh -W %h:%p jump\n")
    config = Config(runtime_ssh_path=str(cfg))
    config.load_ssh_config()
    with pytest.raises(ConfigError, match="through a ProxyCommand, which cynow-ops refuses") as e:
        connect.make_connection("behind", config, resolve({}))
    assert "use ProxyCommand" not in e.value.message and "connect directly" in e.value.message


def test_a_gateway_is_refused_not_connected_unverified(tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host behind\n  HostName 127.0.0.30\n  ProxyJump jump.invalid\n")
    config = Config(runtime_ssh_path=str(cfg))
    config.load_ssh_config()
    with pytest.raises(ConfigError, match="ProxyJump/gateway"):
        connect.make_connection("behind", config, resolve({}))


def test_target_hosts_from_settings():
    c = Context(config=Config())
    s = resolve({"targets": {"t": {"hosts": ["a@h1", "h2:23"]}}}, "t")
    assert connect.target_hosts(c, s) == [{"host": "h1", "user": "a"}, {"host": "h2", "port": 23}]


@pytest.mark.parametrize("host", ["10.78.30.98", "192.0.2.1", "::2"])  # refused, never reached
def test_address_guard_refuses_outside_networks(host):
    nets = [connect.ipaddress.ip_network("127.0.0.0/8")]
    with pytest.raises(ConnectError, match="refusing to connect"):
        connect.check_address(host, 22, nets)


def test_address_guard_allows_loopback():
    connect.check_address("127.0.0.11", 22, [connect.ipaddress.ip_network("127.0.0.0/8")])


def test_make_connection_verifies_and_times_out(tmp_path):
    kh = tmp_path / "kh"
    kh.write_text(
        "127.0.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ0ki0WqQ1rS1wYp5jRcyKbqQq2g0"
        "0y7mXc0fhdCsW9\n"
    )
    s = resolve({"known_hosts": [str(kh)], "connect_timeout": 3})
    conn = connect.make_connection("cynow@127.0.0.11", Config(), s)
    assert conn.connect_timeout == 3
    assert conn.connect_kwargs["banner_timeout"] == 3
    assert isinstance(conn.client._policy, connect.HostKeyPolicy)
    assert not conn.client._policy.accept_new
    assert conn.client.get_host_keys().lookup("127.0.0.11") is None  # user file, not saved list
    assert conn.client._system_host_keys.lookup("127.0.0.11")
    assert not conn.is_connected


def test_remote_refuses_a_local_context():
    with pytest.raises(TypeError, match="never run locally"):
        Remote(Context(), resolve({}))


def _remote(mocker, user, result):
    conn = mocker.create_autospec(Connection, instance=True)
    conn.user, conn.host, conn.port = user, "127.0.0.11", 22
    conn.config = Config()
    sent = mocker.patch.object(Remote, "_exec", return_value=result)
    return Remote(conn, resolve({})), sent


def test_sudo_wanting_a_password_is_one_clear_error(mocker):
    remote, sent = _remote(
        mocker, "deployer", Result(stdout="", stderr="sudo: a password is required\n", exited=1)
    )
    with pytest.raises(ConnectError) as e:
        remote.run("journalctl -n1", root=True)
    msg = e.value.message
    assert "needs a password (sudo: a password is required)" in msg
    assert "--prompt-for-sudo-password" in msg and e.value.code == 2
    sent.assert_called_once_with("sudo -n -- sh -c 'journalctl -n1'", DEFAULT_TIMEOUT)


def test_root_commands_are_wrapped_once(mocker):
    remote, sent = _remote(mocker, "cynow", Result(stdout="ok\n", exited=0))
    out = remote.run("echo a; echo b", root=True)
    assert out.ok and out.lines == ["ok"]
    sent.assert_called_once_with("sudo -n -- sh -c 'echo a; echo b'", DEFAULT_TIMEOUT)


def test_a_command_failing_is_not_mistaken_for_sudo(mocker):
    # Exit 1 from the command itself, as the login user: no sudo involved, no error raised.
    remote, _ = _remote(
        mocker, "cynow", Result(stdout="", stderr="sudo: a password is required\n", exited=1)
    )
    assert remote.run("grep -q x /nonexistent").exited == 1


def test_jobs_of_one_identity_share_a_channel(mocker):
    from tasks import shell

    remote, sent = _remote(mocker, "cynow", None)
    sent.side_effect = lambda cmd, timeout: Result(
        stdout=subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout, exited=0
    )
    out = remote.many(
        {
            "a": dict(command="echo A"),
            "b": dict(command="echo B; exit 4"),
            "slow": dict(command="echo S", alone=True),
        }
    )
    assert {k: (v.stdout, v.exited) for k, v in out.items()} == {
        "a": ("A\n", 0),
        "b": ("B\n", 4),
        "slow": ("S\n", 0),
    }
    assert sent.call_count == 2  # one batch for a+b, one channel for the slow job
    assert shell.MARK in sent.call_args_list[-1].args[0] + sent.call_args_list[0].args[0]


class _Channel:
    """A channel that closed after its output with no exit status (paramiko's -1)."""

    eof_received, closed = True, True

    def exec_command(self, command):
        pass

    def recv_ready(self):
        return False

    def recv_stderr_ready(self):
        return False

    def recv_exit_status(self):
        return -1

    def close(self):
        pass

    def fileno(self):  # select() on it returns at once
        import os

        r, w = os.pipe()
        os.write(w, b"x")
        return r


@pytest.mark.parametrize("active", [True, False])
def test_no_exit_status_is_a_failure_or_a_lost_connection_never_a_result(mocker, active):
    conn = mocker.create_autospec(Connection, instance=True)
    conn.user, conn.host, conn.port = "root", "127.0.0.11", 22
    conn.config, conn.connect_timeout = Config(), 10
    transport = conn.client.get_transport.return_value
    transport.open_session.return_value = _Channel()
    transport.is_active.return_value = active
    remote = Remote(conn, resolve({}))
    if active:  # the link is up: the command ended by a signal, a failure said as such
        out = remote.run("true")
        assert out.exited == 255 and "without an exit status" in out.stderr
    else:
        with pytest.raises(ConnectError, match="lost the connection"):
            remote.run("true")


def test_a_channel_open_may_take_longer_than_the_connect_timeout(mocker):
    # A live sshd busy with a login's PAM session answered a channel open after more than the
    # 10 s connect timeout (CI): that is a slow server, not a lost connection.
    conn = mocker.create_autospec(Connection, instance=True)
    conn.user, conn.host, conn.port = "root", "127.0.0.11", 22
    conn.config, conn.connect_timeout = Config(), 10
    transport = conn.client.get_transport.return_value
    transport.open_session.return_value = _Channel()
    Remote(conn, resolve({})).run("true")
    transport.open_session.assert_called_with(timeout=60.0)


# --- known_hosts: markers, hashing, revocation ---------------------------------------------


def _line(names, key, marker=""):
    return f"{marker + ' ' if marker else ''}{names} {key.get_name()} {key.get_base64()}\n"


def test_known_hosts_markers_are_parsed_not_a_traceback(keys, tmp_path):
    a, b = keys
    text = (
        "# comment\n\n"
        + _line("127.0.0.11,lab1", a)
        + _line("*.example.com", b, "@cert-authority")
        + _line("*", b, "@revoked")
        + "127.0.0.12 ssh-ed25519 not-base64!\n"
        + "127.0.0.13 ssh-unknown AAAA\n"
        + _line("127.0.0.14", a, "@future-marker")
        + f"127.0.0.15  \tssh-ed25519   {a.get_base64()}  comment\n"  # runs of blanks
    )
    (tmp_path / "kh").write_text(text)
    with pytest.raises(paramiko.hostkeys.InvalidHostKey):  # what every task used to end with
        paramiko.HostKeys().load(str(tmp_path / "kh"))
    known = connect.parse_known_hosts(text)
    assert [(e.hostnames, e.key) for e in known.entries] == [
        (["127.0.0.11", "lab1"], a),
        (["127.0.0.15"], a),
    ]
    assert known.revoked == {b.asbytes()}
    assert known.cert_authorities == [4]


def test_hashed_patterns_still_match(keys, tmp_path):
    a, _ = keys
    kh = tmp_path / "kh"
    kh.write_text(_line(paramiko.HostKeys.hash_host("[127.0.0.11]:2222"), a))
    hk, revoked, warnings = connect.load_known_hosts([str(kh)])
    assert hk.lookup("[127.0.0.11]:2222")["ssh-ed25519"] == a
    assert hk.lookup("127.0.0.11") is None and not revoked and not warnings


def test_a_revoked_key_is_dropped_even_where_listed_and_ca_lines_warn(keys, tmp_path):
    a, b = keys
    user, system = tmp_path / "user", tmp_path / "system"
    user.write_text(_line("127.0.0.11", a) + _line("127.0.0.12", b))
    system.write_text(_line("*", a, "@revoked") + _line("*.lab", b, "@cert-authority"))
    hk, revoked, warnings = connect.load_known_hosts(
        [str(user), str(tmp_path / "missing"), str(system)]
    )
    assert hk.lookup("127.0.0.11") is None  # revoked in another file: not trusted
    assert hk.lookup("127.0.0.12")["ssh-ed25519"] == b
    assert revoked == {a.asbytes()}
    assert warnings == [
        f"{system}: @cert-authority on line 2 skipped (paramiko cannot check host "
        "certificates); a host signed by it needs its own key line"
    ]


def test_accept_new_never_records_a_revoked_key(keys, tmp_path):
    a, _ = keys
    kh = tmp_path / "kh"
    policy = connect.HostKeyPolicy(True, str(kh), revoked=frozenset({a.asbytes()}))
    with pytest.raises(connect.RevokedHostKey):
        policy.missing_host_key(paramiko.SSHClient(), "127.0.0.11", a)
    assert not kh.exists()


@pytest.mark.parametrize(
    "policy, ssh, accept_new",
    [
        ("accept-new", None, True),
        ("accept-new", "ask", True),
        ("accept-new", "no", True),
        ("accept-new", "accept-new", True),
        ("accept-new", "yes", False),  # the stricter ssh_config wins
        ("accept-new", "Yes", False),
        ("strict", "accept-new", False),  # ... and a looser one never loosens the config
        ("strict", "no", False),
        ("strict", None, False),
    ],
)
def test_the_stricter_of_config_and_ssh_config_wins(policy, ssh, accept_new):
    assert connect.accepts_new_keys(policy, ssh) is accept_new


def test_ssh_config_strict_yes_beats_accept_new_in_make_connection(tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host 127.0.0.11\n  StrictHostKeyChecking yes\n")
    config = Config(runtime_ssh_path=str(cfg))
    config.load_ssh_config()
    s = resolve({"host_key_policy": "accept-new"})
    assert not connect.make_connection("127.0.0.11", config, s).client._policy.accept_new
    assert connect.make_connection("127.0.0.12", config, s).client._policy.accept_new


def test_hash_known_hosts_writes_a_hashed_line_that_matches_later(keys, tmp_path):
    a, _ = keys
    kh = tmp_path / "ssh" / "known_hosts"
    connect.HostKeyPolicy(True, str(kh), hash_hosts=True).missing_host_key(
        paramiko.SSHClient(), "[127.0.0.11]:2222", a
    )
    name, kind, blob = kh.read_text().split()
    assert name.startswith("|1|") and "127.0.0.11" not in name
    _, salt, digest = name[1:].split("|")
    assert len(base64.b64decode(salt)) == 20 and len(base64.b64decode(digest)) == 20  # HMAC-SHA1
    assert (kind, blob) == ("ssh-ed25519", a.get_base64())
    hk, _, _ = connect.load_known_hosts([str(kh)])
    assert hk.lookup("[127.0.0.11]:2222")["ssh-ed25519"] == a
    assert hk.lookup("[127.0.0.12]:2222") is None
    # ssh-keygen finds it too: the line is OpenSSH's own format.
    found = subprocess.run(
        ["ssh-keygen", "-F", "[127.0.0.11]:2222", "-f", str(kh)], capture_output=True, text=True
    )
    assert found.returncode == 0 and a.get_base64() in found.stdout


@pytest.mark.parametrize("value, hashed", [("yes", True), ("no", False)])
def test_make_connection_hashes_when_ssh_config_says_so(tmp_path, value, hashed):
    # Debian's /etc/ssh/ssh_config says `HashKnownHosts yes`: give both answers explicitly.
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  HashKnownHosts {value}\n")
    config = Config(runtime_ssh_path=str(cfg))
    config.load_ssh_config()
    conn = connect.make_connection("127.0.0.11", config, resolve({}))
    assert conn.client._policy.hash_hosts is hashed


# --- the same through a real SSH handshake, over a socketpair (no network) ------------------


class _Server(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "password"

    def check_auth_password(self, username, password):
        return paramiko.AUTH_SUCCESSFUL


def _serve(server):
    try:
        server.start_server(server=_Server())
    except (paramiko.SSHException, EOFError):
        pass  # the client hung up on a key it refused: that is the test


def _open(host_key, tmp_path, known_hosts: str, ssh_config: str = "", **settings):
    """open_connection to 127.0.0.11 whose sshd offers host_key; known_hosts is the only file."""
    kh = tmp_path / "known_hosts"
    kh.write_text(known_hosts)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host *\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile {tmp_path}/none\n" + ssh_config
    )
    config = Config(runtime_ssh_path=str(cfg))
    config.load_ssh_config()
    ours, theirs = socket.socketpair()
    server = paramiko.Transport(theirs)
    server.add_server_key(host_key)
    threading.Thread(target=_serve, args=(server,), daemon=True).start()
    s = resolve(settings)
    conn = connect.make_connection("cynow@127.0.0.11", config, s)
    conn.connect_kwargs.update(sock=ours, password="x", look_for_keys=False, allow_agent=False)
    try:
        connect.open_connection(conn, s)
        return conn.client.get_transport().get_remote_server_key()
    finally:
        conn.close()
        server.close()


def test_handshake_a_listed_key_connects_despite_marker_lines(keys, tmp_path, capsys):
    a, b = keys
    text = _line("127.0.0.11", a) + _line("*", b, "@cert-authority")
    assert _open(a, tmp_path, text) == a
    assert "@cert-authority on line 2 skipped" in capsys.readouterr().err


@pytest.mark.parametrize("listed", ["nothing", "the same key", "another key"])
def test_handshake_a_revoked_key_is_refused_in_one_line(keys, tmp_path, listed):
    a, b = keys
    known = {"nothing": "", "the same key": _line("127.0.0.11", a)}.get(
        listed, _line("127.0.0.11", b)
    )
    text = known + _line("*", a, "@revoked")
    with pytest.raises(ConnectError) as e:
        _open(a, tmp_path, text, host_key_policy="accept-new")
    assert e.value.message.startswith("REVOKED host key for cynow@127.0.0.11: ssh-ed25519 ")
    assert connect.fingerprint(a) in e.value.message and "\n" not in e.value.message
    assert (tmp_path / "known_hosts").read_text() == text  # accept-new recorded nothing


def test_handshake_accept_new_hashes_then_strict_matches(keys, tmp_path):
    a, _ = keys
    _open(a, tmp_path, "", "  HashKnownHosts yes\n", host_key_policy="accept-new")
    written = (tmp_path / "known_hosts").read_text()
    assert written.startswith("|1|") and "127.0.0.11" not in written
    # The next run is strict and finds the hashed line it wrote.
    assert _open(a, tmp_path, written) == a


# sudo -S -p PROMPT [-H -u USER] CMD...: prints the prompt, reads the password from its stdin,
# then runs CMD with that stdin, as the real one does.
FAKE_SUDO_S = """#!/bin/sh
[ "$1" = -S ] && [ "$2" = -p ] || exit 97
prompt=$3; shift 3
while [ "$1" = -H ] || [ "$1" = -u ]; do [ "$1" = -u ] && shift; shift; done
printf '%s' "$prompt" >&2
read -r pw
[ "$pw" = right ] || { echo 'Sorry, try again.' >&2; exit 1; }
exec "$@"
"""


def test_a_program_printing_sudos_prompt_reads_no_password(mocker, tmp_path, monkeypatch):
    # With --prompt-for-sudo-password, Fabric's watcher types the password at every prompt it
    # sees: the app's code printing the standard one, or this run's, must read nothing.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sudo").write_text(FAKE_SUDO_S)
    (bindir / "sudo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    conn = mocker.create_autospec(Connection, instance=True)
    conn.user, conn.host, conn.port = "admin", "127.0.0.11", 22
    conn.config = Config(overrides={"sudo": {"password": "right"}})
    # invoke's own sudo (Connection.sudo is Context.sudo), run by the local runner.
    conn.sudo.side_effect = lambda command, **kw: Context(conn.config).sudo(command, **kw)
    remote = Remote(conn, resolve({}))
    assert remote.sudo_prompt != "[sudo] password: "
    for prompt in ("[sudo] password: ", remote.sudo_prompt):
        payload = f"printf '%s' {shell.q(prompt)}; read -r got && echo \"read:$got\" || echo EOF"
        for kw in ({"root": True}, {"user": "cynow"}):
            out = remote.run(payload, **kw, timeout=20)
            assert out.ok and out.lines[-1].endswith("EOF"), (prompt, kw, out)
            assert "right" not in out.stdout + out.stderr
