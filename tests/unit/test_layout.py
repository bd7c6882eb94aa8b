"""tasks/layout.py: the layout the server says it has, on real captured facts and on the
layouts the guide's replica does not show (socket activation, a TCP bind, a moved checkout)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tasks import layout
from tasks.checks import layout as layout_check
from tasks.checks import nginx, unit_file
from tasks.checks.base import Facts
from tasks.remote.gunicorn_argv import NOT_LITERAL
from tasks.settings import resolve
from tests.unit.test_diagnose_data import load


def by_key(values):
    return {v.key: v for v in values}


def test_the_guides_replica_agrees_with_the_defaults_everywhere():
    facts, s = load("healthy_lab")
    v = by_key(layout.discover(facts, s))
    assert v["app_user"].value == "cynow" and v["app_user"].source == "unit"
    assert v["socket"].value == "/home/cynow/cynow/gunicorn.sock"
    assert v["nginx_upstream"].value == "/home/cynow/cynow/gunicorn.sock"
    assert v["venv"].value == "/home/cynow/cynow/venv" and v["wsgi"].value == s.wsgi
    assert v["static_root"].source == "django" and v["database"].value.startswith("sqlite3 ")
    assert v["django_log"].value == "/var/log/cynow/django.log"
    assert layout.disagreements(list(v.values())) == []
    (c,) = layout_check.evaluate(facts, s)
    assert c.status == "ok" and "settings agree" in c.summary


def test_nginx_proxying_elsewhere_is_named_with_both_values():
    facts, s = load("socket_path_mismatch")
    (c,) = layout_check.evaluate(facts, s)
    assert c.status == "warn" and c.findings == []  # an expectation, not a cause
    assert c.evidence == [
        "nginx_upstream: expected /home/cynow/cynow/gunicorn.sock (default); nginx's "
        "proxy_pass says /run/gunicorn.sock, and that is what the server uses"
    ]


def unit(**props):
    base = {"LoadState": "loaded", "User": "app", "Group": "www-data"}
    return {**base, **props}


def exec_start(argv: str) -> str:
    return f"{{ path=/x ; argv[]={argv} ; ignore_errors=no ; start_time=[n/a] }}"


def test_socket_activation_the_socket_unit_is_the_listener():
    s = resolve({})
    facts = Facts(
        units={
            "gunicorn.service": unit(
                WorkingDirectory="/srv/app",
                ExecStart=exec_start(
                    "/srv/app/.venv/bin/gunicorn --workers 3 app.wsgi:application"
                ),
            ),
            "gunicorn.socket": {"LoadState": "loaded", "Listen": "/run/gunicorn.sock (Stream)"},
        }
    )
    v = by_key(layout.discover(facts, s))
    assert (v["socket"].value, v["socket"].source) == ("/run/gunicorn.sock", "socket unit")
    assert v["venv"].value == "/srv/app/.venv" and v["project_dir"].value == "/srv/app"
    assert {x.key for x in layout.disagreements(list(v.values()))} == {
        "app_user",
        "project_dir",
        "venv",
        "wsgi",
        "socket",
    }


def test_a_tcp_bind_is_discovered_and_written_as_host_port():
    s = resolve({})
    facts = Facts(
        units={
            "gunicorn.service": unit(
                ExecStart=exec_start(
                    "/v/bin/gunicorn --bind 127.0.0.1:8000 config.wsgi:application"
                )
            )
        }
    )
    values = layout.discover(facts, s)
    assert by_key(values)["socket"].value == "127.0.0.1:8000"
    text = layout.target_config("prod", "admin@127.0.0.9", values, s)
    cfg = yaml.safe_load(text)["cynow"]
    assert resolve(cfg, "prod").tcp == "127.0.0.1:8000"


def test_nothing_said_is_no_value_and_no_disagreement():
    s = resolve({})
    values = layout.discover(Facts(), s)
    assert all(v.value is None for v in values) and layout.disagreements(values) == []
    (c,) = layout_check.evaluate(Facts(), s)
    assert c.status == "skipped"


def test_the_written_target_reads_back_as_the_servers_values():
    s = resolve({})
    facts = Facts(
        units={
            "gunicorn.service": unit(
                WorkingDirectory="/srv/it's here",
                ExecStart=exec_start("/srv/v/bin/gunicorn --bind unix:/run/g.sock app.wsgi:app"),
            )
        },
        probe={"static_root": "/srv/static", "log_files": ["/var/log/app/django.log"]},
    )
    text = layout.target_config("prod", "admin@127.0.0.9", layout.discover(facts, s), s)
    cfg = yaml.safe_load(text)["cynow"]
    s2 = resolve(cfg, "prod")
    assert s2.hosts == ["admin@127.0.0.9"]
    assert (s2.app_user, s2.project_dir, s2.venv, s2.socket) == (
        "app",
        "/srv/it's here",
        "/srv/v",
        "/run/g.sock",
    )
    assert (s2.wsgi, s2.static_root, s2.django_log) == (
        "app.wsgi:app",
        "/srv/static",
        "/var/log/app/django.log",
    )


# -- gunicorn's own settings: ExecStart > GUNICORN_CMD_ARGS > the config file -------------


def gunicorn_facts(argv: str, conf: dict | None = None, unit_text: str = "", **props) -> Facts:
    return Facts(
        units={"gunicorn.service": unit(ExecStart=exec_start(argv), **props)},
        unit_file=unit_text,
        gunicorn_config=conf or {},
    )


CONF = {
    "named": "unit",
    "path": "/home/cynow/cynow/gunicorn.conf.py",
    "exists": True,
    "env_args": None,
    "values": {"bind": "unix:/home/cynow/cynow/gunicorn.sock", "workers": 2, "timeout": 60},
}


def test_a_bind_from_the_config_file_is_the_socket():
    s = resolve({})
    facts = gunicorn_facts("/v/bin/gunicorn -c /home/cynow/cynow/gunicorn.conf.py app.wsgi", CONF)
    v = by_key(layout.discover(facts, s))
    assert (v["bind"].value, v["bind"].source) == (
        "unix:/home/cynow/cynow/gunicorn.sock",
        "gunicorn config",
    )
    assert (v["socket"].value, v["socket"].source) == (s.socket, "gunicorn config")
    assert (v["workers"].value, v["workers"].source) == ("2", "gunicorn config")
    assert (v["timeout"].value, v["gunicorn_config"].value) == ("60", CONF["path"])
    assert v["gunicorn_config"].source == "unit" and not v["socket"].disagrees
    # Step 3 and step 4 judge the bind gunicorn really uses, not "no --bind".
    (c,) = unit_file.evaluate(facts, s)
    assert "no --bind" not in c.summary
    assert f"bind from {CONF['path']}: bind = unix:{s.socket}" in c.evidence


def test_the_command_line_wins_over_gunicorn_cmd_args_over_the_file():
    s = resolve({})
    env_unit = '[Service]\nEnvironment="GUNICORN_CMD_ARGS=--workers 5 --timeout 90"\n'
    facts = gunicorn_facts("/v/bin/gunicorn -w 4 -b unix:/run/cli.sock app.wsgi", CONF, env_unit)
    g = unit_file.gunicorn_settings(facts, s)
    assert g["workers"] == ("4", "unit", "ExecStart's workers")
    # The server's reader did not see the variable (None): the unit file's Environment= says.
    assert g["timeout"] == ("90", "unit", "GUNICORN_CMD_ARGS's timeout")
    assert g["bind"][0] == ["unix:/run/cli.sock"]
    none = gunicorn_facts("/v/bin/gunicorn app.wsgi", CONF)
    assert unit_file.gunicorn_settings(none, s)["timeout"][1] == "gunicorn config"
    not_read = gunicorn_facts("/v/bin/gunicorn app.wsgi", None, env_unit)
    g = unit_file.gunicorn_settings(not_read, s)
    assert g["workers"] == ("5", "unit", "GUNICORN_CMD_ARGS's workers")
    assert g["timeout"][0] == "90" and "config" not in g and "bind" not in g
    on_server = {**CONF, "env_args": {"binds": ["unix:/run/env.sock"], "workers": "3"}}
    g = unit_file.gunicorn_settings(gunicorn_facts("/v/bin/gunicorn x", on_server), s)
    assert g["bind"] == (["unix:/run/env.sock"], "unit", "GUNICORN_CMD_ARGS's bind")
    assert g["workers"][0] == "3" and g["timeout"][1] == "gunicorn config"


def test_a_computed_bind_is_said_and_never_used_as_the_socket():
    s = resolve({})
    conf = {**CONF, "values": {"bind": NOT_LITERAL, "workers": NOT_LITERAL}}
    v = by_key(layout.discover(gunicorn_facts("/v/bin/gunicorn app.wsgi", conf), s))
    assert v["bind"].value == "not a literal: not read" and v["socket"].value is None
    assert v["workers"].value == "not a literal: not read"


def test_nothing_from_gunicorn_when_no_file_and_no_options():
    s = resolve({})
    conf = {"named": "default", "path": "/srv/gunicorn.conf.py", "exists": False}
    v = by_key(layout.discover(gunicorn_facts("/v/bin/gunicorn app.wsgi", conf), s))
    assert all(v[k].value is None for k in ("gunicorn_config", "bind", "workers", "timeout"))
    conf = {**conf, "exists": True, "named": "default", "values": {"chdir": "/srv/app"}}
    v = by_key(layout.discover(gunicorn_facts("/v/bin/gunicorn app.wsgi", conf), s))
    assert (v["gunicorn_config"].value, v["gunicorn_config"].source) == (
        "/srv/gunicorn.conf.py",
        "gunicorn config",
    )
    assert (v["chdir"].value, v["chdir"].source) == ("/srv/app", "gunicorn config")


# -- nginx: the server block serving the prefix, its names, ports and static directory ------

NGINX = """nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful
# configuration file /etc/nginx/nginx.conf:
http {
    include /etc/nginx/mime.types;
    upstream app { server unix:/run/other.sock; }
    include /etc/nginx/sites-enabled/*;
}

# configuration file /etc/nginx/sites-enabled/cynow:
server {
    listen 80;
    listen [::]:80;
    server_name shop.example.org;
    location / { return 301 https://$host$request_uri; }
}
server {
    listen 443 ssl http2;   # the site
    listen [::]:443 ssl;
    server_name shop.example.org "www.shop.example.org";
    root /var/www/html;
    location = /cynow/robots.txt { alias /srv/robots.txt; }
    location ~ \\.php$ { deny all; }
    location /cynow/ {
        proxy_pass http://unix:/run/gunicorn.sock;
    }
    location ^~ /cynow/static/ {
        alias /srv/cynow/static/;
    }
}
"""


def test_the_site_is_the_server_block_that_proxies_the_prefix():
    site = nginx.site_of(NGINX, "/cynow/", "/cynow/static/")
    assert site["server_name"] == ["shop.example.org", "www.shop.example.org"]
    assert site["listen"] == ["443 ssl http2", "[::]:443 ssl"]  # not the redirecting :80
    assert site["static"] == {
        "dir": "/srv/cynow/static/",
        "how": "alias",
        "location": "location ^~ /cynow/static/",
    }
    # A static URL no location of its own serves: the server's root, and the URL under it.
    other = nginx.site_of(NGINX, "/cynow/", "/assets/")
    assert other["static"] == {"dir": "/var/www/html/assets/", "how": "root", "location": ""}
    # Served through the proxy (whitenoise...): no directory of nginx's.
    assert nginx.site_of(NGINX, "/cynow/", "/cynow/s/")["static"] is None
    assert nginx.site_of(NGINX, "/elsewhere/", "/static/") == {
        "server_name": [],
        "listen": [],
        "static": None,
    }


def test_the_longest_prefix_wins_and_an_exact_match_first():
    (_, srv) = nginx.server_blocks(NGINX)
    assert nginx.serving_location(srv, "/cynow/static/app.css").args == ["^~", "/cynow/static/"]
    assert nginx.serving_location(srv, "/cynow/robots.txt").args == ["=", "/cynow/robots.txt"]
    assert nginx.serving_location(srv, "/other/") is None


def test_nginx_values_in_the_layout_and_a_static_directory_django_does_not_fill():
    s = resolve({})
    facts = Facts(
        nginx={"dump": NGINX},
        probe={"static_root": "/srv/cynow/staticfiles", "static_url": "/cynow/static/"},
    )
    v = by_key(layout.discover(facts, s))
    assert (v["server_name"].value, v["server_name"].source) == (
        "shop.example.org www.shop.example.org",
        "nginx",
    )
    assert v["listen"].value == "443 ssl http2, [::]:443 ssl"
    assert (v["static_alias"].value, v["static_alias"].source) == ("/srv/cynow/static/", "nginx")
    (c,) = layout_check.evaluate(facts, s)
    assert c.status == "warn" and c.findings == []
    assert c.evidence[0] == (
        "static files: nginx's alias in location ^~ /cynow/static/ (for /cynow/static/) serves "
        "/srv/cynow/static/, Django's STATIC_ROOT is /srv/cynow/staticfiles: collectstatic "
        "writes where nginx does not look (pages without CSS)"
    )
    agree = Facts(nginx={"dump": NGINX}, probe={**facts.probe, "static_root": "/srv/cynow/static"})
    assert layout.conflicts(layout.discover(agree, s)) == []


def test_without_static_url_django_s_default_is_looked_for():
    s = resolve({})
    facts = Facts(nginx={"dump": NGINX.replace("/cynow/static/", "/static/")}, probe={})
    assert by_key(layout.discover(facts, s))["static_alias"].value == "/srv/static/"


def test_the_captured_lab_has_its_static_alias_where_django_collects():
    facts, s = load("healthy_lab")
    facts.probe["static_url"] = "/cynow/static/"  # captured before the probe said it
    v = by_key(layout.discover(facts, s))
    assert v["static_alias"].value == "/home/cynow/cynow/static/"
    assert v["listen"].value.endswith(":80") and v["server_name"].value == "_"
    assert layout.conflicts(list(v.values())) == []


def test_nginx_is_matched_against_the_config_files_bind():
    s = resolve({})
    block = nginx.location_block(NGINX, "/cynow/")
    check = layout_check.Check("nginx.proxy", 4, "proxy")
    conf = {**CONF, "values": {"bind": "unix:/run/gunicorn.sock"}}
    ok = nginx.proxy_target(check, block, gunicorn_facts("/v/bin/gunicorn app.wsgi", conf), s)
    assert ok.status == "ok" and "gunicorn: --bind unix:/run/gunicorn.sock" in ok.evidence
    conf = {**CONF, "values": {"bind": "unix:/home/cynow/cynow/gunicorn.sock"}}
    bad = nginx.proxy_target(check, block, gunicorn_facts("/v/bin/gunicorn app.wsgi", conf), s)
    assert bad.findings[0].cause == "socket_path_mismatch"


def test_the_config_files_wsgi_app_when_execstart_names_none():
    s = resolve({})
    conf = {**CONF, "values": {"wsgi_app": "shop.wsgi:application"}}
    v = by_key(layout.discover(gunicorn_facts("/v/bin/gunicorn -c /x.py", conf), s))
    assert (v["wsgi"].value, v["wsgi"].source) == ("shop.wsgi:application", "gunicorn config")
    assert v["wsgi"].disagrees
    argv = gunicorn_facts("/v/bin/gunicorn -c /x.py config.wsgi:application", conf)
    assert by_key(layout.discover(argv, s))["wsgi"].source == "unit"  # the command line wins
    conf = {**CONF, "values": {"wsgi_app": NOT_LITERAL}}
    v = by_key(layout.discover(gunicorn_facts("/v/bin/gunicorn -c /x.py", conf), s))
    assert v["wsgi"].value == NOT_LITERAL and not v["wsgi"].disagrees  # unknown, not wrong


def test_a_named_config_that_could_not_be_read_is_said():
    s = resolve({})
    conf = {"named": "unit", "path": "/etc/g.py", "exists": True, "error": "PermissionError: x"}
    v = by_key(layout.discover(gunicorn_facts("/v/bin/gunicorn -c /etc/g.py app", conf), s))
    assert v["gunicorn_config"].value == "/etc/g.py (not read: PermissionError: x)"
    conf = {"named": "unit", "path": "/etc/none.py", "exists": False}
    v = by_key(layout.discover(gunicorn_facts("/v/bin/gunicorn -c /etc/none.py app", conf), s))
    assert v["gunicorn_config"].value == "/etc/none.py (not read: missing)"


def test_the_socket_units_owner_and_mode_from_systemctl_show():
    from tasks import parse

    text = (Path(__file__).parent / "data" / "systemctl_show_socket_unit.txt").read_text()
    facts = Facts(units=parse.systemctl_show(text))
    v = by_key(layout.discover(facts, resolve({})))
    said = {k: (v[k].value, v[k].source) for k in ("socket_user", "socket_group", "socket_mode")}
    # Captured in the lab (tests/lab/test_socket_activation.py): SocketUser=www-data and
    # SocketMode=0660 set, SocketGroup not (systemctl shows it empty).
    assert said == {
        "socket_user": ("www-data", "socket unit"),
        "socket_group": ("root", "socket unit"),
        "socket_mode": ("0660", "socket unit"),
    }
    assert v["socket_mode"].used == "the socket unit's SocketMode="
    assert v["socket_group"].used == "systemd's default (no SocketGroup=)"
    # A socket unit that sets none: systemd's own (root, 0666), said to be the default.
    bare = {k: val for k, val in facts.units["gunicorn.socket"].items() if "Socket" not in k}
    facts.units["gunicorn.socket"] = bare
    v = by_key(layout.discover(facts, resolve({})))
    assert (v["socket_user"].value, v["socket_mode"].value) == ("root", "0666")
    assert v["socket_user"].used == "systemd's default (no SocketUser=)"
    # No socket unit: nothing said.
    facts.units.pop("gunicorn.socket")
    assert "socket_user" not in by_key(layout.discover(facts, resolve({})))
