"""tasks/layout.py: the layout the server says it has, on real captured facts and on the
layouts the guide's replica does not show (socket activation, a TCP bind, a moved checkout)."""

from __future__ import annotations

import yaml

from tasks import layout
from tasks.checks import layout as layout_check
from tasks.checks.base import Facts
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
