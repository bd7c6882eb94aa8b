from tasks import logs, status


def test_cut_keeps_window_and_continuations():
    lines = [
        "2026-11-27 14:00:00,1 ERROR old",
        "Traceback old",
        "2026-11-27 15:00:00,1 ERROR new",
        "Traceback new",
    ]
    assert logs.cut(lines, logs._STAMP["django"], "2026-11-27 14:30:00") == lines[2:]
    assert logs.cut(lines, logs._STAMP["django"], None) == lines


def test_select_known_and_last_n():
    lines = ["ordinary", "ModuleNotFoundError: No module named 'x'", "Worker failed to boot."]
    assert [e["signature"] for e in logs.select(lines, True, 50)] == [
        "module_not_found",
        "worker_boot",
    ]
    assert [e["line"] for e in logs.select(lines, False, 1)] == ["Worker failed to boot."]


def test_parse_processes_real_ps_output():
    text = (
        " 30  1 cynow 22528 00:31 /home/cynow/cynow/venv/bin/python3 /home/cynow/cynow/venv/"
        "bin/gunicorn --workers 3 --bind unix:/home/cynow/cynow/gunicorn.sock "
        "config.wsgi:application\n"
        " 41 30 cynow 39936 00:31 /home/cynow/cynow/venv/bin/python3 gunicorn\n"
    )
    procs = status.parse_processes(text)
    assert [p["pid"] for p in procs] == [30, 41] and procs[1]["ppid"] == 30
    assert procs[0]["args"].endswith("config.wsgi:application") and procs[0]["rss_kb"] == 22528


def test_boot_blockers():
    from tasks.reboot import boot_blockers

    assert (
        boot_blockers({"gunicorn.service": {"LoadState": "loaded", "UnitFileState": "enabled"}})
        == []
    )
    (msg,) = boot_blockers(
        {"gunicorn.service": {"LoadState": "loaded", "UnitFileState": "disabled"}}
    )
    assert msg.startswith("gunicorn.service is disabled") and "systemctl enable" in msg
    assert boot_blockers({"nginx.service": {"LoadState": "not-found"}}) == [
        "nginx.service is not installed"
    ]
