"""Fixtures of the steps' tests: `server` (a checkout, its origin, a clone, a venv, a migrated
Django project, a state directory, and a Ctx over a LocalRemote) and `fakes` (systemctl,
journalctl, ss and curl answering from files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import service
from tasks.settings import resolve
from tasks.steps.context import Ctx
from tests.unit.steps.fakes import (
    FAKE_CURL,
    FAKE_JOURNALCTL,
    FAKE_SS,
    FAKE_SYSTEMCTL,
    GIT_ENV,
    SETTINGS_PY,
    LocalRemote,
    commit,
    git,
)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A checkout of origin/main in a directory whose name needs quoting, a developer's clone,
    a venv whose python is this one, a Django project whose settings are not in git (an
    untracked file outside `git status --untracked-files=no`) with its database migrated, and
    a state directory."""
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    # The app's commands run here as this user, not through tasks/service.py's wrapper (which
    # drops to the unit's user, never root): the wrapper runs for real in test_service.py.
    monkeypatch.setattr(
        service,
        "as_service",
        lambda unit, user, command, strict=True: f": as-service {user}; {command}",
    )
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    dev = tmp_path / "dev"
    subprocess.run(["git", "clone", "-q", str(origin), str(dev)], check=True)
    git(dev, "checkout", "-q", "-b", "main")
    commit(
        dev,
        {
            "orders/urls.py": "urls\n",
            "requirements.txt": "Django\n",
            "config/__init__.py": "",
            "config/urls.py": "urlpatterns = []\n",
            "config/wsgi.py": "from django.core.wsgi import get_wsgi_application\n\n"
            "application = get_wsgi_application()\n",
        },
        "first",
    )
    app = tmp_path / "the app's dir"
    subprocess.run(["git", "clone", "-q", str(origin), str(app)], check=True)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    # This interpreter, with its packages (Django): a symlink would lose the venv.
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    # The settings stay out of git, as a server's often do: the database is outside the tree.
    db = tmp_path / "db.sqlite3"
    (app / "config" / "settings.py").write_text(f"DB = {str(db)!r}\n" + SETTINGS_PY)
    (app / ".git" / "info" / "exclude").write_text("config/settings.py\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sudo = bin_dir / "sudo"  # sudo -n [-u USER] -- CMD...: CMD as this user
    sudo.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
    sudo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); "
            "from django.core.management import call_command; call_command('migrate', verbosity=0)",
        ],
        cwd=app,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        check=True,
    )
    s = resolve(
        {
            "project_dir": str(app),
            "venv": str(venv),
            "state_dir": str(tmp_path / "state"),
        }
    )
    remote = LocalRemote(s)
    ctx = Ctx(remote, s, "alice@laptop")
    return ctx, remote, dev, app


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """systemctl, journalctl, ss and curl on PATH that answer from files in a directory. The
    unit's control group is a directory here: unit_pids reads /sys/fs/cgroup…$cg/cgroup.procs,
    and enough `..` after /sys/fs/cgroup lead back to the root."""
    d = tmp_path / "fakes"
    (d / "bin").mkdir(parents=True)
    for name, text in [
        ("systemctl", FAKE_SYSTEMCTL),
        ("journalctl", FAKE_JOURNALCTL),
        ("ss", FAKE_SS),
        ("curl", FAKE_CURL),
    ]:
        (d / "bin" / name).write_text(text)
        (d / "bin" / name).chmod(0o755)
    cg = d / "cg"
    cg.mkdir()
    if not Path("/sys/fs/cgroup").is_dir():
        pytest.skip("no /sys/fs/cgroup here: unit_pids cannot be pointed at a test directory")
    monkeypatch.setenv("PATH", f"{d / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DIR", str(d))
    monkeypatch.setenv("FAKE_CG", "/../../../.." + str(cg))
    monkeypatch.setenv("FAKE_ACTIVE", "active")
    monkeypatch.setenv("FAKE_NEED", "no")
    files = {"main": "30\n", "code": "200", "journal": "", "cg/cgroup.procs": "30\n41\n42\n"}
    for name, text in files.items():
        (d / name).write_text(text)

    def set_(name, text):
        (d / name).write_text(text)

    set_.dir = d
    set_.calls = lambda: (d / "calls").read_text().splitlines() if (d / "calls").exists() else []
    return set_
