from __future__ import annotations

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
