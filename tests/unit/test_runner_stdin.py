"""Remote.run(stdin=...): data kept out of the command line. Without a sudo password it is sent
on the channel, then the end of input; with one, sudo reads its password from that same input,
so the data goes only after the command printed the line drawn for this run, through an invoke
watcher (run here for real by invoke's local runner, which shares that code with Fabric's)."""

from __future__ import annotations

import subprocess

from fabric import Connection
from invoke import Config, Context, Responder
from invoke.runners import Result

from tasks.runner import Remote
from tasks.settings import resolve
from tests.unit.test_connect import _Channel as _NoStatus


class _Channel(_NoStatus):
    """A channel that runs the command in a local shell when its input ends (select() on it
    returns at once, as on test_connect's)."""

    eof_received = closed = False

    def __init__(self):
        self.command, self.sent, self.events = "", b"", []
        self.out = self.err = b""
        self.code = -1

    def exec_command(self, command):
        self.command = command
        self.events.append("exec")

    def sendall(self, data):
        self.sent += data
        self.events.append("send")

    def shutdown_write(self):
        self.events.append("eof")
        p = subprocess.run(["sh", "-c", self.command], input=self.sent, capture_output=True)
        self.out, self.err, self.code = p.stdout, p.stderr, p.returncode
        self.eof_received = self.closed = True

    def recv_ready(self):
        return bool(self.out)

    def recv(self, n):
        data, self.out = self.out[:n], self.out[n:]
        return data

    def recv_stderr_ready(self):
        return bool(self.err)

    def recv_stderr(self, n):
        data, self.err = self.err[:n], self.err[n:]
        return data

    def recv_exit_status(self):
        return self.code


def _remote(mocker, user="root", password=None):
    conn = mocker.create_autospec(Connection, instance=True)
    conn.user, conn.host, conn.port = user, "127.0.0.11", 22
    conn.config = Config(overrides={"sudo": {"password": password}} if password else {})
    conn.connect_timeout = 10
    chan = _Channel()
    conn.client.get_transport.return_value.open_session.return_value = chan
    return Remote(conn, resolve({})), conn, chan


def test_stdin_goes_on_the_channel_then_its_end_never_in_the_command(mocker):
    remote, _, chan = _remote(mocker)
    out = remote.run("read -r line; printf 'got %s\\n' \"$line\"", stdin="s3cr3t record\n")
    assert out.ok and out.stdout == "got s3cr3t record\n"
    assert "s3cr3t" not in chan.command and chan.events == ["exec", "send", "eof"]


def test_under_sudo_without_a_password_stdin_passes_through_sudo_n(mocker):
    remote, _, chan = _remote(mocker, user="deployer")
    remote.run("cat", root=True, stdin="x\n")
    assert chan.command.startswith("sudo -n -- sh -c ") and chan.sent == b"x\n"


def test_with_a_sudo_password_stdin_waits_for_the_commands_own_line(mocker):
    remote, conn, _ = _remote(mocker, user="deployer", password="pw")
    seen = {}

    def sudo(command, **kw):
        # What Fabric's sudo does with the watchers, minus sudo itself: invoke's runner.
        seen.update(command=command, watchers=kw["watchers"], in_stream=kw["in_stream"])
        r = Context().run(
            command, watchers=kw["watchers"], hide=True, warn=True, in_stream=False, timeout=10
        )
        return Result(stdout=r.stdout, stderr=r.stderr, exited=r.exited)

    conn.sudo.side_effect = sudo
    out = remote.run(
        "IFS= read -r line; printf 'got %s\\n' \"$line\"", root=True, stdin="s3cr3t record\n"
    )
    assert out.ok and out.stdout == "got s3cr3t record\n"  # the start line taken out
    assert "s3cr3t" not in seen["command"] and seen["in_stream"] is False
    (watcher,) = seen["watchers"]
    assert (
        watcher.pattern.startswith(r"cynow\-ops\ stdin\ ") and watcher.response == "s3cr3t record\n"
    )
    # Another run draws another line: the command's output cannot fake it in advance.
    remote.run("IFS= read -r line", root=True, stdin="x\n")
    assert seen["watchers"][0].pattern != watcher.pattern


def test_with_a_sudo_password_the_command_reads_its_line_and_then_nothing(mocker):
    """Past its one line the command's input has ended: whatever it runs next (and prints a
    prompt) can read no password the watcher might type."""
    remote, conn, _ = _remote(mocker, user="deployer", password="pw")

    def sudo(command, **kw):
        watchers = kw["watchers"] + [Responder(pattern=r"\[sudo\] password: ", response="pw\n")]
        r = Context().run(
            command, watchers=watchers, hide=True, warn=True, in_stream=False, timeout=10
        )
        return Result(stdout=r.stdout, stderr=r.stderr, exited=r.exited)

    conn.sudo.side_effect = sudo
    out = remote.run(
        "IFS= read -r line; echo '[sudo] password: '; sleep 0.3; "
        "if IFS= read -r more; then echo \"read $more\"; else echo 'read nothing'; fi",
        root=True,
        stdin="record\n",
    )
    assert out.ok and out.stdout.splitlines()[-1] == "read nothing", out.stdout
