"""`fab logs`: the guide's step 2 in one command: gunicorn's journal, nginx's error log and the
Django log, cut to a time window, optionally only the lines the catalogue knows, or followed."""

from __future__ import annotations

import re

from fabric import task

from tasks import catalogue, parse, shell
from tasks.common import COMMON_HELP, console, guarded, load, print_json, remotes
from tasks.errors import ConfigError
from tasks.runner import Remote
from tasks.settings import whole_number
from tasks.shell import as_user, batch, join, q

SCHEMA = "cynow-ops.logs.v1"


LOG_SOURCES = ("gunicorn", "nginx", "django")


def since_check(since: str) -> str:
    """The cut-off in both log clocks, or date's own complaint (the user's --since, quoted)."""
    return f"date -d {q(since)} '+nginx=%Y/%m/%d %H:%M:%S%ndjango=%Y-%m-%d %H:%M:%S%nepoch=%s'"


def logs_script(
    unit: str, nginx_log: str, django_log: str, lines: int, since: str | None, app_user: str
) -> str:
    """The three logs of the guide's step 2, as root but Django's log as the app user (the app
    writes it, in a directory it may own: root would follow a symlink it planted). With
    --since, the files are read further back and cut locally by their timestamps; the journal
    is cut by journalctl itself."""
    if since:
        journal = (
            join("journalctl", "--no-pager", "-o", "short-iso", "-u", unit, "--since", since)
            + f" | tail -n {int(lines)}"
        )
        span = max(int(lines) * 20, 2000)
    else:
        journal = join(
            "journalctl", "--no-pager", "-o", "short-iso", "-u", unit, "-n", str(int(lines))
        )
        span = int(lines)
    return batch(
        {
            "gunicorn": journal,
            "nginx": f"tail -n {span} {q(nginx_log)}",
            "django": as_user(app_user, f"tail -n {span} {q(django_log)}"),
        }
    )


def follow_script(unit: str, nginx_log: str, django_log: str, app_user: str) -> str:
    """Every new line of the three logs, each prefixed with its source, until the channel
    closes (run on a pty: closing it hangs up all three readers). Django's as the app user,
    as in logs_script."""
    return (
        " & ".join(
            [
                join("journalctl", "--no-pager", "-o", "short-iso", "-f", "-n", "0", "-u", unit)
                + " | sed -u 's/^/gunicorn| /'",
                f"tail -F -n 0 {q(nginx_log)} 2>/dev/null | sed -u 's/^/nginx| /'",
                as_user(app_user, f"tail -F -n 0 {q(django_log)} 2>/dev/null")
                + " | sed -u 's/^/django| /'",
            ]
        )
        + " & wait"
    )


_STAMP = {
    "nginx": re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) "),
    "django": re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"),
}


def cut(lines: list[str], stamp: re.Pattern, cutoff: str | None) -> list[str]:
    """Lines at or after the cut-off (timestamps compare as text in these fixed formats);
    untimed lines (traceback continuations) go with the record above them."""
    if cutoff is None:
        return lines
    keep, inside = [], False
    for line in lines:
        m = stamp.match(line)
        if m:
            inside = m.group(1) >= cutoff
        if inside:
            keep.append(line)
    return keep


def select(lines: list[str], known: bool, n: int) -> list[dict]:
    out = []
    for line in lines:
        m = catalogue.match_line(line)
        if known and not m:
            continue
        out.append({"line": line, "signature": m.entry.key if m else None})
    return out[-n:]


def read(remote: Remote, since: str | None, n: int, known: bool) -> dict:
    s = remote.settings
    cutoffs: dict = {}
    if since:
        check = remote.run(since_check(since))
        if not check.ok:
            raise ConfigError(
                f"--since {since!r} is not a time the server understands "
                f"({check.stderr.strip()}); try '10 minutes ago' or "
                "'2026-11-27 14:00'"
            )
        cutoffs = parse.key_values(check.stdout)
    out = remote.run(
        logs_script(s.gunicorn_unit, s.nginx_error_log, s.django_log, n, since, s.app_user),
        root=True,
    )
    parts = shell.read_batch(out.stdout)
    sources = {}
    for name in LOG_SOURCES:
        lines = [
            ln for ln in parts.get(name, ("", 0))[0].splitlines() if ln and not ln.startswith("-- ")
        ]
        if name in _STAMP:
            lines = cut(lines, _STAMP[name], cutoffs.get(name))
        sources[name] = select(lines, known, n)
    return {"host": remote.name, "since": since, "known_only": known, "sources": sources}


COLOURS = {"gunicorn": "cyan", "nginx": "magenta", "django": "green"}


def render(doc: dict) -> None:
    from rich.markup import escape

    c = console()
    for name, entries in doc["sources"].items():
        c.print(f"[bold {COLOURS[name]}]── {name} ({len(entries)} lines)[/]")
        for e in entries:
            mark = f"[red]{e['signature']}[/] " if e["signature"] else ""
            c.print(f"{mark}{escape(e['line'])}", highlight=False, soft_wrap=True)


def follow_logs(remote: Remote, known: bool) -> None:
    from rich.markup import escape

    s = remote.settings
    c = console()

    def show(line: str) -> None:
        source, _, text = line.partition("| ")
        m = catalogue.match_line(text)
        if known and not m:
            return
        colour = COLOURS.get(source, "white")
        sig = f" [red]{m.entry.key}[/]" if m else ""
        c.print(f"[{colour}]{source}[/]{sig} {escape(text)}", soft_wrap=True, highlight=False)

    remote.stream(
        follow_script(s.gunicorn_unit, s.nginx_error_log, s.django_log, s.app_user), show, root=True
    )


@task(
    help={
        **COMMON_HELP,
        "since": "only lines from this time on, e.g. '10 minutes ago' or '2026-11-27 14:00'",
        "n": "at most this many lines per log (default 50)",
        "follow": "keep printing new lines until Ctrl-C",
        "known": "only lines the catalogue of known 502 causes recognises",
    }
)
@guarded
def logs(c, since=None, n=None, follow=False, known=False, target=None, json=False):
    """Show gunicorn's journal, nginx's error log and the Django log (--since, -n, --follow).

    Exit codes: 0 shown, 2 could not connect, 3 bad configuration or --since.
    """
    settings = load(c, target)
    n = whole_number("-n", n, 50)
    docs = []
    for remote in remotes(c, settings):
        if follow:
            follow_logs(remote, known)
            continue
        doc = read(remote, since, n, known)
        docs.append(doc)
        if not json:
            render(doc)
    if json and docs:
        print_json(
            {"schema": SCHEMA, **docs[0]} if len(docs) == 1 else {"schema": SCHEMA, "hosts": docs}
        )
