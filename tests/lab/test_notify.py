"""Notifications on the lab: the real `fab` posts through Apprise's `json://` scheme to a
receiver on 127.0.0.1 (tests/receiver.py), configured per target in a `-f` file. Each event's
payload is checked; nothing is sent under --dry-run; a receiver that is down leaves the deploy
deployed (exit 0) with a warning.

CYNOW_NOTIFY_CAPTURE=DIR keeps every payload received (EVENT.json), for the README."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.lab import lab
from tests.lab.helpers import (
    REPO,
    fab,
    fab_json,
    lab_args,
    push_commit,
    restart_gunicorn,
    server_pull,
)
from tests.receiver import Receiver, free_port, wait_for_posts

pytestmark = pytest.mark.lab

VIEWS = (REPO / "tests/lab/app/orders/views.py").read_text()


def config(tmp_path: Path, *urls: str) -> list[str]:
    """`-f FILE`: the lab's runtime config with `notify` set on the lab target."""
    cfg = yaml.safe_load(lab.fabric_config_path().read_text())
    cfg["cynow"]["targets"]["lab"]["notify"] = list(urls)
    path = tmp_path / "notify.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return ["-f", str(path)]


def run(host, conf, *args, **kw):
    return fab_json(*conf, *lab_args(host), *args, "--target", "lab", **kw)


def keep(r: Receiver) -> None:
    target = os.environ.get("CYNOW_NOTIFY_CAPTURE")
    if not target:
        return
    os.makedirs(target, exist_ok=True)
    for body in r.bodies():
        event = body["message"].splitlines()[0].removeprefix("event: ")
        Path(target, f"{event}.json").write_text(json.dumps(body, indent=2) + "\n")


def fields(body: dict) -> dict:
    """The message's `label: value` lines as a dict (the last lines excluded)."""
    out = {}
    for line in body["message"].split("\nlast lines:\n")[0].splitlines():
        label, _, value = line.partition(": ")
        out[label] = value
    return out


def test_deploy_started_and_succeeded_then_rollback(fresh_host, tmp_path):
    with Receiver() as r:
        conf = config(tmp_path, r.url)
        old = fresh_host.sh("git -C /home/cynow/cynow rev-parse HEAD", user="cynow").stdout
        new = push_commit(fresh_host, {"NOTES.md": "notified\n"}, "docs: notes")
        doc, p = run(fresh_host, conf, "deploy")
        assert p.returncode == 0 and doc["result"] == "deployed", p.stderr
        assert doc["notified"] == ["deploy.started", "deploy.succeeded"]
        assert doc["notify_errors"] == []
        started, done = wait_for_posts(r, 2)
        assert r.posts[0]["path"] == "/cynow"
        host = f"{lab_args(fresh_host)[1]} (target lab)"
        commits = f"{old.strip()[:12]} -> {new[:12]} (1 commit(s): {new[:7]} docs: notes)"
        assert started["type"] == "info"
        assert started["title"] == f"cynow-ops: deploy started on {lab_args(fresh_host)[1]}"
        assert fields(started) == {
            "event": "deploy.started",
            "host": host,
            "commits": commits,
            "by": fields(started)["by"],
        }
        assert done["type"] == "success"
        f = fields(done)
        assert f["event"] == "deploy.succeeded" and f["result"] == "deployed"
        assert f["host"] == host and f["commits"] == commits
        assert "failed step" not in f

        doc, p = run(fresh_host, conf, "rollback")
        assert p.returncode == 0, p.stderr
        assert doc["notified"] == ["rollback.started", "rollback.succeeded"]
        bodies = wait_for_posts(r, 4)
        assert [fields(b)["event"] for b in bodies[2:]] == [
            "rollback.started",
            "rollback.succeeded",
        ]
        f = fields(bodies[3])
        assert f["result"] == "rolled-back-by-request"
        assert f["commits"].startswith(f"{new[:12]} -> {old.strip()[:12]}")
        keep(r)


def test_a_rolled_back_deploy_names_the_failing_step_and_its_lines(fresh_host, tmp_path):
    broken = VIEWS.replace("    lines = [", '    raise RuntimeError("boom")\n    lines = [')
    push_commit(fresh_host, {"orders/views.py": broken}, "orders: a view that fails")
    with Receiver() as r:
        doc, p = run(fresh_host, config(tmp_path, r.url), "deploy")
        assert p.returncode == 1 and doc["result"] == "rolled-back"  # as without notify
        assert doc["notified"] == ["deploy.started", "deploy.rolled_back"]
        _, body = wait_for_posts(r, 2)
        keep(r)
    assert body["type"] == "warning"
    f = fields(body)
    assert f["event"] == "deploy.rolled_back" and f["result"] == "rolled-back"
    assert f["failed step"] == "health" and "500" in f["error"]
    last = body["message"].split("\nlast lines:\n")[1].splitlines()
    assert last[0].startswith("  FAILED health (") and "500" in last[0]
    assert last[-1].startswith("  ok health (") and "/cynow/ 200" in last[-1]  # old code back


def test_dry_run_sends_nothing(fresh_host, tmp_path):
    push_commit(fresh_host, {"NOTES.md": "planned\n"}, "docs: notes")
    with Receiver() as r:
        doc, p = run(fresh_host, config(tmp_path, r.url), "deploy", "--dry-run")
        assert p.returncode == 0 and doc["result"] == "planned"
        assert doc["notified"] == [] and doc["notify_errors"] == []
    assert r.posts == []


def test_a_receiver_that_is_down_does_not_fail_the_deploy(fresh_host, tmp_path):
    port = free_port()
    push_commit(fresh_host, {"NOTES.md": "nobody listens\n"}, "docs: notes")
    conf = config(tmp_path, f"json://ops:hunter2@127.0.0.1:{port}/hook/s3cr3t")
    doc, p = run(fresh_host, conf, "deploy")
    assert p.returncode == 0 and doc["result"] == "deployed", p.stderr
    # Both tried, neither sent: `notified` lists what was sent; each failure is an error, and
    # the closing event is still tried after a .started that was not sent.
    assert doc["notified"] == []
    assert len(doc["notify_errors"]) == 2
    assert "deploy.succeeded" in doc["notify_errors"][1]
    head = f"warning: notification deploy.started to json://127.0.0.1:{port} not sent: "
    assert head in p.stderr
    assert "hunter2" not in p.stdout + p.stderr and "s3cr3t" not in p.stdout + p.stderr
    # The human report says it too, and still exits 0.
    push_commit(fresh_host, {"NOTES.md": "still nobody\n"}, "docs: more notes")
    h = fab(*conf, *lab_args(fresh_host), "deploy", "--target", "lab")
    assert h.returncode == 0, h.stdout + h.stderr
    assert f"warning: notification deploy.succeeded to json://127.0.0.1:{port} not sent" in (
        h.stdout + h.stderr
    )
    assert "hunter2" not in h.stdout + h.stderr
    if os.environ.get("CYNOW_NOTIFY_CAPTURE"):
        os.makedirs(os.environ["CYNOW_NOTIFY_CAPTURE"], exist_ok=True)
        Path(os.environ["CYNOW_NOTIFY_CAPTURE"], "receiver-down.txt").write_text(
            h.stdout + h.stderr
        )


def test_diagnose_notify_and_repair_on_a_broken_host(fresh_host, tmp_path):
    fresh_host.sh("systemctl stop gunicorn.service")
    with Receiver() as r:
        conf = config(tmp_path, r.url)
        doc, p = run(fresh_host, conf, "diagnose")
        assert p.returncode == 1 and "notified" not in doc  # without --notify: nothing
        doc, p = run(fresh_host, conf, "diagnose", "--notify")
        assert p.returncode == 1 and doc["verdict"]["cause"] == "gunicorn_stopped"
        assert doc["notified"] == ["diagnose.unhealthy"] and doc["notify_errors"] == []
        (body,) = wait_for_posts(r, 1)
        assert body["type"] == "failure"
        f = fields(body)
        assert f["event"] == "diagnose.unhealthy"
        assert f["result"].startswith("gunicorn_stopped: ")
        fix, last = body["message"].split("\nfix:\n")[1].split("\nlast lines:\n")
        assert "  sudo systemctl start gunicorn.service" in fix.splitlines()
        assert "  Active: inactive (dead)" in last.splitlines()

        doc, p = run(fresh_host, conf, "repair", "--yes")
        assert p.returncode == 0 and doc["healthy"], p.stderr
        assert doc["notified"] == ["repair.started", "repair.succeeded"]
        bodies = wait_for_posts(r, 3)
        assert [fields(b)["event"] for b in bodies] == [
            "diagnose.unhealthy",
            "repair.started",
            "repair.succeeded",
        ]
        assert fields(bodies[2])["result"] == "gunicorn_stopped -> healthy"
        assert fields(bodies[2])["applied"] == "gunicorn"

        doc, p = run(fresh_host, conf, "diagnose", "--notify")  # healthy: nothing more
        assert p.returncode == 0 and doc["notified"] == []
        assert len(r.bodies()) == 3
        keep(r)


def test_a_deploy_refused_after_it_started_says_so(fresh_host, tmp_path):
    push_commit(fresh_host, {"orders/urls.py": None}, "orders: restructure (forgot urls.py)")
    with Receiver() as r:
        doc, p = run(fresh_host, config(tmp_path, r.url), "deploy")
        assert p.returncode == 1 and doc["result"] == "refused"
        assert doc["notified"] == ["deploy.started", "deploy.refused"]
        _, body = wait_for_posts(r, 2)
    f = fields(body)
    assert f["failed step"] == "required files" and "orders/urls.py" in f["error"]


def test_a_rollback_that_fails_says_so(fresh_host, tmp_path):
    """nginx stopped after a deploy: the rollback's health gate (through nginx) fails, as in
    tests/lab/test_data_safety.py; rollback.started, then rollback.failed with its step."""
    with Receiver() as r:
        conf = config(tmp_path, r.url)
        push_commit(fresh_host, {"NOTES.md": "to undo\n"}, "docs: notes")
        doc, p = run(fresh_host, conf, "deploy")
        assert p.returncode == 0 and doc["result"] == "deployed", p.stderr
        fresh_host.sh("systemctl stop nginx")
        try:
            doc, p = run(fresh_host, conf, "rollback")
        finally:
            fresh_host.sh("systemctl start nginx")
        assert p.returncode == 1 and doc["result"] == "rollback-failed", p.stderr[-2000:]
        assert doc["notified"] == ["rollback.started", "rollback.failed"], doc["notify_errors"]
        bodies = wait_for_posts(r, 4)
        keep(r)
    assert [fields(b)["event"] for b in bodies] == [
        "deploy.started",
        "deploy.succeeded",
        "rollback.started",
        "rollback.failed",
    ]
    body = bodies[3]
    assert body["type"] == "failure"
    assert body["title"] == f"cynow-ops: rollback failed on {lab_args(fresh_host)[1]}"
    f = fields(body)
    assert f["result"] == "rollback-failed" and f["failed step"] == "health"
    assert f["host"] == f"{lab_args(fresh_host)[1]} (target lab)"
    assert "fab rollback" in f["error"]  # what the lock keeps, and the way out
    assert "\nlast lines:\n" in body["message"]


def test_a_repair_that_cannot_fix_the_cause_says_so(fresh_host, tmp_path):
    """A code error (an import that fails) is left to a person: the restart repair tries does
    not make the host healthy, so repair.started is followed by repair.failed, which names the
    cause still there and what the person must do."""
    views = "from orders.models import Invoice\n"
    push_commit(fresh_host, {"orders/views.py": views}, "orders: invoices")
    server_pull(fresh_host)
    restart_gunicorn(fresh_host)
    with Receiver() as r:
        doc, p = run(fresh_host, config(tmp_path, r.url), "repair", "--yes")
        assert p.returncode == 1 and not doc["healthy"], p.stderr[-2000:]
        assert doc["before"] == "app_import_error" and "app_import_error" in doc["by_hand"]
        assert doc["notified"] == ["repair.started", "repair.failed"], doc["notify_errors"]
        started, body = wait_for_posts(r, 2)
        keep(r)
    assert fields(started)["event"] == "repair.started" and started["type"] == "info"
    assert body["type"] == "failure"
    assert (
        body["title"] == f"cynow-ops: repair did not make it healthy on {lab_args(fresh_host)[1]}"
    )
    f = fields(body)
    assert f["event"] == "repair.failed"
    assert f["result"] == f"app_import_error -> {doc['after']}"
    assert "app_import_error" in f["needs a person"].split(", ")
    assert f["host"] == f"{lab_args(fresh_host)[1]} (target lab)"


def test_a_deploy_whose_rollback_fails_says_so(fresh_host, tmp_path):
    """nginx stopped before the deploy: its health gate fails, the undo's gate too (both go
    through nginx), so the deploy ends rollback-failed and deploy.rollback_failed is sent."""
    push_commit(fresh_host, {"NOTES.md": "never served\n"}, "docs: notes")
    fresh_host.sh("systemctl stop nginx")
    try:
        with Receiver() as r:
            doc, p = run(fresh_host, config(tmp_path, r.url), "deploy")
            assert doc["result"] == "rollback-failed", p.stderr[-2000:]
            assert p.returncode != 0
            assert doc["notified"] == ["deploy.started", "deploy.rollback_failed"]
            _, body = wait_for_posts(r, 2)
            keep(r)
    finally:
        fresh_host.sh("systemctl start nginx")
    assert body["type"] == "failure"
    f = fields(body)
    assert f["event"] == "deploy.rollback_failed" and f["result"] == "rollback-failed"
    assert f["failed step"] == "health"
    assert f["commits"].endswith("(1 commit(s): " + doc["new"][:7] + " docs: notes)")
