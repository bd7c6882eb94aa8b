"""`fab status`: the processes read from ps."""

from tasks import status


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
