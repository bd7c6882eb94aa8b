import subprocess

from tasks import shell
from tasks.checks import http


def test_http_replies():
    assert http.parse_reply("200 0.004") == {
        "code": 200,
        "seconds": 0.004,
        "error": "",
        "location": "",
        "hops": 0,
    }
    r = http.parse_reply(" 302 0.010 loc=http://x.example/a hops=0")
    assert (r["code"], r["location"], r["hops"]) == (302, "http://x.example/a", 0)
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


def ask_for_real(tmp_path, urls, host="cynow.lab", scheme="http"):
    """http_script run in a real shell with the real curl against httpd's unix socket (an ss
    that shows no nginx: the nginx half says so)."""
    from tests.unit.checks.httpd import serving

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ss").write_text("#!/bin/sh\ntrue\n")
    (bin_dir / "ss").chmod(0o755)
    sock = str(tmp_path / "g.sock")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    with serving(sock) as seen:
        script = http.http_script(sock, urls, 5, host, scheme)
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env)
    return http.parse_http(out.stdout)["socket"], seen


def test_a_redirect_is_followed_within_the_site_only(tmp_path):
    urls = ["/ok/", "/slash", "/abs", "/away", "/https", "/loop", "/broken"]
    replies, seen = ask_for_real(tmp_path, urls)
    got = {u: (r["code"], r["hops"]) for u, r in replies.items()}
    assert got == {
        "/ok/": (200, 0),
        "/slash": (200, 1),  # relative: the same site
        "/abs": (200, 1),  # absolute to the site's own name: the same site
        "/away": (302, 0),  # another host: never followed
        "/https": (301, 0),  # another scheme: another site
        "/loop": (302, http.MAX_HOPS),
        "/broken": (500, 0),
    }
    assert [http.ok_code(replies[u]["code"]) for u in urls] == [True, True, True] + [False] * 4
    assert replies["/away"]["location"] == "http://other.example/ok/"
    assert "another site: not followed" in http.describe(replies["/away"])
    assert f"after {http.MAX_HOPS} redirects" in http.describe(replies["/loop"])
    assert "after 1 redirect(s)" in http.describe(replies["/slash"])
    # Every request, hops included, asked as the browser names the site.
    assert {h for _, h, _ in seen} == {"cynow.lab"}
    assert not any(p.startswith("other") for p, _, _ in seen)


def test_an_https_site_is_asked_on_443_with_curl_k_and_its_proxy_header(tmp_path):
    script = http.http_script("/run/g.sock", ["/cynow/"], 5, "cynow.lab", "https")
    assert "grep -E ':443$'" in script
    assert 'ask nginx /cynow/ "https://$addr" -k ' in script
    replies, seen = ask_for_real(tmp_path, ["/https"], scheme="https")
    # Behind HTTPS, https://cynow.lab is the site: its redirect is followed.
    assert (replies["/https"]["code"], replies["/https"]["hops"]) == (200, 1)
    assert seen[0][2] == "https"  # X-Forwarded-Proto, as nginx would set it
    plain = http.http_script("/run/g.sock", ["/cynow/"], 5)
    assert "-k" not in plain.split() and "X-Forwarded-Proto" not in plain
    assert "grep -E ':80$'" in plain


def test_the_by_hand_run_counts_a_redirect_as_django_answering():
    assert http.manual_ok({"http": 302}) and not http.ok_code(302)
    assert not http.manual_ok({"http": 500}) and not http.manual_ok({"http": 0})


def test_without_curl_the_venvs_python_asks_as_curl_would(tmp_path, s):
    """tasks/remote/http_get.py for real, against the same server: in a shell that has no curl,
    http_script hands nginx's address to it on stdin; its replies read as curl's."""
    import json
    import sys

    from tasks import programs
    from tests.unit.checks.httpd import serving

    sock = str(tmp_path / "g.sock")
    urls = ["/ok/", "/slash", "/abs", "/away", "/loop", "/broken"]
    spec = {
        "socket": sock,
        "urls": urls,
        "timeout": 5,
        "host": "cynow.lab",
        "scheme": "http",
        "sites": http.site_prefixes("http", "cynow.lab"),
        "hops": http.MAX_HOPS,
    }
    program = shell.join(sys.executable, "-I", "-B", "-c", programs.source("http_get"))
    bin_dir = tmp_path / "bin"  # python3 for the listing, an ss that shows no nginx, no curl
    bin_dir.mkdir()
    (bin_dir / "ss").write_text("#!/bin/sh\ntrue\n")
    (bin_dir / "ss").chmod(0o755)
    for tool in ("awk", "grep", "head", "cat"):
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    script = http.http_script(
        sock, urls, 5, "cynow.lab", without_curl=f"{program} {shell.q(json.dumps(spec))}"
    )
    with serving(sock) as seen:
        out = subprocess.run(
            ["/bin/sh", "-c", script], capture_output=True, text=True, env={"PATH": str(bin_dir)}
        )
    assert "curl" not in [p.name for p in bin_dir.iterdir()]
    replies = http.parse_http(out.stdout)
    got = {u: (r["code"], r["hops"]) for u, r in replies["socket"].items()}
    assert got == {
        "/ok/": (200, 0),
        "/slash": (200, 1),
        "/abs": (200, 1),
        "/away": (302, 0),
        "/loop": (302, http.MAX_HOPS),
        "/broken": (500, 0),
    }, out.stdout + out.stderr
    assert replies["socket"]["/away"]["location"] == "http://other.example/ok/"
    assert {h for _, h, _ in seen} == {"cynow.lab"}
    assert replies["nginx"]["/ok/"]["error"] == "nginx listens on no TCP port"
    # Nothing listens: the error, not an answer.
    r = subprocess.run(
        ["/bin/sh", "-c", f"echo | {program} {shell.q(json.dumps(spec))}"],
        capture_output=True,
        text=True,
    )
    reply = http.parse_http(r.stdout)["socket"]["/ok/"]
    assert reply["code"] == 0 and "ConnectionRefusedError" in reply["error"]
    # On the server it is the venv's python, as the service (tasks/service.py), never root.
    asked = http.python_ask(s, "http")
    assert asked.startswith("python3 -I -B -c ") and shell.q(s.python) in asked
    assert " lenient " in asked
