"""What every task shares: settings, the hosts to act on, errors as exit codes, output."""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from invoke.exceptions import Exit

from tasks.connect import (
    allowed_networks,
    describe,
    make_connection,
    settings_for,
    target_hosts,
)
from tasks.errors import OpsError
from tasks.fleet import Fleet, host_error, worst_exit
from tasks.runner import Remote
from tasks.settings import Settings
from tasks.text import clean

# Flags every task has; `fab --help TASK` shows these texts.
COMMON_HELP = {
    "target": "named target (config/targets.yaml or a -f file); -H overrides its hosts",
    "json": "print one JSON document on stdout instead of the report (schema in the README)",
}
# One host's lines at a time, whichever thread prints them (tasks over several hosts).
PRINTING = threading.Lock()
PARALLEL_HELP = {
    "parallel": "with several hosts: work on at most N at once (default 10); 1 = one after another"
}


@functools.cache
def console(stderr: bool = False):
    """rich's Console, created on first use: JSON runs never import rich (faster start)."""
    from rich.console import Console

    from tasks.text import CleanHook

    out = Console(stderr=stderr, highlight=False)
    out.push_render_hook(CleanHook())  # server text is data: no control codes reach the tty
    return out


def guarded(fn: Callable) -> Callable:
    """Turn OpsError into a one-line message on stderr and its documented exit code."""

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OpsError as e:
            message = clean(e.message, newlines=False)  # messages quote server text
            raise Exit(f"cynow-ops: {message}", code=int(e.code)) from None

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
    allowed_networks(settings)  # as is a bad CYNOW_OPS_ALLOWED_NETWORKS
    return settings


def print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def each_host(
    c,
    settings: Settings,
    work: Callable,
    render: Callable,
    json: bool,
    parallel: int = 1,
) -> list:
    """work(remote) on every target host, `parallel` at a time, each result rendered as it
    arrives unless --json. One host: its connection error is the run's one-line error (exit 2).
    Several: an unusable host is reported as its own result (HostError) and the others go on."""
    fleet = Fleet.of(c, settings)
    if len(fleet) == 1:
        remote = Remote(fleet[0], settings)
        remote.open()
        try:
            result = work(remote)
        finally:
            remote.close()
        if not json:
            render(result)
        return [result]

    def done(remote: Remote, value) -> None:
        if json:
            return
        from rich.markup import escape

        with PRINTING:  # one host's report at a time, under its name
            console().rule(f"[bold]{remote.name}[/]", align="left")
            if isinstance(value, OpsError):
                console().print(f"[red]{remote.name}: {escape(value.message)}[/]")
            else:
                render(value)

    results = fleet.each(work, parallel, done)
    return [
        host_error(describe(cxn), v) if isinstance(v, OpsError) else v for cxn, v in results.items()
    ]


def emit(
    results: list, schema: str, json: bool, failed: Callable = lambda r: False, single: bool = True
) -> None:
    """The --json document (one host: its own document when `single`; else {"schema",
    "hosts"}), then exit with the worst host's code: 2 a host could not be used, 1 failed."""
    if json:
        docs = [r.to_json() if hasattr(r, "to_json") else r for r in results]
        print_json(docs[0] if single and len(docs) == 1 else {"schema": schema, "hosts": docs})
    code = worst_exit(results, failed)
    if code:
        raise Exit(code=code)
