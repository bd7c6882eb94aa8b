"""The health gate: every health URL answers through the socket and through nginx, the old
workers are gone, the master is still there, no new traceback in the journal. The deploy's last
step, and `fab restart`'s, `fab repair`'s and `fab restore`'s check."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from tasks import shell
from tasks.checks import http
from tasks.checks.http import http_script
from tasks.runner import Remote
from tasks.shell import batch, join
from tasks.steps.context import Ctx, Step, StepFailed
from tasks.systemd import unit_pids

HEALTH_TIMEOUT = 30.0


def wait_gone(unit: str, pids: Sequence[int], seconds: float) -> str:
    """Wait (on the server: no round trip per poll) up to `seconds` until none of `pids` is left
    in the unit's control group."""
    old = " ".join(str(int(p)) for p in pids)
    return "\n".join(
        [
            f"old=' {old} '",
            f"end=$(( $(date +%s%3N) + {max(0, int(seconds * 1000))} ))",
            "while :; do",
            "  left=",
            f"  for p in $( {unit_pids(unit)} ); do",
            '    case "$old" in *" $p "*) left="$left $p";; esac',
            "  done",
            '  [ -n "$left" ] && [ "$(date +%s%3N)" -lt "$end" ] || break',
            "  sleep 0.05",
            "done",
        ]
    )


def health_script(
    socket: str,
    urls: list[str],
    http_timeout: float,
    unit: str,
    old_pids: Sequence[int] = (),
    wait: float = 0.0,
    journal_after: str = "",
    host: str | None = None,
    scheme: str = "http",
    without_curl: str = "",
) -> str:
    """One poll of the health gate in one round trip, as root: first (up to `wait` seconds) until
    the old workers `old_pids` have left, so that the new ones answer; then every URL through
    the socket and through nginx, the unit's processes and main PID, and with a journal cursor
    the number of tracebacks the unit logged after it."""
    parts = {}
    if old_pids:
        parts["wait"] = wait_gone(unit, old_pids, wait)
    parts["http"] = http_script(socket, urls, http_timeout, host, scheme, without_curl)
    parts["pids"] = unit_pids(unit)
    parts["main"] = join("systemctl", "show", "-p", "MainPID", "--value", unit)
    if journal_after:
        parts["tracebacks"] = (
            # --sync returns once journald has processed what was sent to it before: a
            # traceback a worker has just printed is counted, not missed by a few milliseconds.
            "journalctl --sync 2>/dev/null; "
            + join(
                "journalctl",
                "--no-pager",
                "-o",
                "cat",
                "-u",
                unit,
                f"--after-cursor={journal_after}",
            )
            + " | tail -n 400; true"
        )
    return batch(parts)


# Between two polls of the health gate. The wait for the old workers happens on the server,
# inside a poll; a second poll is only for a socket still missing (a full restart booting) or an
# answer that was not yet right.
POLL_PAUSE = 0.1
# The longest a poll waits on the server for old workers before it asks the URLs anyway: idle
# workers leave within a second of the HUP, and a busy one should not hide a 500 from the new
# ones for long.
WAIT_SLICE = 5.0


@dataclass
class Poll:
    """One poll of the health gate (health_script)."""

    replies: dict  # tasks.checks.http.parse_http
    pids: list[int]
    main_pid: int | None  # None: not read
    tracebacks: int | None  # None: not asked
    errors: tuple = ()  # each traceback's last line (the exception), for the failure message
    races: int = 0  # tracebacks of gunicorn's own logging race (not the app's), not counted


START = "Traceback (most recent call last)"


def tracebacks_in(lines: list[str]) -> list[str]:
    """The exception line ending each Python traceback in the unit's journal (`-o cat`): the
    first line after its start that is not indented and not a chaining line."""
    found = []
    for i, line in enumerate(lines):
        if START not in line:
            continue
        end = next(
            (
                ln
                for ln in lines[i + 1 :]
                if ln.strip() and not ln[:1].isspace() and not ln.startswith(("During ", "The "))
            ),
            "",
        )
        found.append(end.strip()[:200] or "(the traceback was cut off)")
    return found


# gunicorn's master logs from its SIGCHLD handler (reap_workers in 23.0.0); when a worker it
# replaced on a HUP exits while the master is itself writing a log line, Python's logging
# prints "--- Logging error ---" and this exception (benoitc/gunicorn#2564, #2816). The master
# and the new workers go on serving: it is not the release's error, and a deploy rolled back
# for it is a healthy release undone. A master that did die of it is caught as a master gone.
LOGGING_RACE = "RuntimeError: reentrant call inside <_io.Buffered"


def logging_race(exception: str) -> bool:
    return exception.startswith(LOGGING_RACE)


def read_poll(stdout: str) -> Poll:
    parts = {k: v[0] for k, v in shell.read_batch(stdout).items()}
    main = parts.get("main", "").strip()
    errors = tracebacks_in(parts["tracebacks"].splitlines()) if "tracebacks" in parts else None
    return Poll(
        replies=http.parse_http(parts.get("http", "")),
        pids=sorted(int(p) for p in parts.get("pids", "").split() if p.isdigit()),
        main_pid=int(main) if main.isdigit() else None,
        tracebacks=None if errors is None else len([e for e in errors if not logging_race(e)]),
        errors=tuple(e for e in errors or () if not logging_race(e)),
        races=len([e for e in errors or () if logging_race(e)]),
    )


def judge(poll: Poll, urls: list[str], since_pids=(), main_pid: int = 0) -> tuple[str, str]:
    """The verdict on one poll, with what was seen: `ok`; `failed`, when waiting longer cannot
    help; or `waiting`. Every URL must answer through the socket and through nginx."""
    none = {"code": 0, "error": "no answer"}
    bad = [
        f"{via} {u}: {http.describe(poll.replies[via].get(u, none))}"
        for via in ("socket", "nginx")
        for u in urls
        if not http.ok_code(poll.replies[via].get(u, none).get("code", 0))
    ]
    if main_pid and poll.main_pid is not None and poll.main_pid != main_pid:
        # A HUP keeps the master; it exits when the new workers cannot boot (gunicorn halts).
        return "failed", f"gunicorn's master (pid {main_pid}) exited after the reload" + (
            ": " + "; ".join(bad) if bad else ""
        )
    old = set(since_pids) & set(poll.pids)
    if bad or old:
        return "waiting", "; ".join(bad) or f"old workers still running: {sorted(old)}"
    if poll.tracebacks:
        last = f": {poll.errors[-1]}" if poll.errors else ""
        return "failed", f"{poll.tracebacks} traceback(s) in the journal since the reload{last}"
    seen = ", ".join(f"{u} {http.describe(poll.replies['nginx'][u])}" for u in urls)
    if poll.races:
        seen += (
            f" (gunicorn's master logged {poll.races} traceback(s) of its own logging race,"
            " 'reentrant call', benoitc/gunicorn#2816: not the app's, not counted)"
        )
    return "ok", seen


def app_error(poll: Poll) -> bool:
    """A 500 is the app answering with an error, not a worker still booting (that is a 502 or
    a refused connection)."""
    return any(
        r.get("code", 0) >= 500 and r.get("code") not in (502, 503, 504)
        for via in ("socket", "nginx")
        for r in poll.replies[via].values()
    )


def health(
    remote: Remote,
    timeout: float = HEALTH_TIMEOUT,
    since_pids=(),
    main_pid: int = 0,
    journal_after: str = "",
) -> tuple[bool, str]:
    """Every health URL answers through the socket and through nginx (and, after a HUP, the old
    workers `since_pids` are gone and the master `main_pid` is still there), within `timeout`
    seconds. With a journal cursor, a traceback the unit logged after it fails the check too.
    Each poll is one round trip; the wait for the old workers happens inside it."""
    s = remote.settings
    deadline = time.monotonic() + timeout
    errors_seen = 0
    while True:
        script = health_script(
            s.socket,
            s.health_urls,
            s.http_timeout,
            s.gunicorn_unit,
            list(since_pids),
            wait=min(WAIT_SLICE, max(0.0, deadline - time.monotonic())),
            journal_after=journal_after,
            host=s.health_host,
            scheme=s.health_scheme or "http",
            # No curl on the server: the venv's python asks, as the service.
            without_curl=http.python_ask(s, s.health_scheme or "http"),
        )
        poll = read_poll(remote.run(script, root=True).stdout)
        verdict, detail = judge(poll, s.health_urls, since_pids, main_pid)
        if verdict != "waiting":
            return verdict == "ok", detail
        # An app error twice in a row is enough to stop waiting.
        errors_seen = errors_seen + 1 if app_error(poll) else 0
        if errors_seen >= 2 or time.monotonic() > deadline:
            return False, detail
        time.sleep(POLL_PAUSE)


def health_gate(ctx: Ctx) -> str:
    ok, detail = health(
        ctx.remote,
        timeout=ctx.s.health_timeout,
        since_pids=ctx.reload_workers,
        main_pid=ctx.reload_master,
        journal_after=ctx.journal_cursor if ctx.check_journal else "",
    )
    if not ok:
        raise StepFailed(f"health gate: {detail}")
    return detail


GATE = Step("health", health_gate)
