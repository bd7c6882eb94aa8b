"""Exit codes and the errors that end a task with a one-line message."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every exit code `fab` returns for cynow-ops tasks (documented in the README)."""

    OK = 0  # done; the target is healthy
    PROBLEM = 1  # the task ran and found (or left) a problem on the target
    UNREACHABLE = 2  # could not connect, authenticate, verify the host key, or use sudo
    CONFIG = 3  # bad configuration or arguments; nothing was contacted or changed


class OpsError(Exception):
    """An error a user can act on: one line saying what is wrong and what to do."""

    code = ExitCode.PROBLEM

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConfigError(OpsError):
    code = ExitCode.CONFIG


class ConnectError(OpsError):
    """Unreachable, refused, authentication, host key or sudo: the target could not be used."""

    code = ExitCode.UNREACHABLE
