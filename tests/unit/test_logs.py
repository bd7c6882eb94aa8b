"""`fab logs`: the window and the known lines it selects; `--follow` under sudo: sudo's own
words (its refusal, its prompt) are never log lines; a refusal ends the task with one line and
a nonzero exit. `--since` is quoted."""

import re

import pytest
from fabric import Config, Connection
from invoke.exceptions import Exit

from tasks import logs
from tasks.errors import ConnectError, ExitCode
from tasks.runner import Remote
from tasks.settings import resolve


class _Pty:
    """A pty channel that prints `chunks` in turn, and `after_input` once something is typed.
    `{prompt}` and `{start}` stand for the prompt and start line drawn for the run."""

    def __init__(self, chunks, after_input=()):
        self.chunks, self.after_input = list(chunks), list(after_input)
        self.sent, self.command, self.closed = [], None, False

    def _fill(self, text):
        token = re.search(r"cynow-ops started ([0-9a-f]{16})", self.command or "")
        token = token.group(1) if token else "none"
        return text.format(
            prompt=f"[cynow-ops sudo {token}] ", start=f"cynow-ops started {token}"
        ).encode()

    def get_pty(self, width):
        pass

    def exec_command(self, command):
        self.command = command

    def recv(self, n):
        return self._fill(self.chunks.pop(0)) if self.chunks else b""

    def sendall(self, data):
        self.sent.append(data)
        self.chunks[:0] = self.after_input
        self.after_input = []

    def close(self):
        self.closed = True


def _remote(mocker, chan, user="deployer", password=None):
    conn = mocker.create_autospec(Connection, instance=True)
    conn.user, conn.host, conn.port = user, "127.0.0.11", 22
    conn.config, conn.connect_timeout = Config(), 10
    conn.config.sudo.password = password
    conn.client.get_transport.return_value.open_session.return_value = chan
    return Remote(conn, resolve({}))


def _follow(remote):
    lines = []
    remote.stream("journalctl -f", lines.append, root=True)
    return lines


def test_a_sudo_that_wants_a_password_is_an_error_not_a_log_line(mocker):
    chan = _Pty(["sudo: a password is required\r\n"])
    remote = _remote(mocker, chan)
    seen = []
    with pytest.raises(ConnectError) as e:
        remote.stream("journalctl -f", seen.append, root=True)
    assert seen == [] and chan.closed
    msg = e.value.message
    assert msg.startswith("sudo on deployer@127.0.0.11 needs a password") and "\n" not in msg
    assert "--prompt-for-sudo-password" in msg and e.value.code == ExitCode.UNREACHABLE
    assert chan.command.startswith("sudo -n -- sh -c ")


def test_a_sudo_that_refuses_the_user_is_an_error(mocker):
    said = "Sorry, user deployer is not allowed to execute '/bin/sh' as root on lab."
    with pytest.raises(ConnectError, match="refused"):
        _follow(_remote(mocker, _Pty([said + "\r\n"])))


def test_sudo_ending_before_the_command_started_is_an_error(mocker):
    with pytest.raises(ConnectError, match=r"did not start the command \(sudo: unknown\)"):
        _follow(_remote(mocker, _Pty(["sudo: unknown\r\n"])))


def test_lines_after_the_start_line_are_the_logs(mocker):
    chan = _Pty(["{start}\r\ngunicorn| a\r\n", "nginx| b\r\ndjango| c", "\r\n"])
    assert _follow(_remote(mocker, chan)) == ["gunicorn| a", "nginx| b", "django| c"]
    # A log line that looks like sudo's refusal is a log line once the command runs.
    chan = _Pty(["{start}\r\n", "sudo: a password is required\r\n"])
    assert _follow(_remote(mocker, chan)) == ["sudo: a password is required"]


def test_the_password_is_typed_once_at_sudos_prompt(mocker):
    chan = _Pty(["{prompt}"], after_input=["\r\n{start}\r\ngunicorn| a\r\n"])
    remote = _remote(mocker, chan, password="hunter2")
    assert _follow(remote) == ["gunicorn| a"]
    assert chan.sent == [b"hunter2\n"]
    assert chan.command.startswith("sudo -S -p '[cynow-ops sudo ")
    assert "hunter2" not in chan.command


def test_a_wrong_password_is_an_error_and_not_typed_again(mocker):
    chan = _Pty(["{prompt}"], after_input=["\r\nSorry, try again.\r\n{prompt}"])
    with pytest.raises(ConnectError, match="rejected the password"):
        _follow(_remote(mocker, chan, password="wrong"))
    assert chan.sent == [b"wrong\n"]


def test_a_log_line_carrying_the_prompt_gets_no_password(mocker):
    # NOPASSWD sudo: the command runs at once; an app writing the prompt to its log (it can
    # read it in ps) is answered with nothing.
    chan = _Pty(["{start}\r\n", "django| {prompt}\r\n"])
    lines = _follow(_remote(mocker, chan, password="hunter2"))
    assert chan.sent == [] and len(lines) == 1 and lines[0].startswith("django| [cynow-ops")


def test_as_root_nothing_is_wrapped(mocker):
    chan = _Pty(["gunicorn| a\r\n"])
    assert _follow(_remote(mocker, chan, user="root")) == ["gunicorn| a"]
    assert chan.command == "journalctl -f"


def test_fab_logs_follow_exits_nonzero_with_one_line(mocker):
    chan = _Pty(["sudo: a password is required\r\n"])
    remote = _remote(mocker, chan)
    mocker.patch.object(logs, "load", return_value=remote.settings)
    mocker.patch.object(logs, "remotes", return_value=iter([remote]))
    printed = mocker.patch.object(logs, "console")
    with pytest.raises(Exit) as e:
        logs.logs.body(mocker.Mock(), follow=True)
    assert e.value.code == ExitCode.UNREACHABLE
    assert e.value.message.startswith("cynow-ops: sudo on deployer@127.0.0.11 needs a password")
    printed.return_value.print.assert_not_called()


def test_djangos_log_is_read_as_the_app_user_and_nginxs_as_root():
    # The app writes django.log in a directory it may own: read as root, a symlink the app
    # planted there (django.log -> /etc/shadow) would be followed.
    scripts = (
        logs.logs_script("gunicorn.service", "/var/log/nginx/error.log", "/l/d.log", 5, None, "cy"),
        logs.follow_script("gunicorn.service", "/var/log/nginx/error.log", "/l/d.log", "cy"),
    )
    for script in scripts:
        pieces = [p for line in script.splitlines() for p in line.split(" & ")]
        assert all("sudo -n -u cy -- sh -c" in p for p in pieces if "/l/d.log" in p)
        assert not any("sudo" in p for p in pieces if "nginx/error" in p)
        assert any("/l/d.log" in p for p in pieces)


def test_since_is_quoted():
    assert logs.since_check("10 minutes ago; reboot").startswith(
        "date -d '10 minutes ago; reboot' "
    )


def test_cut_keeps_window_and_continuations():
    lines = [
        "2026-11-27 14:00:00,1 ERROR old",
        "Traceback old",
        "2026-11-27 15:00:00,1 ERROR new",
        "Traceback new",
    ]
    assert logs.cut(lines, logs._STAMP["django"], "2026-11-27 14:30:00") == lines[2:]
    assert logs.cut(lines, logs._STAMP["django"], None) == lines


def test_select_known_and_last_n():
    lines = ["ordinary", "ModuleNotFoundError: No module named 'x'", "Worker failed to boot."]
    assert [e["signature"] for e in logs.select(lines, True, 50)] == [
        "module_not_found",
        "worker_boot",
    ]
    assert [e["line"] for e in logs.select(lines, False, 1)] == ["Worker failed to boot."]
