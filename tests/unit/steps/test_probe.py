from __future__ import annotations

import os

import pytest

from tasks.app import migrate_to
from tasks.steps.context import StepFailed
from tasks.steps.probe import deploy_probe, read_probe


def test_probe_report_is_its_last_line_or_a_failure():
    assert read_probe('noise\nCYNOW-DEPLOY {"state": {"a": "1"}}\n') == {"state": {"a": "1"}}
    with pytest.raises(StepFailed, match="printed no report"):
        read_probe("Traceback (most recent call last):\n")


# -- reload and health, with systemd, curl and ss faked --------------------------------------


def test_probe_never_writes_bytecode_into_the_checkout():
    assert " -B -c " in deploy_probe("/p", "/p/venv/bin/python", "config.wsgi:app")
    assert migrate_to("/p", "/p/venv/bin/python", "orders", "0001_initial") == (
        "cd /p && /p/venv/bin/python manage.py migrate orders 0001_initial --noinput"
    )


def test_a_unit_that_cannot_be_read_makes_validate_refuse_not_guess_the_app(
    server, tmp_path, monkeypatch
):
    """Which app gunicorn imports after the reload is the unit's; when systemctl cannot say,
    the configured one is not taken in its place."""
    from tasks.steps.validate import validate

    ctx, _remote, _dev, _app = server
    bin_dir = tmp_path / "nosystemd"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n")
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(
        StepFailed,
        match="cannot tell which WSGI app the unit serves: "
        "systemctl show gunicorn.service: Failed to connect to bus",
    ):
        validate(ctx)
