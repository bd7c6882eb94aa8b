"""gunicorn on TCP (`--bind 127.0.0.1:8000`, nginx `proxy_pass http://127.0.0.1:8000`): the
`socket` setting takes HOST:PORT, and every place a unix socket works works with it."""

from __future__ import annotations

import subprocess

import pytest

from tasks import restart
from tasks.checks import http, nginx, permissions, socket, unit_file
from tasks.checks.base import Facts
from tasks.errors import ConfigError
from tasks.settings import resolve
from tasks.shell import Part


@pytest.fixture
def s():
    return resolve({"socket": "127.0.0.1:8000"})


def test_the_setting_takes_a_path_or_host_port_and_nothing_else():
    assert resolve({"socket": "127.0.0.1:8000"}).tcp == "127.0.0.1:8000"
    assert resolve({"socket": "[::1]:8001"}).tcp == "[::1]:8001"
    assert resolve({"socket": "localhost:8000"}).tcp == "localhost:8000"
    assert resolve({"socket": "/run/g.sock"}).tcp == ""
    for bad in ("8000", "example.com:80", "127.0.0.1:0", "127.0.0.1:70000", "run/g.sock"):
        with pytest.raises(ConfigError, match="cynow.socket must be a unix socket's absolute path"):
            resolve({"socket": bad})


def test_requests_go_straight_to_gunicorns_port(s):
    script = http.http_script(s.socket, ["/cynow/"], 5)
    line = next(ln for ln in script.splitlines() if ln.startswith("ask socket"))
    assert line == "ask socket /cynow/ http://127.0.0.1:8000 -H 'Host: localhost'"
    assert "--unix-socket" not in script
    subprocess.run(["sh", "-n", "-c", script], check=True)


def parts(**texts):
    return {k: Part(v, 0) for k, v in texts.items()}


SS = (
    'LISTEN 0 2048 127.0.0.1:8000 0.0.0.0:* users:(("gunicorn",pid=41,fd=5),'
    '("gunicorn",pid=40,fd=5))\n'
)


def test_the_listener_is_whoever_holds_the_port(s):
    cmd = socket.listener_command(s)
    assert "then ss -tlnpH; else" in cmd and "stat " not in cmd and "namei" not in cmd
    li = socket.parse_listener(parts(tcp=SS), s)
    checks = socket.evaluate(Facts(listener=li), s)
    assert [c.status for c in checks] == ["ok", "skipped"]
    assert checks[0].summary == "listened by gunicorn (pid 41)"
    down = socket.parse_listener(parts(tcp=""), s)
    (c, _port) = socket.evaluate(Facts(listener=down), s)
    assert c.status == "fail" and "nothing listens on 127.0.0.1:8000" in c.summary


def test_another_address_on_the_same_port_is_not_the_listener(s):
    other = SS.replace("127.0.0.1:8000", "127.0.0.5:8000")
    assert not socket.parse_listener(parts(tcp=other), s)["listening"]


def test_no_socket_file_to_reach_or_to_remove(s):
    (c,) = [x for x in permissions.evaluate(Facts(), s) if x.id == "permissions.socket"]
    assert c.status == "skipped" and "TCP 127.0.0.1:8000" in c.summary
    assert "test -w" not in permissions.permissions_command(s)
    assert restart.remove_stale_socket(s.socket) == "true"


def test_the_units_tcp_bind_and_nginxs_tcp_upstream_agree(s):
    binds = ["127.0.0.1:8000"]
    assert unit_file.bind_of(binds) == "127.0.0.1:8000"
    assert unit_file.bind_of(["unix:/a.sock", "127.0.0.1:8000"]) == "/a.sock"
    assert nginx.proxy_socket("proxy_pass http://127.0.0.1:8000;") == (
        "127.0.0.1:8000",
        "http://127.0.0.1:8000",
    )
    assert nginx.proxy_socket("proxy_pass http://backend;") == (None, "http://backend")
    unit = {
        "LoadState": "loaded",
        "ExecStart": "{ path=/v ; argv[]=/v/bin/gunicorn --bind 127.0.0.1:8000 "
        "config.wsgi:application ; ignore_errors=no }",
    }
    facts = Facts(units={s.gunicorn_unit: unit})
    c = nginx.proxy_target(
        nginx.Check("nginx.proxy", 4, "p"), "proxy_pass http://127.0.0.1:8000;", facts, s
    )
    assert c.status == "ok" and c.summary == "proxy_pass 127.0.0.1:8000 = gunicorn's --bind"
    c = nginx.proxy_target(
        nginx.Check("nginx.proxy", 4, "p"), "proxy_pass http://127.0.0.1:9000;", facts, s
    )
    assert c.status == "fail" and c.findings[0].cause == "socket_path_mismatch"
    assert "proxy_pass http://127.0.0.1:8000; in" in c.findings[0].fix[0]
