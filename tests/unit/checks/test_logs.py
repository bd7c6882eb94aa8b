from tasks.checks import logs
from tests.unit.checks.conftest import parts


def test_nginx_log_window_uses_the_servers_clock(s):
    out = parts(
        clock="2026/11/27 15:00:00\n",
        log="2026/11/27 14:30:00 [crit] old line\n"
        "2026/11/27 14:50:00 [crit] recent line\n"
        "continuation of the recent line\n",
    )
    assert logs.parse_nginx_log(out, s) == [
        "2026/11/27 14:50:00 [crit] recent line",
        "continuation of the recent line",
    ]


def test_django_log_window_keeps_tracebacks_with_their_record(s):
    out = parts(
        clock="2026-11-27 15:00:00\n",
        log="2026-11-27 14:00:00,1 ERROR old\nTraceback old\n"
        "2026-11-27 14:59:00,5 ERROR django.request: Internal Server Error\nTraceback new\n",
    )
    assert logs.parse_django_log(out, s)[-1] == "Traceback new"
    assert "Traceback old" not in logs.parse_django_log(out, s)


def test_a_log_line_that_copies_a_marker_is_a_log_line(s):
    # Before the frames carried a nonce, a line `--log--` written by the app moved the cut.
    out = parts(clock="2026-11-27 15:00:00\n", log="--log--\n2026-11-27 14:59:00,5 ERROR x\n")
    assert logs.parse_django_log(out, s) == ["2026-11-27 14:59:00,5 ERROR x"]


def test_journal_command_takes_the_end_of_the_window(s):
    cmd = logs.journal_command(s)
    assert cmd.endswith("--since '15 min ago' | tail -n 400")
    assert " -n " not in cmd.split("|")[0]
