"""tasks/app.py: pip and manage.py as the service runs them, one spelling for what runs and
what is printed."""

import subprocess

from tasks import app, guide
from tasks.checks.django import classify
from tasks.settings import resolve

S = resolve({"requirements": "requirements/prod.txt", "project_dir": "/srv/my app"})


def test_pip_install_runs_the_configured_file_in_the_checkout():
    assert app.pip_install(S.project_dir, S.venv, S.requirements) == (
        "cd '/srv/my app' && /home/cynow/cynow/venv/bin/pip install -q "
        "--disable-pip-version-check -r requirements/prod.txt"
    )


def test_the_printed_install_is_the_same_pip_without_the_quiet_flags():
    assert guide.by_hand(S)["requirements"] == (
        "sudo -u cynow /home/cynow/cynow/venv/bin/pip install -r requirements/prod.txt"
    )
    assert app.pip_install_r(S.venv, printed=True) == [
        a for a in app.pip_install_r(S.venv) if a not in ("-q", "--disable-pip-version-check")
    ]


def test_missing_dependency_prints_the_configured_file():
    error = {"type": "ModuleNotFoundError", "name": "requests.adapters", "in_project": False}
    finding = classify(error, 0, S, S.project_dir)
    assert finding.cause == "missing_dependency"
    assert "-r requirements/prod.txt" in finding.fix[0] and "add requests" in finding.fix[0]


def test_pip_install_from_installs_what_fill_wrote_and_removes_the_file(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    pip = venv / "bin" / "pip"
    # A pip that reports its file's path and content, so the test sees both.
    pip.write_text('#!/bin/sh\nfor a; do f=$a; done\necho "$f"; cat "$f"\n')
    pip.chmod(0o755)
    out = subprocess.run(
        ["sh", "-c", app.pip_install_from(str(venv), "printf '%s\\n' 'a==1' 'b==2'")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[1:] == ["a==1", "b==2"]
    assert out[0].startswith("/") and not (tmp_path / out[0]).exists()
