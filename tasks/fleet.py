"""Many hosts at once: Fabric's Group of verified Connections, worked on concurrently but never
more than `parallel` at a time, each host's result (or the error that stopped it) kept apart.

Fabric's ThreadingGroup starts one thread per host with no bound and only runs single commands
(fabric#1844); a cynow-ops task is a whole conversation with a host (diagnose, a deploy with
its rollback), so the unit of work here is a function of one Remote, and a host that cannot be
reached is one host's result, not the end of the run.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fabric import Connection, Group, GroupResult

from tasks.connect import describe, make_connection, target_hosts
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
        return [describe(cxn) for cxn in self]

    def each(
        self,
        work: Callable[[Remote], Any],
        parallel: int = DEFAULT_PARALLEL,
        done: Callable[[Remote, Any], None] | None = None,
        on_interrupt: Callable[[], None] | None = None,
    ) -> GroupResult:
        """work(remote) on every host over its own opened connection, at most `parallel` at
        once; results in the fleet's order. An error that stops one host (unreachable, sudo
        refused, a bug) becomes that host's value, an OpsError whose `started` says whether its
        work had begun; `done` sees each host's value as it arrives.

        With `on_interrupt`, even one host works in a thread, so Ctrl-C reaches only this
        waiting thread: hosts not started never start, those under way finish their
        conversation (a deploy ends deployed or rolled back, not half-done), `on_interrupt` is
        told first, and Interrupted carries what ended. Without it, Ctrl-C interrupts the host
        at hand (one host's deploy then keeps its record on the server, for `fab rollback`)."""

        def one(cxn: Connection) -> Any:
            remote = Remote(cxn, self.settings)
            started = False
            try:
                remote.open()
                started = True
                value = work(remote)
            except OpsError as e:
                value = e
            except Exception as e:  # noqa: BLE001 (one host's failure must not end the others')
                frame = traceback.extract_tb(e.__traceback__)[-1]
                value = OpsError(
                    f"unexpected {type(e).__name__}: {e} "
                    f"(at {os.path.basename(frame.filename)}:{frame.lineno})"
                )
            finally:
                remote.close()
            if isinstance(value, OpsError):
                value.started = started
            if done is not None:
                done(remote, value)
            return value

        if on_interrupt is None and (parallel <= 1 or len(self) == 1):
            return GroupResult((cxn, one(cxn)) for cxn in self)
        pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(self))))
        futures: list = []
        try:
            futures += [pool.submit(one, cxn) for cxn in self]
            values = [f.result() for f in futures]
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt()
            pool.shutdown(wait=True, cancel_futures=True)
            ended = [(c, f) for c, f in zip(self, futures, strict=False) if f.done()]
            raise Interrupted(
                GroupResult((c, f.result()) for c, f in ended if not f.cancelled())
            ) from None
        pool.shutdown()
        return GroupResult(zip(self, values, strict=True))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during Fleet.each: `ended` holds the hosts that finished; the rest never began."""

    def __init__(self, ended: GroupResult):
        super().__init__()
        self.ended = ended


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
    return max(
        (v.code if isinstance(v, HostError) else int(bool(failed(v))) for v in values), default=0
    )


def parse_parallel(value: Any) -> int:
    """--parallel N: hosts worked on at once (not given: DEFAULT_PARALLEL)."""
    return whole_number("--parallel", value, DEFAULT_PARALLEL)
