"""The catalogue of known 502 causes (shared/FAILURES.md) as patterns over log lines.

Matching is on text, not log level: levels differ between nginx and gunicorn versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    key: str  # stable name of the log signature
    source: str  # nginx | gunicorn | django | systemd
    pattern: re.Pattern
    meaning: str
    cause: str | None  # the cause identifier it points to, when it points to one alone


def _e(key, source, regex, meaning, cause=None) -> Entry:
    return Entry(key, source, re.compile(regex), meaning, cause)


ENTRIES: list[Entry] = [
    # nginx error.log
    _e(
        "nginx_enoent",
        "nginx",
        r"connect\(\) to unix:(?P<path>\S+?) failed \(2: No such file or directory\)",
        "nginx found no socket file: gunicorn is not running, or binds another path",
    ),
    _e(
        "nginx_eacces",
        "nginx",
        r"connect\(\) to unix:(?P<path>\S+?) failed \(13: Permission denied\)",
        "www-data cannot reach the socket (socket mode/group or a parent directory)",
        "socket_permission_denied",
    ),
    _e(
        "nginx_refused",
        "nginx",
        r"connect\(\) to unix:(?P<path>\S+?) failed \(111: Connection refused\)",
        "the socket file exists but nothing listens on it (stale socket)",
        "stale_socket",
    ),
    _e(
        "nginx_backlog",
        "nginx",
        r"connect\(\) to unix:(?P<path>\S+?) failed \(11: Resource temporarily unavailable\)",
        "listen backlog full: every worker is busy",
        "worker_timeout",
    ),
    _e(
        "nginx_premature",
        "nginx",
        r"upstream prematurely closed connection while reading response header",
        "a worker died mid-request (timeout kill, out of memory, crash)",
    ),
    _e(
        "nginx_timeout",
        "nginx",
        r"upstream timed out \(110: Connection timed out\) while reading response header",
        "the view was slower than proxy_read_timeout (504)",
        "worker_timeout",
    ),
    _e(
        "nginx_no_live",
        "nginx",
        r"no live upstreams while connecting to upstream",
        "every upstream server is marked down",
    ),
    _e(
        "nginx_static_eacces",
        "nginx",
        r'open\(\) "(?P<path>[^"]+)" failed \(13: Permission denied\)',
        "nginx (www-data) cannot read a static file",
        "static_unreadable",
    ),
    # gunicorn (journal)
    _e(
        "module_not_found",
        "gunicorn",
        r"ModuleNotFoundError: No module named '(?P<module>[^']+)'",
        "a module the code imports is missing",
    ),
    _e(
        "import_error",
        "gunicorn",
        r"ImportError: cannot import name '(?P<name>[^']+)' from '(?P<module>[^']+)'",
        "code mismatch, or the wrong interpreter/venv",
        "app_import_error",
    ),
    _e("syntax_error", "gunicorn", r"SyntaxError: ", "the code does not parse", "app_import_error"),
    _e(
        "worker_boot",
        "gunicorn",
        r"Worker failed to boot\.",
        "the app failed to import in every worker; the master exits (code 3)",
    ),
    _e(
        "app_load",
        "gunicorn",
        r"App failed to load\.",
        "the WSGI module path is wrong (exit code 4)",
        "app_import_error",
    ),
    _e(
        "worker_timeout",
        "gunicorn",
        r"\[CRITICAL\] WORKER TIMEOUT \(pid:(?P<pid>\d+)\)",
        "a request ran longer than --timeout; the worker was killed",
        "worker_timeout",
    ),
    _e(
        "worker_oom",
        "gunicorn",
        r"Worker \(pid:(?P<pid>\d+)\) was sent SIGKILL! Perhaps out of memory",
        "a worker was killed by the kernel (out of memory)",
    ),
    _e(
        "gunicorn_error",
        "gunicorn",
        r"(?:^|\]: )Error: (?P<msg>.+)",
        "gunicorn refused to start: a bad option, config file or worker class",
    ),
    _e(
        "bind_in_use",
        "gunicorn",
        r"Connection in use: (?P<addr>.+)",
        "the bind target is held by another process",
    ),
    _e(
        "bind_failed",
        "gunicorn",
        r"Can't connect to (?P<addr>.+)",
        "gunicorn gave up binding its address",
    ),
    # Django
    _e(
        "no_such_table",
        "django",
        r"OperationalError: no such (table|column): (?P<what>\S+)",
        "migrations not applied",
        "migrations_pending",
    ),
    _e(
        "readonly_db",
        "django",
        r"OperationalError: attempt to write a readonly database",
        "the sqlite file or its directory is not writable by the app user",
        "database_unwritable",
    ),
    _e(
        "improperly_configured",
        "django",
        r"django\.core\.exceptions\.ImproperlyConfigured|"
        r"ImproperlyConfigured: ",
        "settings broken or an environment variable missing",
        "settings_error",
    ),
    _e(
        "unapplied",
        "django",
        r"You have (?P<n>\d+) unapplied migration",
        "pending migrations",
        "migrations_pending",
    ),
    # systemd
    _e(
        "start_limit",
        "systemd",
        r"Start request repeated too quickly|"
        r"Failed with result 'start-limit-hit'",
        "the crash loop gave up (start-limit-hit)",
        "gunicorn_start_limit_hit",
    ),
    _e(
        "exit_code",
        "systemd",
        r"Main process exited, code=exited, status=(?P<status>\S+)",
        "the gunicorn master exited",
    ),
    _e(
        "exec_failed",
        "systemd",
        r"Failed at step (?P<step>[A-Z]+) spawning (?P<path>\S+)|"
        r"status=(?P<code>20[03]|21[67])/(?P<name>[A-Z]+)",
        "systemd could not start the command the unit names",
        "unit_file_invalid",
    ),
    _e(
        "auto_restart",
        "systemd",
        r"Scheduled restart job, restart counter is at (?P<n>\d+)",
        "systemd restarts gunicorn again and again",
        "gunicorn_crash_loop",
    ),
]


@dataclass(frozen=True)
class Match:
    entry: Entry
    line: str
    groups: dict

    def to_json(self) -> dict:
        return {
            "signature": self.entry.key,
            "source": self.entry.source,
            "meaning": self.entry.meaning,
            "line": self.line,
        }


def match_line(line: str, sources: tuple[str, ...] | None = None) -> Match | None:
    """The first catalogue entry a log line shows, if any."""
    for entry in ENTRIES:
        if sources and entry.source not in sources:
            continue
        m = entry.pattern.search(line)
        if m:
            return Match(entry, line, {k: v for k, v in m.groupdict().items() if v})
    return None


def match_lines(lines: list[str], sources: tuple[str, ...] | None = None) -> list[Match]:
    return [m for m in (match_line(ln, sources) for ln in lines) if m]
