import subprocess

import paramiko
import pytest
from fabric import Config, Connection
from invoke import Context
from invoke.runners import Result

from tasks import connect
from tasks.errors import ConfigError, ConnectError
from tasks.runner import DEFAULT_TIMEOUT, Remote
from tasks.settings import resolve


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory):
    path = tmp_path_factory.mktemp("k") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


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
