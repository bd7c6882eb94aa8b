"""Guide step 8 (tasks/checks/django.py and its probe, tasks/remote/django_probe.py): the app
imported is the one the unit serves; a unit naming an app the code lacks is the unit's fault."""

from __future__ import annotations

import os
import subprocess
import sys

from tasks import programs
from tasks.checks import django
from tasks.checks.base import Facts

OK = {"ok": True}
MISSING = {
    "ok": False,
    "type": "AttributeError",
    "message": "module 'config.wsgi' has no attribute 'app'",
    "traceback": [],
}


def probe(**kw) -> dict:
    return {"python": "3.11.2", "executable": "/x/venv/bin/python", "django": "4.2", **kw}


def wsgi_check(facts: Facts, s):
    return next(c for c in django.evaluate(facts, s) if c.id == "django.wsgi")


def test_a_unit_naming_an_app_the_code_lacks_is_the_units_fault(s):
    p = probe(wsgi_app="config.wsgi:app", wsgi_source="unit", wsgi=MISSING, wsgi_config=OK)
    c = wsgi_check(Facts(probe=p), s)
    assert c.status == "fail" and c.title == (
        "import config.wsgi:app (the unit's; configured config.wsgi:application)"
    )
    (f,) = c.findings
    assert f.cause == "unit_file_invalid"
    assert "serves config.wsgi:app, which does not load" in f.evidence[0]
    assert f.fix[0].startswith("sudo systemctl edit --full gunicorn.service")
    assert not any("restart" in x and "edit" not in x for x in f.fix[:1])


def test_code_that_does_not_import_is_still_the_codes_fault(s):
    p = probe(wsgi_app="config.wsgi:app", wsgi_source="unit", wsgi=MISSING, wsgi_config=MISSING)
    (f,) = wsgi_check(Facts(probe=p), s).findings
    assert f.cause == "app_import_error"


def test_the_same_app_imports_once(s):
    c = wsgi_check(Facts(probe=probe(wsgi_app=s.wsgi, wsgi_source="unit", wsgi=OK)), s)
    assert c.status == "ok" and c.title == f"import {s.wsgi}"


def test_an_unreadable_unit_leaves_the_served_app_unknown_not_passed(s):
    p = probe(
        wsgi_app=s.wsgi,
        wsgi_source="unknown",
        wsgi_unit_error="systemctl show gunicorn.service: Failed to connect to bus",
        wsgi=OK,
    )
    c = wsgi_check(Facts(probe=p), s)
    assert c.status == "warn" and "not known" in c.summary
    assert c.evidence == ["systemctl show gunicorn.service: Failed to connect to bus"]


def fake_project(tmp_path, systemctl: str):
    """A project where only config.wsgi:application exists, and a fake systemctl."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "__init__.py").write_text("")
    (tmp_path / "config" / "wsgi.py").write_text("application = object()\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\n" + systemctl)
    (bin_dir / "systemctl").chmod(0o755)
    return bin_dir


def run_probe(tmp_path, bin_dir) -> dict:
    script = "\n".join(
        [
            "WSGI = 'config.wsgi:application'",
            "SETTINGS = 'config.settings'",
            "UNIT = 'gunicorn.service'",
            programs.source("gunicorn_argv", "django_probe"),
        ]
    )
    out = subprocess.run(
        [sys.executable, "-B", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    return django.parse_probe(out.stdout)


def test_the_probe_says_when_the_unit_cannot_be_read(tmp_path):
    bin_dir = fake_project(tmp_path, "echo 'Failed to connect to bus' >&2; exit 1\n")
    p = run_probe(tmp_path, bin_dir)
    assert p["wsgi_source"] == "unknown" and p["wsgi"] == {"ok": True}
    assert p["wsgi_unit_error"] == "systemctl show gunicorn.service: Failed to connect to bus"


def test_the_probe_imports_the_units_app(tmp_path):
    """The probe for real, with a fake systemctl whose ExecStart serves config.wsgi:app and
    a project where only config.wsgi:application exists."""
    bin_dir = fake_project(
        tmp_path,
        "echo '{ path=/v/bin/gunicorn ; argv[]=/v/bin/gunicorn --workers 3 "
        "--bind unix:/s.sock config.wsgi:app ; ignore_errors=no }'\n",
    )
    p = run_probe(tmp_path, bin_dir)
    assert p["wsgi_app"] == "config.wsgi:app" and p["wsgi_source"] == "unit"
    assert p["wsgi"]["type"] == "AttributeError" and p["wsgi_config"] == {"ok": True}


def test_the_probe_imports_the_config_files_app_when_execstart_names_none(tmp_path, monkeypatch):
    """`gunicorn -c conf/g.py` and `wsgi_app = "config.wsgi:app"` in the file (relative to the
    unit's WorkingDirectory): gunicorn serves that one, so the probe imports it."""
    bin_dir = fake_project(
        tmp_path,
        'case "$*" in *WorkingDirectory*) echo "$WD";; *) echo "{ path=/v/bin/gunicorn ; '
        'argv[]=/v/bin/gunicorn -c conf/g.py ; ignore_errors=no }";; esac\n',
    )
    wd = tmp_path / "wd"
    (wd / "conf").mkdir(parents=True)
    (wd / "conf" / "g.py").write_text('import os\nwsgi_app = "config.wsgi:app"\n')
    monkeypatch.setenv("WD", str(wd))
    p = run_probe(tmp_path, bin_dir)
    assert p["wsgi_app"] == "config.wsgi:app" and p["wsgi_source"] == "unit"
    assert p["wsgi"]["type"] == "AttributeError"
