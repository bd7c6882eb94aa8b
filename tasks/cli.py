"""What every task shares: settings, the hosts to act on, errors as exit codes, output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

from invoke.exceptions import Exit

from tasks.connect import make_connection, settings_for, target_hosts
from tasks.errors import OpsError
from tasks.runner import Remote
from tasks.settings import Settings

# Flags every task has; `fab --help TASK` shows these texts.
COMMON_HELP = {
    "target": "named target from cynow.targets (fabric.yaml or a -f file); -H overrides its hosts",
    "json": "print one JSON document on stdout instead of the report (schema in the README)",
}


@functools.cache
def console(stderr: bool = False):
    """rich's Console, created on first use: JSON runs never import rich (faster start)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def guarded(fn: Callable) -> Callable:
    """Turn OpsError into a one-line message on stderr and its documented exit code."""

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OpsError as e:
            raise Exit(f"cynow-ops: {e.message}", code=int(e.code)) from None

    return inner


def remotes(c, settings: Settings) -> Iterator[Remote]:
    """Open a verified connection to each target host in turn (closed afterwards)."""
    for host in target_hosts(c, settings):
        remote = Remote(make_connection(host, c.config, settings), settings)
        remote.open()
        try:
            yield remote
        finally:
            remote.close()


def load(c, target: str | None) -> Settings:
    """Validated settings, or ConfigError before anything is contacted."""
    settings = settings_for(c, target)
    target_hosts(c, settings)  # no target at all is a config error, raised now
    return settings


def print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def each_host(c, settings: Settings, work: Callable, render: Callable, json: bool) -> list:
    """work(remote) on every target host in turn; each result rendered unless --json."""
    results = []
    for remote in remotes(c, settings):
        result = work(remote)
        results.append(result)
        if not json:
            render(result)
    return results


def emit(
    results: list, schema: str, json: bool, failed: Callable = lambda r: False, single: bool = True
) -> None:
    """The --json document (one host: its own document when `single`; else {"schema",
    "hosts"}), then exit 1 when any host's result failed."""
    if json:
        docs = [r.to_json() if hasattr(r, "to_json") else r for r in results]
        print_json(docs[0] if single and len(docs) == 1 else {"schema": schema, "hosts": docs})
    if any(failed(r) for r in results):
        raise Exit(code=1)
