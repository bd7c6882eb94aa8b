"""The only code that runs commands on a target: one SSH connection, many concurrent channels.

Commands come ready-made from `tasks.commands`; this module adds sudo, timing, timeouts, batching
and the translation of SSH failures into one-line errors. Commands never run on the local
machine: a Remote only wraps a fabric.Connection.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paramiko
from fabric import Connection
from invoke.exceptions import AuthFailure, CommandTimedOut
from invoke.runners import Result

from tasks import shell
from tasks.connect import describe, open_connection
from tasks.errors import ConnectError
from tasks.settings import Settings

# Channels opened at once on one connection. OpenSSH's default MaxSessions is 10, and a closed
# channel counts until the server has processed the close, so stay well below.
# CYNOW_OPS_CHANNELS=1 runs one command at a time (the benchmark's naive variant).
MAX_CHANNELS = (
    int(os.environ.get("CYNOW_OPS_CHANNELS", "6"))
    if os.environ.get("CYNOW_OPS_CHANNELS", "6").isdigit()
    else 6
)
KEEPALIVE_SECONDS = 15
# The longest a channel open on a live connection may take (see Remote._open_session).
CHANNEL_OPEN_SECONDS = 60
DEFAULT_TIMEOUT = 900  # seconds; pip installs and migrations pass their own
# sshd refuses a channel when MaxSessions is reached; that clears as soon as another closes.
CHANNEL_RETRIES = 6
SUDO_REFUSALS = (
    "sudo: a password is required",
    "sudo: a terminal is required",
    "is not allowed to execute",
    "is not in the sudoers file",
    "may not run sudo",
)


def sudo_refusal(line: str) -> str | None:
    """sudo's refusal in one line of output, stripped; None for any other line."""
    return line.strip() if any(s in line for s in SUDO_REFUSALS) else None


def refused(where: str, said: str) -> ConnectError:
    """The one-line error for sudo's refusal `said` on `where`."""
    if "password is required" in said or "terminal is required" in said:
        return ConnectError(
            f"sudo on {where} needs a password ({said}): rerun with "
            "--prompt-for-sudo-password, or set sudo.password in a -f file kept out of git"
        )
    return ConnectError(
        f"sudo on {where} refused ({said}): the login user "
        "needs sudo to root and to the app and web users"
    )


def wrong_password(where: str) -> ConnectError:
    return ConnectError(
        f"sudo on {where} rejected the password: check sudo.password "
        "or retype it with --prompt-for-sudo-password"
    )


def detached(command: str) -> str:
    """A command for Fabric's sudo (`sudo -S` reads the password from the channel's stdin):
    once sudo has read it, the command's stdin is /dev/null. Fabric's watcher writes the
    password again at every prompt it sees in the output, and the app's code (run as the app
    user: the probe, pip, migrate) could print one: it must find nothing to read."""
    return "sh -c " + shell.q("exec </dev/null\n" + command)


@dataclass(frozen=True)
class Output:
    """What one remote command did."""

    command: str
    stdout: str
    stderr: str
    exited: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exited == 0

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


class Remote:
    """A verified connection to one target host and the settings that describe it."""

    def __init__(self, conn: Connection, settings: Settings):
        if not isinstance(conn, Connection):
            raise TypeError("Remote needs a fabric.Connection: commands never run locally")
        self.conn, self.settings = conn, settings
        self.name = describe(conn)
        # sudo's prompt for this run: Fabric's watcher answers only this text, never the
        # standard `[sudo] password: ` that any program may print (the payload cannot read
        # the answer anyway: _wrap detaches its stdin).
        self.sudo_prompt = f"[cynow-ops sudo {secrets.token_hex(8)}] "
        self._discovered = False
        # Which of tasks/tools.py's commands the server has (None: not read, never opened).
        self.tools: dict | None = None

    @property
    def is_root(self) -> bool:
        return self.conn.user == "root"

    @property
    def sudo_password(self) -> str | None:
        return self.conn.config.sudo.password or None

    def open(self) -> None:
        open_connection(self.conn, self.settings)
        self._nodelay(True)
        transport = self.conn.client.get_transport()
        if transport is not None:
            # A dead link is noticed within about a minute, not at the kernel's two hours.
            transport.set_keepalive(KEEPALIVE_SECONDS)
        if not self._discovered:
            # Before any task reads the host: the layout keys the config leaves at the
            # guide's values, as this server's unit has them (once; a reconnect keeps them).
            from tasks import discovery

            self.settings, self.tools = discovery.adopt(self)
            self._discovered = True

    def _nodelay(self, on: bool) -> None:
        """Nagle off for one command after another: paramiko leaves it on, and a channel's open
        then waits for the ACK of the last close, which the server delays ~40 ms (deploy: 1.4x
        to 1.1x a plain ssh script). Nagle on for a burst of concurrent channels (`many`): it
        coalesces their small packets, and diagnose measured 0.79 s with it, 0.90 s without.
        A ProxyCommand transport has no TCP socket of its own to tune."""
        transport = self.conn.client.get_transport()
        sock = transport.sock if transport is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(on))
            except OSError:
                pass  # the connection is gone: the command's own error says so

    def close(self) -> None:
        self.conn.close()

    def run(
        self,
        command: str,
        *,
        root: bool = False,
        user: str | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
    ) -> Output:
        """Run a shell command line; `root` or `user` run it through sudo. Never raises on exit
        status (the caller judges it); raises ConnectError when the connection fails or sudo
        wants a password that was not given.

        `stdin`: text for the command's input, for data that must stay out of the command line
        (argv is world-readable in `ps` and capped by the kernel). With a sudo password, sudo
        reads its password from the same input: the text is sent only once the command has
        printed a line drawn for this run (sudo is done by then), and it gets no end of input,
        so the command reads what it needs (one line) rather than to the end."""
        start_line = f"cynow-ops stdin {secrets.token_hex(8)}"
        if stdin is not None and self._needs_password(root, user):
            # The input shares the channel with the password sudo reads, and the command's own
            # input must end before anything it runs could print a prompt (see detached): the
            # shell reads the one line sent, then detaches its input, then hands the line on.
            command_sent = "\n".join(
                [
                    shell.say(start_line),
                    "IFS= read -r cynow_ops_line",
                    "exec </dev/null",
                    f'printf "%s\\n" "$cynow_ops_line" | {{\n{command}\n}}',
                ]
            )
        else:
            command_sent = command
        wrapped, via_fabric_sudo = self._wrap(
            command_sent, root, user, detach=command_sent is command
        )
        # Every remote call ends: one with no timeout of its own gets the default.
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        start = time.monotonic()
        try:
            if stdin is None:
                r = self._execute(wrapped, via_fabric_sudo, user, timeout)
            else:
                r = self._execute(wrapped, via_fabric_sudo, user, timeout, stdin, start_line)
        except CommandTimedOut as e:
            r = e.result
            return Output(
                command,
                r.stdout,
                r.stderr + f"\n(timed out after {timeout}s)",
                124,
                time.monotonic() - start,
            )
        except AuthFailure:
            raise wrong_password(self.name) from None
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise ConnectError(
                f"lost the connection to {self.name}: {e or type(e).__name__}"
            ) from None
        if wrapped is not command_sent and r.exited == 1:
            said = next(filter(None, map(sudo_refusal, r.stderr.splitlines())), None)
            if said:
                raise refused(self.name, said)
        stdout = r.stdout
        if command_sent is not command:  # the line drawn for this run is not the command's
            stdout = stdout.replace(start_line + "\n", "", 1)
        return Output(command, stdout, r.stderr, r.exited, time.monotonic() - start)

    def _needs_password(self, root: bool, user: str | None) -> bool:
        """Fabric's sudo answers a password prompt on this command's input (see _wrap)."""
        return bool(self.sudo_password) and (
            bool(user and user != self.conn.user) or (root and not self.is_root)
        )

    def _execute(
        self,
        wrapped: str,
        via_fabric_sudo: bool,
        user: str | None,
        timeout: float | None,
        stdin: str | None = None,
        start_line: str = "",
    ):
        for attempt in range(CHANNEL_RETRIES + 1):
            try:
                if via_fabric_sudo:  # Fabric's watchers answer sudo's password prompt
                    # invoke's sudo reads its prompt from the config (sudo -S -p '…').
                    self.conn.config.sudo.prompt = self.sudo_prompt
                    watchers = []
                    if stdin is not None:  # sent after sudo, once the command says it runs
                        from invoke.watchers import Responder

                        watchers = [Responder(pattern=re.escape(start_line), response=stdin)]
                    return self.conn.sudo(
                        wrapped,
                        user=user or "root",
                        password=self.sudo_password,
                        hide=True,
                        warn=True,
                        in_stream=False,
                        timeout=timeout,
                        watchers=watchers,
                    )
                if stdin is not None:
                    return self._exec(wrapped, timeout, stdin=stdin)
                return self._exec(wrapped, timeout)
            except paramiko.ChannelException:
                if attempt == CHANNEL_RETRIES:
                    raise
                time.sleep(0.02 * 2**attempt)

    def _trace(self, command: str) -> None:
        """CYNOW_OPS_TRACE=FILE keeps every command line sent (NUL-separated): the deploy
        benchmark replays them as one plain ssh script. Passwords are never in a command."""
        path = os.environ.get("CYNOW_OPS_TRACE")
        if path:
            with open(path, "a") as f:
                f.write(command + "\0")

    def _open_session(self):
        """A new channel on the open connection. sshd answers a channel open only between its
        other work (a PAM session for a login, several channels at once on a busy host): a
        live but slow server gets CHANNEL_OPEN_SECONDS, not the connect timeout (seen in CI:
        "Timeout opening channel" after 10 s on a healthy lab host)."""
        wait = max(float(self.conn.connect_timeout or 0), CHANNEL_OPEN_SECONDS)
        return self.conn.client.get_transport().open_session(timeout=wait)

    def _exec(self, command: str, timeout: float | None, stdin: str | None = None) -> Result:
        """One command on its own channel, read until it exits. Lighter than Fabric's Runner
        (no polling threads per stream), which matters with many channels at once. `stdin` is
        sent whole, then the end of input."""
        # The benchmark's replay (plain ssh) gets the input in its script instead.
        self._trace(command if stdin is None else f"printf %s {shell.q(stdin)} | {command}")
        chan = self._open_session()
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            chan.exec_command(command)
            if stdin is not None:
                # No sudo prompt can read it: only sudo -n (never prompts) or no sudo come here.
                chan.sendall(stdin.encode())
                chan.shutdown_write()
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise CommandTimedOut(
                        Result(
                            stdout=out.decode(errors="replace"),
                            stderr=err.decode(errors="replace"),
                            command=command,
                            exited=124,
                        ),
                        timeout,
                    )
                select.select([chan], [], [], 1.0 if left is None else min(left, 1.0))
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                # Done at EOF, not at exit-status: sshd may send the status while output is
                # still in the pipe.
                if (
                    (chan.eof_received or chan.closed)
                    and not chan.recv_ready()
                    and not chan.recv_stderr_ready()
                ):
                    break
            exited = chan.recv_exit_status()
            if exited == -1:
                transport = self.conn.client.get_transport()
                if transport is None or not transport.is_active():
                    # The connection went while the command ran: its output is partial, never
                    # a result.
                    raise EOFError("the connection closed before the command ended")
                # The link is up but no exit status came (sshd sends none for a command that a
                # signal ended; paramiko then reports -1): a failure, said as such.
                exited = 255
                err += b"\n(the command ended without an exit status: ended by a signal?)"
        finally:
            chan.close()
        return Result(
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            command=command,
            exited=exited,
        )

    def _wrap(
        self, command: str, root: bool, user: str | None, detach: bool = True
    ) -> tuple[str, bool]:
        """The command as sent: through sudo when another identity is needed. With a sudo
        password, Fabric's sudo answers the prompt; without one, `sudo -n` fails fast.
        `detach=False`: the command detaches its input itself (run's one line of stdin)."""
        wrap = detached if detach else lambda c: "sh -c " + shell.q(c)
        if user and user != self.conn.user:
            if self.sudo_password:
                return wrap(command), True
            return shell.as_user(user, command), False
        if root and not self.is_root:
            if self.sudo_password:
                return wrap(command), True
            return shell.as_root(command), False
        return command, False

    def stream(self, command: str, on_line, *, root: bool = False) -> None:
        """Run a long command on a pty, calling on_line for each line until it ends or Ctrl-C.
        Closing the channel hangs up the pty, which ends the remote processes too.

        Under sudo, the command first prints a line drawn for this run: what comes before it
        is sudo's (its lecture, prompt, refusal), never output. A refusal is a ConnectError,
        as in `run`. A sudo password is typed once, at a prompt drawn for this run, before the
        command starts (so no log line can ask for it): a second prompt means it was wrong."""
        sudo = root and not self.is_root
        password = self.sudo_password if sudo else None
        token = secrets.token_hex(8)
        prompt, start = f"[cynow-ops sudo {token}] ", f"cynow-ops started {token}"
        inner = f"{shell.say(start)}\n{command}"
        if not sudo:
            wrapped = command
        elif password:  # -S: read at the prompt from the pty, with echo off
            wrapped = f"sudo -S -p {shell.q(prompt)} -- sh -c {shell.q(inner)}"
        else:
            wrapped = shell.as_root(inner)
        chan = self._open_session()
        buf, started, answered, said = b"", not sudo, False, ""
        try:
            chan.get_pty(width=500)
            chan.exec_command(wrapped)
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                buf += data
                if password and not started and prompt.encode() in buf:
                    if answered:
                        raise wrong_password(self.name)
                    chan.sendall(password.encode() + b"\n")
                    answered = True
                    buf = buf.replace(prompt.encode(), b"", 1)
                *done, buf = buf.split(b"\n")
                for raw in done:
                    line = raw.decode(errors="replace").rstrip("\r")
                    if started:
                        on_line(line)
                    elif line == start:
                        started = True
                    else:
                        said = self._sudo_said(line) or said
            if not started:  # sudo ended without running the command
                raise ConnectError(
                    f"sudo on {self.name} did not start the command ({said or 'no reason given'})"
                )
        except KeyboardInterrupt:
            pass
        finally:
            chan.close()

    def _sudo_said(self, line: str) -> str:
        """A line sudo printed before the command started: raises on a refusal; the line,
        stripped, to quote should sudo end without one."""
        refusal = sudo_refusal(line)
        if refusal:
            raise refused(self.name, refusal)
        return line.strip()

    def many(self, jobs: dict[str, dict]) -> dict[str, Output]:
        """Run independent commands concurrently on channels of the one connection.

        `jobs` maps a name to keyword arguments of `run` (command=..., root=..., user=...,
        timeout=...), plus `alone=True` for a slow job that gets its own channel at once. Other
        jobs that run as the same identity share one channel and one sudo (`shell.batch`):
        sudo and channel setup cost more than most of these commands.
        """
        groups: dict[object, list[str]] = {}
        for name, kw in sorted(jobs.items(), key=lambda item: not item[1].get("alone")):
            key = name if kw.get("alone") else (bool(kw.get("root")), kw.get("user"))
            groups.setdefault(key, []).append(name)
        self._nodelay(len(groups) == 1)
        try:
            with ThreadPoolExecutor(max_workers=max(1, MAX_CHANNELS)) as pool:
                futures = {
                    tuple(names): pool.submit(self._run_group, names, jobs)
                    for names in groups.values()
                }
                out: dict[str, Output] = {}
                for f in futures.values():
                    out.update(f.result())
        finally:
            self._nodelay(True)
        return {name: out[name] for name in jobs}

    def _run_group(self, names: list[str], jobs: dict[str, dict]) -> dict[str, Output]:
        if len(names) == 1:
            kw = {k: v for k, v in jobs[names[0]].items() if k != "alone"}
            return {names[0]: self.run(**kw)}
        first = jobs[names[0]]
        timeouts = [jobs[n].get("timeout") for n in names]
        whole = self.run(
            shell.batch({n: jobs[n]["command"] for n in names}),
            root=bool(first.get("root")),
            user=first.get("user"),
            timeout=None if None in timeouts else sum(timeouts),
        )
        parts = shell.read_batch(whole.stdout)
        return {
            n: Output(
                jobs[n]["command"],
                parts.get(n, ("", 255))[0],
                whole.stderr,
                parts.get(n, ("", 255))[1],
                whole.seconds,
            )
            for n in names
        }
