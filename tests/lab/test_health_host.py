"""A release that narrows Django's ALLOWED_HOSTS to the site's name, as production settings
do: a health request asked with curl's own Host (localhost, or nginx's address) gets Django's
400 (DisallowedHost). Discovery reads the name before the task: a deploy that narrows it is
asked with the old settings' (none) and fails, saying why; with `health_host` it deploys; once
the narrow settings are the service's, the name is taken from Django's ALLOWED_HOSTS."""

from __future__ import annotations

import shlex
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
    # Without it, now that the narrow settings are the service's: nginx names no site here
    # (`server_name _`), so the name is Django's own ALLOWED_HOSTS, read as the service reads
    # it, and the site is asked as a browser asks it.
    doc, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", doc["verdict"]
    assert doc["discovered"]["health_host"] == {
        "value": "cynow.lab",
        "source": "Django's ALLOWED_HOSTS",
    }
    # The first deploy above failed because discovery ran before it, on the old settings
    # (ALLOWED_HOSTS = ["*"]); a deploy now needs no setting at all.
    push_commit(fresh_host, {"README": "by ALLOWED_HOSTS\n"}, "docs: asked by ALLOWED_HOSTS")
    doc, r = fab_json(*lab_args(fresh_host), "deploy", "--target", "lab", env=fast)
    assert doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]


def test_a_name_based_site_is_asked_by_its_name(fresh_host):
    # nginx serves the app only to its name; another site is the default on the same address.
    # Asked by address (curl's own Host), nginx would answer that site's 404.
    other = (
        f"server {{\n    listen {fresh_host.address}:80 default_server;\n"
        "    server_name other.lab;\n    location / { return 404; }\n}\n"
    )
    fresh_host.sh(
        "sed -i 's/server_name _;/server_name cynow.lab;/' /etc/nginx/sites-available/cynow && "
        f"printf %s {shlex.quote(other)} > /etc/nginx/sites-enabled/other && "
        "nginx -t && systemctl reload nginx"
    )
    doc, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr[-2000:])
    assert doc["discovered"]["health_host"] == {
        "value": "cynow.lab",
        "source": "nginx's server_name",
    }
    push_commit(fresh_host, {"README": "by name\n"}, "docs: asked by name")
    doc, r = fab_json(*lab_args(fresh_host), "deploy", "--target", "lab")
    assert doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]
