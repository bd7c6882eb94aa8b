"""A release that narrows Django's ALLOWED_HOSTS to the site's name, as production settings
do: a health request asked with curl's own Host (localhost, or nginx's address) gets Django's
400 (DisallowedHost). Without `health_host` the gate must fail and say why; with it, the same
release deploys, as a browser asking for the name would see it work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.helpers import fab_json, lab_args, push_commit

pytestmark = pytest.mark.lab

SETTINGS = (Path(__file__).parent / "app" / "config" / "settings.py").read_text()
NARROW = SETTINGS.replace('ALLOWED_HOSTS = ["*"]', 'ALLOWED_HOSTS = ["cynow.lab"]')


def test_a_site_that_only_answers_its_name_needs_health_host(fresh_host):
    assert NARROW != SETTINGS
    push_commit(fresh_host, {"config/settings.py": NARROW}, "settings: only our name")
    fast = {"FABRIC_CYNOW_HEALTH_TIMEOUT": "5"}
    doc, r = fab_json(*lab_args(fresh_host), "deploy", "--target", "lab", env=fast)
    assert (doc["result"], doc["failed_step"]) == ("rolled-back", "health"), doc
    assert "400" in doc["error"] and "ALLOWED_HOSTS" in doc["error"], doc["error"]
    doc, r = fab_json(
        *lab_args(fresh_host),
        "deploy",
        "--target",
        "lab",
        env={**fast, "FABRIC_CYNOW_HEALTH_HOST": "cynow.lab"},
    )
    assert doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]
    doc, r = fab_json(
        *lab_args(fresh_host),
        "diagnose",
        "--target",
        "lab",
        env={"FABRIC_CYNOW_HEALTH_HOST": "cynow.lab"},
    )
    assert doc["verdict"]["cause"] == "healthy", doc["verdict"]
    # Without it, diagnose names the setting to write, from Django's own ALLOWED_HOSTS.
    doc, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    nginx = next(c for c in doc["checks"] if c["id"] == "http.nginx")
    assert nginx["status"] == "fail" and "400" in nginx["summary"], nginx
    assert (
        "Django's ALLOWED_HOSTS allows cynow.lab: set health_host: cynow.lab" in nginx["evidence"]
    )
