"""`fab deploy` and `fab rollback` on the lab, with a fault injected at each step: afterwards the
site answers 200 at the old commit, every app is at its old migration, rows are intact, the lock
is released (or held with a way out) and the history says what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.lab.helpers import (
    APP,
    NOTE_MIGRATION,
    NOTE_MODEL,
    REPO,
    fab_argv,
    fab_json,
    lab_args,
    push_commit,
)

pytestmark = pytest.mark.lab


def run_python(after: str, body: str, reverse: str = "backward") -> str:
    """A data migration; by default with a reverse of its own (a `RunPython.noop` reverse is
    refused as lossy unless --allow-data-loss)."""
    return (
        "from django.db import migrations\n\n\n"
        f"def forward(apps, schema_editor):\n    {body}\n\n\n"
        "def backward(apps, schema_editor):\n    pass\n\n\n"
        "class Migration(migrations.Migration):\n"
        f'    dependencies = [("orders", "{after}")]\n'
        f"    operations = [migrations.RunPython(forward, {reverse})]\n"
    )


VIEWS = open(REPO / "tests/lab/app/orders/views.py").read()
URLS = open(REPO / "tests/lab/app/orders/urls.py").read()
# A release with a new page, /cynow/orders/count/ (404 before it).
COUNT_PAGE = {
    "orders/urls.py": URLS.replace(
        'urlpatterns = [path("", views.order_list, name="list")]',
        'urlpatterns = [path("", views.order_list, name="list"), '
        'path("count/", views.count, name="count")]',
    ),
    "orders/views.py": VIEWS + "\n\ndef count(request):\n"
    '    return HttpResponse(f"{Order.objects.count()}\\n", content_type="text/plain")\n',
}


def deploy(host, *extra):
    return fab_json(*lab_args(host), "deploy", "--target", "lab", *extra)


def state(host) -> dict:
    """What a deploy must leave as it found it when it fails."""
    out = host.sh(
        f"cd {APP} && sudo -u cynow git rev-parse HEAD && sudo -u cynow venv/bin/python manage.py "
        "showmigrations orders | tr -d ' ' && sqlite3 db.sqlite3 "
        "'select id, customer, quantity from orders_order order by id' && "
        "ls /var/lib/cynow-ops/deploy.lock 2>&1 | head -1"
    ).stdout
    return {"text": out}


def get(host, path="/cynow/orders/") -> int:
    try:
        with urllib.request.urlopen(f"http://{host.address}{path}", timeout=20) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def history(host) -> list[dict]:
    text = host.sh("cat /var/lib/cynow-ops/history.jsonl 2>/dev/null || true").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_deploy_adds_migration_url_and_static_then_rollback(fresh_host):
    before = state(fresh_host)
    new = push_commit(
        fresh_host,
        {
            "orders/models.py": NOTE_MODEL,
            "orders/migrations/0002_order_note.py": NOTE_MIGRATION,
            **COUNT_PAGE,
            "orders/static/orders/new.css": "p { color: black; }\n",
        },
        "orders: notes, count, new.css",
    )
    doc, r = deploy(fresh_host)
    assert r.returncode == 0, r.stdout + r.stderr
    assert doc["result"] == "deployed" and doc["new"] == new
    assert [s["step"] for s in doc["steps"]][-2:] == ["reload", "health"]
    assert get(fresh_host, "/cynow/orders/count/") == 200
    assert get(fresh_host, "/cynow/static/orders/new.css") == 200
    assert "[X]0002_order_note" in state(fresh_host)["text"]
    assert history(fresh_host)[-1]["result"] == "deployed"

    doc, r = fab_json(*lab_args(fresh_host), "rollback", "--target", "lab")
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(fresh_host) == before
    assert get(fresh_host, "/cynow/orders/count/") == 404
    assert get(fresh_host) == 200
    assert history(fresh_host)[-1]["result"] == "rollback"


def test_second_migration_failing_rolls_everything_back(fresh_host):
    before = state(fresh_host)
    push_commit(
        fresh_host,
        {
            "orders/models.py": NOTE_MODEL,
            "orders/migrations/0002_order_note.py": NOTE_MIGRATION,
            "orders/migrations/0003_fill.py": run_python(
                "0002_order_note", 'raise RuntimeError("data migration failed")'
            ),
        },
        "orders: notes and a broken data migration",
    )
    doc, r = deploy(fresh_host)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert doc["result"] == "rolled-back" and doc["failed_step"] == "migrate"
    assert "data migration failed" in doc["output"]
    undone = {s["step"]: s["detail"] for s in doc["undo"]}
    assert undone["undo migrate"] == "orders -> 0001_initial"
    assert state(fresh_host) == before
    assert get(fresh_host) == 200
    h = history(fresh_host)[-1]
    assert h["result"] == "rolled-back" and h["failed_step"] == "migrate"
    assert doc["recovery_seconds"] is not None


def test_required_file_missing_is_refused_before_any_change(fresh_host):
    before = state(fresh_host)
    push_commit(fresh_host, {"orders/urls.py": None}, "orders: restructure (forgot urls.py)")
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["result"] == "refused", r.stdout[-3000:] + r.stderr[-2000:]
    assert doc["failed_step"] == "required files" and "lacks orders/urls.py" in doc["error"]
    assert state(fresh_host) == before


def test_diverged_history_is_refused(fresh_host):
    fresh_host.sh(
        f"cd {APP} && git commit -q --allow-empty -m 'hotfix made on the server'", user="cynow"
    )
    before = state(fresh_host)
    push_commit(fresh_host, {"README": "x\n"}, "docs")
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["result"] == "refused", r.stdout[-3000:] + r.stderr[-2000:]
    assert "has diverged" in doc["error"]
    assert state(fresh_host) == before


def test_missing_package_fails_validation_and_code_returns(fresh_host):
    before = state(fresh_host)
    push_commit(
        fresh_host,
        {"orders/views.py": "import markdown_that_does_not_exist\n" + VIEWS},
        "orders: a package nobody installed",
    )
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["failed_step"] == "validate", (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    assert "No module named 'markdown_that_does_not_exist'" in doc["error"]
    assert state(fresh_host) == before and get(fresh_host) == 200


def test_health_gate_500_rolls_back(fresh_host):
    before = state(fresh_host)
    broken = VIEWS.replace("    lines = [", '    raise RuntimeError("boom")\n    lines = [')
    push_commit(fresh_host, {"orders/views.py": broken}, "orders: a view that fails")
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["failed_step"] == "health", r.stdout[-3000:] + r.stderr[-2000:]
    assert "500" in doc["error"]
    assert state(fresh_host) == before and get(fresh_host) == 200


def test_irreversible_migration_is_refused_unless_allowed(fresh_host):
    before = state(fresh_host)
    push_commit(
        fresh_host,
        {"orders/migrations/0002_once.py": run_python("0001_initial", "pass", reverse="None")},
        "orders: a one-way data migration",
    )
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["failed_step"] == "validate", (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    assert "irreversible migration(s) orders.0002_once" in doc["error"]
    assert state(fresh_host) == before
    doc, r = deploy(fresh_host, "--allow-irreversible")
    assert r.returncode == 0 and doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]


def test_a_second_deploy_is_refused_while_one_runs(fresh_host):
    fresh_host.sh(
        "mkdir -p /var/lib/cynow-ops/deploy.lock && "
        "echo 'alice@laptop since 2026-11-27T10:00:00+00:00' > "
        "/var/lib/cynow-ops/deploy.lock/owner"
    )
    push_commit(fresh_host, {"README": "x\n"}, "docs")
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["result"] == "refused", r.stdout[-3000:] + r.stderr[-2000:]
    assert "another deploy holds the lock (alice@laptop since" in doc["error"]
    assert fresh_host.sh("cat /var/lib/cynow-ops/deploy.lock/owner").stdout.startswith("alice")


def test_dry_run_changes_nothing(fresh_host):
    before = state(fresh_host)
    push_commit(
        fresh_host,
        {"orders/models.py": NOTE_MODEL, "orders/migrations/0002_order_note.py": NOTE_MIGRATION},
        "orders: notes",
    )
    doc, r = deploy(fresh_host, "--dry-run")
    assert r.returncode == 0 and doc["result"] == "planned", r.stdout[-3000:] + r.stderr[-2000:]
    details = " ".join(s["detail"] for s in doc["steps"])
    assert "migrations to apply: orders/migrations/0002_order_note.py" in details
    assert "requirements: unchanged" in details
    assert state(fresh_host) == before and history(fresh_host) == []


def test_killed_client_leaves_a_recoverable_deploy(fresh_host):
    before = state(fresh_host)
    push_commit(
        fresh_host,
        {
            "orders/models.py": NOTE_MODEL,
            "orders/migrations/0002_order_note.py": NOTE_MIGRATION,
            "orders/migrations/0003_slow.py": run_python(
                "0002_order_note", "import time; time.sleep(60)"
            ),
        },
        "orders: notes and a slow data migration",
    )
    cmd = fab_argv(
        *lab_args(fresh_host),
        "deploy",
        "--target",
        "lab",
        "--json",
    )
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ)
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the slow migration runs
            if "manage.py migrate" in fresh_host.sh("pgrep -af manage.py || true").stdout:
                break
            time.sleep(0.3)
        else:
            pytest.fail("the deploy never reached migrate")
    finally:
        proc.send_signal(signal.SIGKILL)  # the laptop closed: the process this test started
        proc.wait()
    # The server-side step ends with its client: the 60 s migration is stopped, not left to
    # race whatever comes next.
    fresh_host.sh(
        "for i in $(seq 1 150); do pgrep -f 'manage.py migrate' >/dev/null || exit 0; "
        "sleep 0.1; done; echo 'migrate still runs' >&2; exit 1"
    )
    fresh_host.sh("sleep 4")  # past the lab's lock grace (3 s)
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and "another deploy holds the lock" in doc["error"], (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    assert "interrupted" in doc["error"] and "fab rollback" in doc["error"]
    doc, r = fab_json(*lab_args(fresh_host), "rollback", "--target", "lab")
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(fresh_host) == before and get(fresh_host) == 200


def test_origin_unreachable_is_refused(fresh_host):
    before = state(fresh_host)
    push_commit(fresh_host, {"README": "x\n"}, "docs")
    fresh_host.sh("mv /srv/git/cynow.git /srv/git/cynow.git.away")  # origin gone
    try:
        doc, r = deploy(fresh_host)
    finally:
        fresh_host.sh("mv /srv/git/cynow.git.away /srv/git/cynow.git")
    assert r.returncode == 1 and doc["result"] == "refused" and doc["failed_step"] == "fetch", (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    assert "cannot fetch origin main" in doc["error"]
    assert state(fresh_host) == before
    assert history(fresh_host)[-1]["result"] == "refused"


def test_collectstatic_failing_rolls_back(fresh_host):
    # The static tree belongs to root (collectstatic once run with sudo): a new file cannot
    # be copied in.
    fresh_host.sh(f"chown -R root:root {APP}/static && chmod -R 755 {APP}/static")
    before = state(fresh_host)
    push_commit(fresh_host, {"orders/static/orders/new.css": "p {}\n"}, "orders: new.css")
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["failed_step"] == "collectstatic", (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    assert doc["result"] == "rolled-back"
    assert state(fresh_host) == before and get(fresh_host) == 200


def test_workers_failing_to_boot_after_the_reload_roll_back(fresh_host):
    before = state(fresh_host)
    # gunicorn reads ./gunicorn.conf.py at boot: a hook that fails makes every new worker fail
    # after the reload, although the app itself imports fine (validate passes).
    conf = "def post_worker_init(worker):\n    raise RuntimeError('worker init failed')\n"
    push_commit(fresh_host, {"gunicorn.conf.py": conf}, "gunicorn: worker hook")
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["failed_step"] == "health", r.stdout[-3000:] + r.stderr[-2000:]
    assert doc["result"] == "rolled-back"
    assert state(fresh_host) == before and get(fresh_host) == 200


def test_requirements_changed_are_restored_on_failure(fresh_host):
    before = state(fresh_host)
    venv_before = fresh_host.sh(f"{APP}/venv/bin/pip freeze --all").stdout
    push_commit(
        fresh_host,
        {
            "requirements.txt": "Django==4.2.30\ngunicorn==23.0.0\nMarkdown==3.7\n",
            "orders/models.py": NOTE_MODEL,
            "orders/migrations/0002_order_note.py": NOTE_MIGRATION,
            "orders/migrations/0003_fill.py": run_python(
                "0002_order_note", 'raise RuntimeError("data migration failed")'
            ),
        },
        "orders: markdown notes, and a broken data migration",
    )
    doc, r = deploy(fresh_host)
    assert r.returncode == 1 and doc["failed_step"] == "migrate", (
        r.stdout[-3000:] + r.stderr[-2000:]
    )
    steps = {s["step"]: s for s in doc["steps"] + doc["undo"]}
    assert steps["requirements"]["detail"] == "installed requirements.txt"
    # The venv exactly as before: the old versions, and the package the new file added gone.
    assert steps["undo requirements"]["detail"].endswith("; removed markdown)")
    assert state(fresh_host) == before and get(fresh_host) == 200
    pins = fresh_host.sh(f"{APP}/venv/bin/pip freeze --all").stdout
    assert pins == venv_before
    assert "Markdown" not in pins and "Django==4.2.30" in pins and "gunicorn==23.0.0" in pins


def test_rollback_of_a_deploy_that_changed_requirements_restores_the_venv(fresh_host):
    venv_before = fresh_host.sh(f"{APP}/venv/bin/pip freeze --all").stdout
    push_commit(
        fresh_host,
        {"requirements.txt": "Django==4.2.30\ngunicorn==23.0.0\nMarkdown==3.7\n"},
        "requirements: markdown",
    )
    doc, r = deploy(fresh_host)
    assert r.returncode == 0 and doc["result"] == "deployed", r.stdout + r.stderr
    assert "Markdown==3.7" in fresh_host.sh(f"{APP}/venv/bin/pip freeze").stdout
    doc, r = fab_json(*lab_args(fresh_host), "rollback", "--target", "lab")
    assert r.returncode == 0, r.stdout + r.stderr
    undo = next(s for s in doc["steps"] if s["step"] == "undo requirements")
    assert undo["detail"].endswith("; removed markdown)")
    assert fresh_host.sh(f"{APP}/venv/bin/pip freeze --all").stdout == venv_before
    assert get(fresh_host) == 200
