from __future__ import annotations

import subprocess
import time

import pytest

from tasks.steps.health import Poll, app_error, health, health_script, judge, wait_gone


def poll(**kw) -> Poll:
    ok = {"code": 200, "seconds": 0.01, "error": ""}
    replies = {"socket": {"/a": ok}, "nginx": {"/a": ok}}
    return Poll(**{"replies": replies, "pids": [30, 50], "main_pid": 30, "tracebacks": 0, **kw})


def test_judge():
    j = judge
    assert j(poll(), ["/a"], [41], 30) == ("ok", "/a 200 in 0.01s")
    assert j(poll(pids=[30, 41]), ["/a"], [41], 30) == (
        "waiting",
        "old workers still running: [41]",
    )
    assert j(poll(tracebacks=2), ["/a"], [41], 30) == (
        "failed",
        "2 traceback(s) in the journal since the reload",
    )
    assert j(poll(tracebacks=1, errors=("ValueError: v",)), ["/a"], [41], 30)[1].endswith(
        "since the reload: ValueError: v"
    )
    # Not asked, or a master that was not recorded (full restart): not judged.
    assert j(poll(tracebacks=None, main_pid=None), ["/a"], [], 0)[0] == "ok"
    assert j(poll(main_pid=0), ["/a"], [41], 30)[0] == "failed"
    assert j(poll(main_pid=0), ["/a"], [], 0)[0] == "ok"
    # A URL without an answer is not healthy, through either way.
    state, detail = j(poll(), ["/a", "/b"], [], 0)
    assert state == "waiting" and detail == "socket /b: no answer; nginx /b: no answer"
    err = {"code": 500, "seconds": 0.01, "error": ""}
    bad = poll(replies={"socket": {"/a": err}, "nginx": {"/a": err}})
    assert j(bad, ["/a"], [], 0) == ("waiting", "socket /a: 500 in 0.01s; nginx /a: 500 in 0.01s")
    assert app_error(bad)
    gateway = {"code": 502, "seconds": 0.01, "error": ""}
    assert not app_error(poll(replies={"socket": {}, "nginx": {"/a": gateway}}))


def test_health_is_one_round_trip_when_healthy(server, fakes):
    ctx, remote, dev, app = server
    fakes("cg/cgroup.procs", "30\n50\n")  # the new workers
    fakes("journal", "GET /cynow/ 200\n")
    ok, detail = health(remote, 5, [41, 42], 30, "s=abc;i=1'2")
    assert ok and detail == "/cynow/ 200 in 0.01s, /cynow/orders/ 200 in 0.01s"
    assert len(remote.sent) == 1
    assert "journalctl --sync" in fakes.calls()
    assert (
        "journalctl --no-pager -o cat -u gunicorn.service --after-cursor=s=abc;i=1'2"
        in fakes.calls()
    )


def test_health_fails_on_a_traceback_in_the_journal(server, fakes):
    ctx, remote, dev, app = server
    fakes(
        "journal",
        "Internal Server Error: /cynow/\nTraceback (most recent call last):\n"
        '  File "/a.py", line 1, in f\n    x()\nNameError: x\n\n'
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n  File \"/b.py\"\nKeyError: 'orders'\n",
    )
    assert health(remote, 5, [], 0, "c") == (
        False,
        "2 traceback(s) in the journal since the reload: KeyError: 'orders'",
    )
    # Without a cursor (undoing: the new code's last requests may have logged) no journal read.
    before = len(fakes.calls())
    assert health(remote, 5)[0]
    assert not [c for c in fakes.calls()[before:] if "journalctl" in c]


def test_health_waits_for_the_old_workers_on_the_server(server, fakes):
    ctx, remote, dev, app = server
    t0 = time.monotonic()
    ok, detail = health(remote, 0.4, [41, 42], 30)
    assert not ok and detail == "old workers still running: [41, 42]"
    assert time.monotonic() - t0 >= 0.4
    assert len(remote.sent) <= 2  # the waiting happened inside the poll, not in round trips
    # Old workers that leave while it waits: healthy as soon as they are gone.
    procs = fakes.dir / "cg" / "cgroup.procs"
    subprocess.Popen(["sh", "-c", f"sleep 0.3; printf '30\\n50\\n' > '{procs}'"])
    remote.sent.clear()
    t0 = time.monotonic()
    ok, detail = health(remote, 5, [41, 42], 30)
    assert ok and 0.3 <= time.monotonic() - t0 < 2 and len(remote.sent) == 1


def test_health_stops_at_a_second_500_and_when_the_master_is_gone(server, fakes):
    ctx, remote, dev, app = server
    fakes("code", "500")
    ok, detail = health(remote, 10)
    assert not ok and "500" in detail and len(remote.sent) == 2
    fakes("code", "000")
    fakes("main", "0\n")  # gunicorn halted: no master, no workers
    fakes("cg/cgroup.procs", "")
    remote.sent.clear()
    ok, detail = health(remote, 10, [41], 30)
    assert not ok and detail.startswith("gunicorn's master (pid 30) exited after the reload")
    assert len(remote.sent) == 1


def test_health_gives_booting_workers_the_whole_timeout(server, fakes):
    ctx, remote, dev, app = server
    fakes("code", "502")
    t0 = time.monotonic()
    ok, detail = health(remote, 0.5)
    assert not ok and "502" in detail and time.monotonic() - t0 >= 0.5
    assert len(remote.sent) >= 3


# A pip that keeps its venv's packages in a file: `install -r F` sets each NAME==VERSION line
# of F (a line `fail` makes it fail), `uninstall` drops names, `freeze` lists them.


# What gunicorn 23.0.0's master printed in a lab deploy (CI, stop 19) when a replaced worker
# exited while the master was writing a line: Python logging's report of its own error.
LOGGING_RACE = """[2026-12-03 16:02:11 +0000] [35] [INFO] Booting worker with pid: 412
--- Logging error ---
Traceback (most recent call last):
  File "/usr/lib/python3.11/logging/__init__.py", line 1113, in emit
    stream.write(msg + self.terminator)
RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/venv/lib/python3.11/site-packages/gunicorn/arbiter.py", line 241, in handle_chld
    self.reap_workers()
  File "/usr/lib/python3.11/logging/__init__.py", line 1113, in emit
    stream.write(msg + self.terminator)
RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>
Call stack:
  File "/home/cynow/cynow/venv/bin/gunicorn", line 8, in <module>
    sys.exit(run())
Message: 'Worker (pid:%s) was sent %s!'
Arguments: (388, 'SIGTERM')
"""


def test_gunicorns_own_logging_race_is_not_the_releases_traceback(server, fakes):
    ctx, remote, dev, app = server
    fakes("journal", LOGGING_RACE)
    ok, detail = health(remote, 5, [], 0, "c")
    assert ok, detail
    assert "logged 2 traceback(s) of its own logging race" in detail
    assert "benoitc/gunicorn#2816" in detail
    # The race beside an app's traceback: the app's is counted and named, the race is not.
    fakes(
        "journal",
        LOGGING_RACE + 'Traceback (most recent call last):\n  File "/a.py"\nNameError: x\n',
    )
    assert health(remote, 5, [], 0, "c") == (
        False,
        "1 traceback(s) in the journal since the reload: NameError: x",
    )


def test_health_script_quotes_what_it_interpolates():
    s = health_script("/s", ["/"], 5, "g.service", journal_after="s=1;i='2")
    assert "'--after-cursor=s=1;i='\"'\"'2'" in s
    with pytest.raises(ValueError):
        wait_gone("g.service", ["41; reboot"], 1)
