import subprocess

from tasks import shell
from tasks.checks import http


def test_http_replies():
    assert http.parse_reply("200 0.004") == {"code": 200, "seconds": 0.004, "error": ""}
    r = http.parse_reply("curl: (7) Couldn't connect to server 000 0.000101 ")
    assert r["code"] == 0 and r["error"] == "Couldn't connect to server"


def manual_run_with(tmp_path, gunicorn: str) -> dict:
    """The by-hand run's script, run here with a fake gunicorn; its parsed report."""
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    fake = venv / "gunicorn"
    fake.write_text(gunicorn)
    fake.chmod(0o755)
    script = http.manual_run(str(tmp_path), str(tmp_path / "venv"), "x:y", "/")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
    return http.parse_manual(shell.read_batch(out))


def test_manual_run_report_cannot_be_forged_by_the_apps_log(tmp_path):
    # The by-hand gunicorn's log is the app's text: a line `manual_http=200` in it stays log.
    m = manual_run_with(tmp_path, "#!/bin/sh\necho manual_http=200\necho manual_exit=0\nexit 3\n")
    assert m["http"] == 0 and m["exit"] == "3"
    assert "manual_http=200" in m["log"]


def test_manual_run_does_not_read_the_checkouts_gunicorn_conf(tmp_path):
    # gunicorn reads ./gunicorn.conf.py unless told otherwise; `daemon = True` there would let
    # the by-hand run escape its timeout. It is given an empty config of its own.
    (tmp_path / "gunicorn.conf.py").write_text("daemon = True\n")
    m = manual_run_with(
        tmp_path, '#!/bin/sh\n[ "$1" = --config ] && printf "config=[%s]\\n" "$(cat "$2")"\n'
    )
    assert "config=[]" in m["log"]


def test_health_host_is_the_host_both_requests_ask_with(tmp_path):
    # A fake curl that writes down its arguments, and an ss that shows nginx on :80.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(
        f'#!/bin/sh\nfor a in "$@"; do printf "%s|" "$a"; done >> {tmp_path}/calls; '
        f"echo >> {tmp_path}/calls; printf '200 0.01'\n"
    )
    (bin_dir / "ss").write_text(
        "#!/bin/sh\necho 'LISTEN 0 511 10.0.0.5:80 0.0.0.0:* users:((\"nginx\",pid=9,fd=6))'\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    script = http.http_script("/run/g.sock", ["/cynow/"], 5, "cynow.example.com")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env).stdout
    assert "socket /cynow/ 200 0.01" in out and "nginx /cynow/ 200 0.01" in out
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 2
    assert all("|-H|Host: cynow.example.com|" in c for c in calls), calls
    assert "--unix-socket|/run/g.sock|http://localhost/cynow/|" in calls[0]
    assert calls[1].endswith("|http://10.0.0.5:80/cynow/|")
    # Without it: curl's own Host (localhost through the socket, the address through nginx).
    assert "Host:" not in http.http_script("/run/g.sock", ["/cynow/"], 5)


def test_a_400_names_the_likely_host_check():
    assert http.describe({"code": 400, "seconds": 0.01}).endswith(http.BAD_HOST)
    assert http.describe({"code": 404, "seconds": 0.01}) == "404 in 0.01s"


def test_a_400_with_a_narrow_allowed_hosts_names_the_health_host_to_set():
    from tasks.checks.base import Facts

    facts = Facts()
    facts.http = {"nginx": {"/cynow/": {"code": 400, "seconds": 0.01, "error": ""}}}
    facts.probe = {"allowed_hosts": [".cynow.example.com", "10.78.0.1"]}
    [c] = http._via(facts, "nginx", http.Check("http.nginx", 7, "t"))
    assert c.evidence[-1] == (
        "Django's ALLOWED_HOSTS allows cynow.example.com: set health_host: cynow.example.com"
    )
    facts.probe = {"allowed_hosts": ["*"]}
    [c] = http._via(facts, "nginx", http.Check("http.nginx", 7, "t"))
    assert not any("ALLOWED_HOSTS allows" in e for e in c.evidence)


def test_the_by_hand_run_starts_the_app_the_unit_serves(s):
    from tasks.checks.base import Facts

    exec_start = (
        "{ path=/home/cynow/venv/bin/gunicorn ; argv[]=/home/cynow/venv/bin/gunicorn --bind "
        "unix:/run/g.sock config.wsgi:missing ; ignore_errors=no ; start_time=[n/a] }"
    )
    facts = Facts()
    facts.units = {s.gunicorn_unit: {"LoadState": "loaded", "ActiveState": "failed"}}
    facts.http = {"socket": {}}
    # No app on the command line: the configured one (the guide's), as before.
    facts.units[s.gunicorn_unit]["ExecStart"] = exec_start.replace(" config.wsgi:missing", "")
    assert http.served_app(facts, s) == s.wsgi
    # gunicorn's config file names it: that one.
    facts.gunicorn_config = {"exists": True, "path": "/x/g.py", "values": {"wsgi_app": "a.w:b"}}
    assert http.served_app(facts, s) == "a.w:b"
    facts.gunicorn_config = {}
    facts.units[s.gunicorn_unit]["ExecStart"] = exec_start
    command = http.manual_command(s, facts)
    assert shell.q("config.wsgi:missing") in command and s.wsgi not in command
