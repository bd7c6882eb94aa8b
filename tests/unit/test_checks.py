"""Parsers and rules of the diagnose checks, on real captured output and the catalogue's text."""

from pathlib import Path

import pytest

from tasks import catalogue, checks_commands
from tasks.checks import http, logs, nginx, unit
from tasks.checks.services import gave_up, state_line

DATA = Path(__file__).parent / "data" / "diagnose"

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


def test_nginx_log_window_uses_the_servers_clock():
    out = (
        "2026/11/27 15:00:00\n--log--\n"
        "2026/11/27 14:30:00 [crit] old line\n"
        "2026/11/27 14:50:00 [crit] recent line\n"
        "continuation of the recent line\n"
    )
    assert logs.parse_nginx_log(out, 15) == [
        "2026/11/27 14:50:00 [crit] recent line",
        "continuation of the recent line",
    ]


def test_django_log_window_keeps_tracebacks_with_their_record():
    out = (
        "2026-11-27 15:00:00\n--log--\n2026-11-27 14:00:00,1 ERROR old\nTraceback old\n"
        "2026-11-27 14:59:00,5 ERROR django.request: Internal Server Error\nTraceback new\n"
    )
    assert logs.parse_django_log(out, 15)[-1] == "Traceback new"
    assert "Traceback old" not in logs.parse_django_log(out, 15)


def test_exec_start_and_gunicorn_arguments():
    props = (DATA / "healthy_lab" / "units.out").read_text()
    units, cat, _ = unit.parse_units(props)
    argv = unit.exec_argv(units["gunicorn.service"]["ExecStart"])
    assert argv[0] == "/home/cynow/cynow/venv/bin/gunicorn"
    args = unit.gunicorn_args(argv)
    assert args["binds"] == ["unix:/home/cynow/cynow/gunicorn.sock"]
    assert args["app"] == "config.wsgi:application"
    assert "ExecStart=/home/cynow/cynow/venv/bin/gunicorn" in cat


@pytest.mark.parametrize(
    "argv, binds, app",
    [
        (["g", "-w", "3", "-b", "unix:/a.sock", "cfg.wsgi:app"], ["unix:/a.sock"], "cfg.wsgi:app"),
        (["g", "--bind=0.0.0.0:8000", "--timeout", "60", "m:a"], ["0.0.0.0:8000"], "m:a"),
        (["g", "--chdir", "/srv", "-k", "gevent", "x.wsgi"], [], "x.wsgi"),
    ],
)
def test_gunicorn_args(argv, binds, app):
    assert unit.gunicorn_args(argv) == {"binary": "g", "binds": binds, "app": app}


def test_nginx_location_proxy_and_headers():
    n = nginx.parse_nginx((DATA / "healthy_lab" / "nginx.out").read_text())
    assert n["ok"] and "/etc/nginx/sites-enabled/cynow" in n["enabled"]
    block = nginx.location_block(n["dump"], "/cynow/")
    assert nginx.proxy_socket(block)[0] == "/home/cynow/cynow/gunicorn.sock"
    assert set(nginx.GUIDE_HEADERS) <= set(nginx.headers(block))
    # /cynow/static/ is a different location, not mistaken for /cynow/
    assert "alias" not in block


def test_nginx_emerg_lines_are_the_test_result():
    n = nginx.parse_nginx((DATA / "nginx_config_invalid" / "nginx.out").read_text())
    assert not n["ok"]
    assert any("[emerg]" in ln and "sites-enabled/cynow" in ln for ln in n["test"])


def test_http_replies():
    assert http.parse_reply("200 0.004") == {"code": 200, "seconds": 0.004, "error": ""}
    r = http.parse_reply("curl: (7) Couldn't connect to server 000 0.000101 ")
    assert r["code"] == 0 and r["error"] == "Couldn't connect to server"


def test_state_line_like_systemctl_status():
    assert (
        state_line(
            {
                "ActiveState": "failed",
                "SubState": "failed",
                "Result": "exit-code",
                "ExecMainStatus": "3",
            }
        )
        == "Active: failed (Result: exit-code), status=3"
    )
    assert state_line({"ActiveState": "inactive", "SubState": "dead"}) == "Active: inactive (dead)"


def test_gave_up_only_when_it_is_systemds_last_word():
    j = ["x systemd[1]: gunicorn.service: Start request repeated too quickly."]
    assert gave_up(j)
    assert not gave_up(j + ["x systemd[1]: Started gunicorn.service - gunicorn daemon."])


def test_parents_of_socket():
    assert checks_commands.parents("/home/cynow/cynow/gunicorn.sock") == [
        "/home",
        "/home/cynow",
        "/home/cynow/cynow",
    ]


def test_journal_command_takes_the_end_of_the_window():
    cmd = checks_commands.journal("gunicorn.service", "gunicorn.socket", 15)
    assert cmd.endswith("--since '15 min ago' | tail -n 400")
    assert " -n " not in cmd.split("|")[0]
