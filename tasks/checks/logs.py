"""Guide step 2: the logs, cut to the window that matters and matched against the catalogue."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

from tasks import catalogue, parse
from tasks.checks.base import OK, WARN, Facts, Finding, result
from tasks.settings import Settings

NGINX_CLOCK = "%Y/%m/%d %H:%M:%S"
DJANGO_CLOCK = "%Y-%m-%d %H:%M:%S"
_NGINX_TS = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) ")
_DJANGO_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def windowed(stdout: str, clock_format: str, stamp: re.Pattern, minutes: float) -> list[str]:
    """Log lines written in the last `minutes` by the server's own clock (first output line).

    Lines without a timestamp (traceback continuations) belong to the record above them.
    """
    sections = parse.sections(stdout, ["--log--"])
    try:
        now = datetime.strptime(sections[""].strip(), clock_format)
    except ValueError:
        return sections["--log--"].splitlines()
    start = now - timedelta(minutes=minutes)
    keep, inside = [], False
    for line in sections["--log--"].splitlines():
        m = stamp.match(line)
        if m:
            try:
                inside = datetime.strptime(m.group(1), clock_format) >= start
            except ValueError:
                inside = False
        if inside:
            keep.append(line)
    return keep


def parse_nginx_log(stdout: str, minutes: float) -> list[str]:
    return windowed(stdout, NGINX_CLOCK, _NGINX_TS, minutes)


def parse_django_log(stdout: str, minutes: float) -> list[str]:
    return windowed(stdout, DJANGO_CLOCK, _DJANGO_TS, minutes)


def parse_journal(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines() if ln and not ln.startswith("-- ")]


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


def _check(id, title, lines, sources, s, window):
    matches = catalogue.match_lines(lines, sources)
    if not lines:
        return result(id, 2, title, OK, f"no lines in the last {window:g} min"), matches
    if not matches:
        return result(
            id,
            2,
            title,
            OK,
            f"{len(lines)} lines in the last {window:g} min, none from the catalogue",
        ), matches
    return result(
        id,
        2,
        title,
        WARN,  # history: what it means now is for the other checks to say
        f"{len(matches)} known error lines: {summarise(matches)}",
        evidence(matches),
        timeout_findings(matches, s),
    ), matches


def evaluate(facts: Facts, s: Settings) -> list:
    w = s.log_window_minutes
    j, _ = _check("logs.gunicorn", f"journal of {s.gunicorn_unit}", facts.journal, None, s, w)
    n, _ = _check("logs.nginx", s.nginx_error_log, facts.nginx_log, ("nginx",), s, w)
    d, _ = _check("logs.django", s.django_log, facts.django_log, ("django", "gunicorn"), s, w)
    return [j, n, d]
