"""The only code that runs commands on a target: one SSH connection, many concurrent channels.

Commands come ready-made from `tasks.commands`; this module adds sudo, timing, timeouts and the
translation of SSH failures into one-line errors. Commands never run on the local machine: a
Remote only wraps a fabric.Connection.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paramiko
from fabric import Connection
from invoke.exceptions import AuthFailure, CommandTimedOut

from tasks import commands
from tasks.connect import describe, open_connection
from tasks.errors import ConnectError
from tasks.settings import Settings

# Channels opened at once on one connection. OpenSSH's default MaxSessions is 10, and a closed
# channel is counted until the server has processed the close, so stay well below.
MAX_CHANNELS = 6
# sshd refuses a channel when MaxSessions is reached; that clears as soon as another closes.
CHANNEL_RETRIES = 6


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
        self._sudo_checked = False

    @property
    def is_root(self) -> bool:
        return self.conn.user == "root"

    @property
    def sudo_password(self) -> str | None:
        return self.conn.config.sudo.password or None

    def open(self) -> None:
        open_connection(self.conn, self.settings)

    def close(self) -> None:
        self.conn.close()

    def run(
        self,
        command: str,
        *,
        root: bool = False,
        user: str | None = None,
        timeout: float | None = None,
    ) -> Output:
        """Run a shell command line; `root` or `user` run it through sudo. Never raises on exit
        status (the caller judges it); raises ConnectError when the connection fails."""
        wrapped, via_fabric_sudo = self._wrap(command, root, user)
        start = time.monotonic()
        try:
            if via_fabric_sudo:
                r = self.conn.sudo(
                    wrapped,
                    user=user or "root",
                    password=self.sudo_password,
                    hide=True,
                    warn=True,
                    in_stream=False,
                    timeout=timeout,
                )
            else:
                r = self.conn.run(wrapped, hide=True, warn=True, in_stream=False, timeout=timeout)
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
            raise ConnectError(
                f"sudo on {self.name} rejected the password: check sudo.password "
                "or retype it with --prompt-for-sudo-password"
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise ConnectError(
                f"lost the connection to {self.name}: {e or type(e).__name__}"
            ) from None
        return Output(command, r.stdout, r.stderr, r.exited, time.monotonic() - start)

    def _execute(
        self, wrapped: str, via_fabric_sudo: bool, user: str | None, timeout: float | None
    ):
        for attempt in range(CHANNEL_RETRIES + 1):
            try:
                if via_fabric_sudo:
                    return self.conn.sudo(
                        wrapped,
                        user=user or "root",
                        password=self.sudo_password,
                        hide=True,
                        warn=True,
                        in_stream=False,
                        timeout=timeout,
                    )
                return self.conn.run(
                    wrapped, hide=True, warn=True, in_stream=False, timeout=timeout
                )
            except paramiko.ChannelException:
                if attempt == CHANNEL_RETRIES:
                    raise
                time.sleep(0.02 * 2**attempt)

    def _wrap(self, command: str, root: bool, user: str | None) -> tuple[str, bool]:
        if user and user != self.conn.user:
            self.ensure_sudo()
            if self.sudo_password:
                return f"sh -c {commands.q(command)}", True
            return commands.as_user(user, command), False
        if root and not self.is_root:
            self.ensure_sudo()
            if self.sudo_password:
                return f"sh -c {commands.q(command)}", True
            return commands.as_root(command), False
        return command, False

    def ensure_sudo(self) -> None:
        """Fail early, in one line, when sudo wants a password that was not given."""
        if self._sudo_checked or self.sudo_password:
            return
        r = self.conn.run(commands.sudo_probe(), hide=True, warn=True, in_stream=False)
        if r.exited != 0:
            reason = (r.stderr.strip().splitlines() or ["sudo failed"])[-1]
            raise ConnectError(
                f"sudo on {self.name} needs a password ({reason}): rerun with "
                "--prompt-for-sudo-password, or set sudo.password in a -f file kept out of git"
            )
        self._sudo_checked = True

    def many(self, jobs: dict[str, dict]) -> dict[str, Output]:
        """Run independent commands concurrently, each on its own channel of the one connection.

        `jobs` maps a name to keyword arguments of `run` (command=..., root=..., ...).
        """
        if any(j.get("root") or j.get("user") for j in jobs.values()):
            self.ensure_sudo()  # once, before the threads race to do it
        with ThreadPoolExecutor(max_workers=MAX_CHANNELS) as pool:
            futures = {name: pool.submit(self.run, **kw) for name, kw in jobs.items()}
            return {name: f.result() for name, f in futures.items()}
