"""The catalogue of failures (tasks/catalogue.py) reads the exact texts of shared/FAILURES.md."""

import pytest

from tasks import catalogue

# The exact texts of shared/FAILURES.md, each with the signature it must be read as.
FAILURES = [
    (
        "2026/11/27 14:33:59 [crit] 38#38: *7 connect() to unix:/home/cynow/cynow/gunicorn.sock "
        "failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1",
        "nginx_enoent",
    ),
    (
        "[crit] 1#1: *1 connect() to unix:/home/cynow/cynow/gunicorn.sock failed "
        "(13: Permission denied) while connecting to upstream",
        "nginx_eacces",
    ),
    (
        "[error] 1#1: *1 connect() to unix:/home/cynow/cynow/gunicorn.sock failed "
        "(111: Connection refused) while connecting to upstream",
        "nginx_refused",
    ),
    (
        "[error] connect() to unix:/x.sock failed (11: Resource temporarily unavailable)",
        "nginx_backlog",
    ),
    (
        "upstream prematurely closed connection while reading response header from upstream",
        "nginx_premature",
    ),
    (
        "upstream timed out (110: Connection timed out) while reading response header from "
        "upstream",
        "nginx_timeout",
    ),
    ("no live upstreams while connecting to upstream", "nginx_no_live"),
    ("ModuleNotFoundError: No module named 'orders.urls'", "module_not_found"),
    ("ImportError: cannot import name 'x' from 'orders'", "import_error"),
    ("[ERROR] Worker failed to boot.", "worker_boot"),
    ("App failed to load.", "app_load"),
    ("[2026-11-27 14:00:00 +0000] [30] [CRITICAL] WORKER TIMEOUT (pid:41)", "worker_timeout"),
    ("Worker (pid:41) was sent SIGKILL! Perhaps out of memory?", "worker_oom"),
    ("Connection in use: ('0.0.0.0', 8000)", "bind_in_use"),
    ("django.db.utils.OperationalError: no such table: orders_order", "no_such_table"),
    ("django.db.utils.OperationalError: attempt to write a readonly database", "readonly_db"),
    ("django.core.exceptions.ImproperlyConfigured: Set the SECRET_KEY", "improperly_configured"),
    ("You have 2 unapplied migration(s). Your project may not work", "unapplied"),
    ("gunicorn.service: Start request repeated too quickly.", "start_limit"),
    ("gunicorn.service: Failed with result 'start-limit-hit'.", "start_limit"),
]


@pytest.mark.parametrize("line, key", FAILURES)
def test_catalogue_reads_every_failure_text(line, key):
    m = catalogue.match_line(line)
    assert m and m.entry.key == key


def test_catalogue_ignores_ordinary_lines():
    assert catalogue.match_line("[INFO] Booting worker with pid: 41") is None
    assert catalogue.match_line("GET /cynow/ HTTP/1.1 200") is None
