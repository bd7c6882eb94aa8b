"""A lab host whose gunicorn takes its settings from its own config file, as many hand-made
servers do: the unit has no --bind (nor --workers) but `-c gunicorn.conf.py`, the file binds
the guide's socket and sets 2 workers; nginx is unchanged. The layout must read the file (as
the app user, never running it) and the diagnosis must find the host healthy with -H alone."""

from __future__ import annotations

import pytest

from tasks.shell import join, q
from tests.lab.helpers import APP, fab_json, lab_args, wait_for
from tests.lab.test_deploy import get

pytestmark = pytest.mark.lab

CONF = f"{APP}/gunicorn.conf.py"
SOCK = f"{APP}/gunicorn.sock"


def to_config_file(host) -> None:
    # The file is the app user's, as on a server set up by hand; the unit names it with -c.
    text = f'# gunicorn\'s settings for cynow\nbind = "unix:{SOCK}"\nworkers = 2\n'
    host.sh(f"printf %s {q(text)} > {q(CONF)}", user="cynow")
    unit = "/etc/systemd/system/gunicorn.service"
    host.sh(
        " && ".join(
            [
                # `--workers 3 \` is a line of its own (a continued ExecStart=): gone.
                join(
                    "sed",
                    "-i",
                    "-e",
                    r"/--workers 3 \\$/d",
                    "-e",
                    f"s|--bind unix:{SOCK}|-c {CONF}|",
                    unit,
                ),
                "! " + join("grep", "-qE", "--", "--bind|--workers", unit),
                join("grep", "-qF", "--", f"-c {CONF}", unit),
                "systemctl daemon-reload",
                "systemctl restart gunicorn",
            ]
        )
    )
    wait_for(host, f"test -S {q(SOCK)}")
    # gunicorn really took both from the file: its socket, and 2 workers under the master.
    wait_for(
        host,
        '[ "$(ps --ppid "$(systemctl show -p MainPID --value gunicorn)" --no-headers | wc -l)"'
        " = 2 ]",
    )
    assert get(host) == 200


@pytest.fixture
def conf_host(fresh_host):
    to_config_file(fresh_host)
    return fresh_host


def test_the_config_files_bind_and_workers_are_read_and_the_host_is_healthy(conf_host):
    info, r = fab_json(*lab_args(conf_host), "info", "--target", "lab")
    assert r.returncode == 0, r.stderr[-2000:]
    (host,) = info["hosts"]
    assert "layout_error" not in host, host.get("layout_error")
    v = {x["key"]: x for x in host["layout"]}
    assert (v["bind"]["value"], v["bind"]["source"]) == (f"unix:{SOCK}", "gunicorn config"), v
    assert (v["workers"]["value"], v["workers"]["source"]) == ("2", "gunicorn config")
    assert (v["gunicorn_config"]["value"], v["gunicorn_config"]["source"]) == (CONF, "unit")
    assert (v["socket"]["value"], v["socket"]["source"]) == (SOCK, "gunicorn config")
    assert not v["socket"]["disagrees"]
    # nginx's side, unchanged from the guide: its static alias is where Django collects.
    assert v["static_alias"]["value"] == f"{APP}/static/" and v["static_alias"]["source"] == "nginx"
    assert v["listen"]["value"].endswith(":80") and v["server_name"]["value"] == "_"
    assert host["layout_conflicts"] == []

    doc, r = fab_json(*lab_args(conf_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr[-2000:])
    checks = {c["id"]: c for c in doc["checks"]}
    assert "no --bind" not in checks["unit.file"]["summary"], checks["unit.file"]
    assert checks["nginx.proxy"]["status"] == "ok", checks["nginx.proxy"]
    assert checks["layout.config"]["status"] == "ok", checks["layout.config"]
