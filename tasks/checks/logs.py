"""Guide step 2: the logs, cut to the window that matters and matched against the catalogue."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

from tasks import catalogue
from tasks.checks.base import APP, ROOT, Check, Fact, Facts, Finding
from tasks.settings import Settings
from tasks.shell import batch, join, q

NGINX_CLOCK = "%Y/%m/%d %H:%M:%S"
DJANGO_CLOCK = "%Y-%m-%d %H:%M:%S"
_NGINX_TS = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) ")
_DJANGO_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def journal_command(s: Settings, _facts=None, lines: int = 400) -> str:
    """The gunicorn unit's journal (gunicorn's output and systemd's words about it)."""
    # Not `-n`: combined with --since, journalctl counts lines from the start of the window.
    return (
        join(
            "journalctl",
            "--no-pager",
            "-o",
            "short-iso",
            "-u",
            s.gunicorn_unit,
            "-u",
            s.gunicorn_socket_unit,
            "--since",
            f"{int(s.log_window_minutes)} min ago",
        )
        + f" | tail -n {int(lines)}"
    )


def log_tail(path: str, clock_format: str, lines: int) -> str:
    """The server's clock (to cut the window) and the end of a log file."""
    return batch(
        {"clock": f"date {q('+' + clock_format)}", "log": f"tail -n {int(lines)} {q(path)} 2>&1"}
    )


def windowed(parts: dict, clock_format: str, stamp: re.Pattern, minutes: float) -> list[str]:
    """Log lines written in the last `minutes` by the server's own clock.

    Lines without a timestamp (traceback continuations) belong to the record above them.
    """
    log = parts["log"].text
    try:
        now = datetime.strptime(parts["clock"].text.strip(), clock_format)
    except ValueError:
        return log.splitlines()
    start = now - timedelta(minutes=minutes)
    keep, inside = [], False
    for line in log.splitlines():
        m = stamp.match(line)
        if m:
            try:
                inside = datetime.strptime(m.group(1), clock_format) >= start
            except ValueError:
                inside = False
        if inside:
            keep.append(line)
    return keep


def parse_nginx_log(parts: dict, s: Settings) -> list[str]:
    return windowed(parts, NGINX_CLOCK, _NGINX_TS, s.log_window_minutes)


def parse_django_log(parts: dict, s: Settings) -> list[str]:
    return windowed(parts, DJANGO_CLOCK, _DJANGO_TS, s.log_window_minutes)


def parse_journal(stdout: str, _s=None) -> list[str]:
    return [ln for ln in stdout.splitlines() if ln and not ln.startswith("-- ")]


def _tail(name: str, path, clock: str, lines: int, parser, identity: str) -> Fact:
    """A log file's end, with the server's clock in the same round trip."""
    return Fact(
        name, lambda s, _f: log_tail(path(s), clock, lines), parser, identity=identity, framed=True
    )


FACTS = [
    Fact("journal", journal_command, parse_journal, identity=ROOT),
    # nginx's log is root's (nginx opens it before dropping privileges, in a root-owned
    # directory). Django's is written by the app, in a directory the app may own: read as root,
    # a `django.log -> /etc/shadow` planted by the app would land in the report. The app user
    # can read whatever it writes.
    _tail("nginx_log", lambda s: s.nginx_error_log, NGINX_CLOCK, 400, parse_nginx_log, ROOT),
    _tail("django_log", lambda s: s.django_log, DJANGO_CLOCK, 300, parse_django_log, APP),
]


def summarise(matches: list) -> str:
    counts = Counter(m.entry.key for m in matches)
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in counts.most_common(4))


def evidence(matches: list, limit: int = 6) -> list[str]:
    """The newest line of each signature, oldest first: one line per kind of trouble."""
    newest = {}
    for m in matches:
        newest[m.entry.key] = m
    ordered = sorted(newest.values(), key=lambda m: matches.index(m))
    return [m.line.strip() for m in ordered][-limit:]


def timeout_findings(matches: list, s: Settings) -> list[Finding]:
    hits = [m for m in matches if m.entry.cause == "worker_timeout"]
    if not hits:
        return []
    return [
        Finding(
            "worker_timeout",
            evidence(hits),
            [
                "find the slow request in the nginx log lines above and make that view faster",
                f"only if it must be slow: raise --timeout in the unit ({s.gunicorn_unit}) and "
                "proxy_read_timeout in the nginx site together",
            ],
        )
    ]


def _check(check: Check, lines, sources, s):
    window = s.log_window_minutes
    matches = catalogue.match_lines(lines, sources)
    if not lines:
        return check.ok(f"no lines in the last {window:g} min")
    if not matches:
        return check.ok(f"{len(lines)} lines in the last {window:g} min, none from the catalogue")
    # A warning: the lines are history; what they mean now is for the other checks to say.
    return check.warn(
        f"{len(matches)} known error lines: {summarise(matches)}",
        evidence(matches),
        timeout_findings(matches, s),
    )


def evaluate(facts: Facts, s: Settings) -> list:
    journal = Check("logs.gunicorn", 2, f"journal of {s.gunicorn_unit}", reads=("journal",))
    nginx = Check("logs.nginx", 2, s.nginx_error_log, reads=("nginx_log",))
    django = Check("logs.django", 2, s.django_log, reads=("django_log",))
    return [
        _check(journal, facts.journal, None, s),
        _check(nginx, facts.nginx_log, ("nginx",), s),
        _check(django, facts.django_log, ("django", "gunicorn"), s),
    ]
