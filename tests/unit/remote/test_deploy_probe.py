"""tasks/remote/deploy_probe.py run as the deploy runs it (tasks/steps/probe.py's command, in a
shell), on a real Django project and sqlite database, with a stand-in `systemctl` for the unit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tasks.steps.probe import deploy_probe, read_probe

INITIAL = """from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    operations = [
        migrations.CreateModel(
            "Order",
            [("id", models.AutoField(primary_key=True)), ("note", models.TextField(default=""))],
        )
    ]
"""
# Dropping a column loses what it holds: the plan must say so.
DROP_NOTE = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]
    operations = [migrations.RemoveField("order", "note")]
"""
MODELS = """from django.db import models


class Order(models.Model):
    pass
"""
# The unit serves config.wsgi:application; its WorkingDirectory is not set.
SYSTEMCTL = """#!/bin/sh
case "$*" in
  *WorkingDirectory*) echo ;;
  *) echo '{ path=/v/bin/gunicorn ; argv[]=/v/bin/gunicorn --bind unix:/s.sock \
config.wsgi:application ; ignore_errors=no }' ;;
esac
"""


@pytest.fixture
def project(tmp_path):
    """A project whose database has orders.0001 applied and orders.0002 pending."""
    root = tmp_path / "the project"
    files = {
        "config/__init__.py": "",
        "config/settings.py": f"SECRET_KEY = 'unit'\nDB = {str(tmp_path / 'db.sqlite3')!r}\n"
        "INSTALLED_APPS = ['django.contrib.contenttypes', 'orders']\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': DB}}\n"
        "ROOT_URLCONF = 'config.urls'\nUSE_TZ = True\n"
        "DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'\n",
        "config/urls.py": "urlpatterns = []\n",
        "config/wsgi.py": "from django.core.wsgi import get_wsgi_application\n\n"
        "application = get_wsgi_application()\n",
        "orders/__init__.py": "",
        "orders/models.py": MODELS,
        "orders/migrations/__init__.py": "",
        "orders/migrations/0001_initial.py": INITIAL,
        "orders/migrations/0002_drop_note.py": DROP_NOTE,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.core.management import call_command; "
            "call_command('migrate', 'contenttypes', verbosity=0); "
            "call_command('migrate', 'orders', '0001', verbosity=0)",
        ],
        cwd=root,
        env=env,
        check=True,
    )
    # The probe sets the settings module from the WSGI path, and keeps bytecode out by itself.
    env.pop("DJANGO_SETTINGS_MODULE")
    env.pop("PYTHONDONTWRITEBYTECODE")
    return root, env


def run(root, env) -> dict:
    command = deploy_probe(str(root), sys.executable, "config.wsgi:application")
    out = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)
    return read_probe(out.stdout)


def test_it_reports_the_state_the_import_and_the_classified_plan(project):
    root, env = project
    p = run(root, env)
    assert p["state"]["orders"] == "0001_initial"
    assert p["applied"]["orders"] == ["0001_initial"]
    assert p["database"]["engine"] == "django.db.backends.sqlite3"
    assert p["wsgi_app"] == "config.wsgi:application" and "error" not in p
    assert p["check"] == []
    (step,) = [m for m in p["plan"] if m["app"] == "orders"]
    assert step["name"] == "0002_drop_note" and step["kind"] == "lossy"
    # Read-only: the pending migration is still pending, and no bytecode was written.
    assert run(root, env)["state"]["orders"] == "0001_initial"
    assert not list(root.rglob("__pycache__"))


def test_a_broken_app_still_reports_the_migration_state(project):
    root, env = project
    (root / "config" / "wsgi.py").write_text("import orders.views\n")
    p = run(root, env)
    assert p["error"]["type"] == "ModuleNotFoundError"
    assert p["state"]["orders"] == "0001_initial" and "state_error" not in p


def test_a_missing_sqlite_file_is_a_state_error_and_is_not_created(project, tmp_path):
    root, env = project
    (tmp_path / "db.sqlite3").unlink()
    p = run(root, env)
    assert p["state_error"]["type"] == "FileNotFoundError"
    assert not (tmp_path / "db.sqlite3").exists()
