"""Many hosts at once: Fabric's Group of verified Connections, worked on concurrently but never
more than `parallel` at a time, each host's result (or the error that stopped it) kept apart.

Fabric's ThreadingGroup starts one thread per host with no bound and only runs single commands
(fabric#1844); a cynow-ops task is a whole conversation with a host (diagnose, a deploy with
its rollback), so the unit of work here is a function of one Remote, and a host that cannot be
reached is one host's result, not the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fabric import Connection, Group, GroupResult

from tasks.connect import make_connection, target_hosts
from tasks.errors import ConfigError, OpsError
from tasks.runner import Remote
from tasks.settings import Settings, whole_number

# Hosts worked on at once by reading tasks unless --parallel says otherwise: each host is one
# SSH connection with up to six channels, so this keeps the client's sockets and threads modest.
DEFAULT_PARALLEL = 10


class Fleet(Group):
    """A target's hosts as Fabric Connections, host keys verified, not yet opened."""

    settings: Settings

    @classmethod
    def of(cls, c, settings: Settings) -> Fleet:
        fleet = cls.from_connections(
            make_connection(h, c.config, settings) for h in target_hosts(c, settings)
        )
        fleet.settings = settings
        seen: set[Connection] = set()
        for cxn in fleet:
            if cxn in seen:
                raise ConfigError(
                    f"{cxn.user}@{cxn.host}:{cxn.port} is named twice; list each host once"
                )
            seen.add(cxn)
        return fleet

    def only(self, connections) -> Fleet:
        """Some of these hosts (a batch), with the same settings."""
        part = Fleet.from_connections(connections)
        part.settings = self.settings
        return part

    def names(self) -> list[str]:
        return [Remote(cxn, self.settings).name for cxn in self]

    def each(
        self,
        work: Callable[[Remote], Any],
        parallel: int = DEFAULT_PARALLEL,
        done: Callable[[Remote, Any], None] | None = None,
    ) -> GroupResult:
        """work(remote) on every host over its own opened connection, at most `parallel` at
        once. An OpsError (unreachable, sudo refused...) becomes that host's value; `done` sees
        each host's value as it arrives. Results come back in the fleet's order."""

        def one(cxn: Connection) -> Any:
            remote = Remote(cxn, self.settings)
            try:
                remote.open()
                value = work(remote)
            except OpsError as e:
                value = e
            finally:
                remote.close()
            if done is not None:
                done(remote, value)
            return value

        if parallel <= 1 or len(self) == 1:
            values = [one(cxn) for cxn in self]
        else:
            pool = ThreadPoolExecutor(max_workers=min(parallel, len(self)))
            try:
                values = list(pool.map(one, self))
            except KeyboardInterrupt:
                # Ctrl-C: hosts not started yet are never started; those under way finish
                # their conversation (a deploy ends deployed or rolled back, not half-done).
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown()
        return GroupResult(zip(self, values, strict=True))


@dataclass
class HostError:
    """A host the task could not work on (unreachable, host key, sudo...): its own result."""

    host: str
    message: str
    code: int

    @property
    def exit_code(self) -> int:
        return self.code

    def to_json(self) -> dict:
        return {"host": self.host, "exit_code": self.code, "error": self.message}


def host_error(remote_name: str, e: OpsError) -> HostError:
    return HostError(remote_name, e.message, int(e.code))


def worst_exit(values: list[Any], failed: Callable[[Any], bool]) -> int:
    """The run's exit code: 2 when a host could not be used, else 1 when a host failed."""
    codes = [
        v.code
        if isinstance(v, HostError)
        else int(v.code)
        if isinstance(v, OpsError)
        else int(bool(failed(v)))
        for v in values
    ]
    return max(codes, default=0)


def parse_parallel(value: Any) -> int:
    """--parallel N: hosts worked on at once (not given: DEFAULT_PARALLEL)."""
    return whole_number("--parallel", value, DEFAULT_PARALLEL)
