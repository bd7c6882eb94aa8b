from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tasks.steps.context import Refused, StepFailed
from tasks.steps.lock import take_lock
from tasks.steps.preflight import preflight
from tests.unit.steps.fakes import git


def test_preflight_is_one_script_then_the_state_in_the_lock(server):
    ctx, remote, dev, app = server
    take_lock(ctx)
    remote.sent.clear()
    detail = preflight(ctx)
    assert ctx.old_commit == git(app, "rev-parse", "HEAD")
    assert detail.startswith(f"at {ctx.old_commit[:12]}")
    # Under the lock every command is a supervised step run by root; the app's script goes
    # through sudo to the app user inside it. Two round trips: the script, the state write.
    assert [root for _, root, _ in remote.sent] == [True, True]
    assert all("setsid -w sh -c" in cmd for cmd, _, _ in remote.sent)
    assert ": as-service cynow; " in remote.sent[0][0] and "as-service" not in remote.sent[1][0]
    state = json.loads((Path(ctx.s.state_dir) / "deploy.lock" / "state").read_text())
    assert state["from"] == ctx.old_commit and state["by"] == "alice@laptop"


def test_preflight_records_the_state_of_a_server_whose_urls_do_not_import(server):
    """The guide's own 502: the URLconf imports a module that is missing. The state comes from
    the migration table all the same (it once came back empty, and a rollback then migrated
    every app to zero)."""
    ctx, remote, dev, app = server
    (app / "config" / "urls.py").write_text("from orders import missing_module  # noqa\n")
    git(app, "commit", "-q", "-am", "urls: import a module that is not there")
    take_lock(ctx)
    preflight(ctx)
    assert ctx.migrations_before == {"contenttypes": "0002_remove_content_type_name"}
    assert ctx.applied_before["contenttypes"] == [
        "0001_initial",
        "0002_remove_content_type_name",
    ]


def test_preflight_refuses_when_the_state_cannot_be_read(server):
    ctx, remote, dev, app = server
    (app / "config" / "settings.py").write_text("raise RuntimeError('settings broken')\n")
    take_lock(ctx)
    with pytest.raises(Refused, match="cannot read which migrations are applied") as e:
        preflight(ctx)
    assert "settings broken" in e.value.message
    state = Path(ctx.s.state_dir) / "deploy.lock" / "state"
    assert not state.exists()  # nothing recorded: nothing a rollback could act on


def test_preflight_refuses_uncommitted_changes_before_writing_anything(server):
    ctx, remote, dev, app = server
    (app / "orders" / "urls.py").write_text("edited on the server\n")
    with pytest.raises(Refused, match="uncommitted changes") as e:
        preflight(ctx)
    assert "orders/urls.py" in e.value.message
    assert len(remote.sent) == 1


def test_preflight_says_which_command_failed(server):
    ctx, remote, dev, app = server
    subprocess.run(["rm", "-rf", str(app / ".git")], check=True)
    with pytest.raises(StepFailed, match=r"reading the deployed commit failed \(exit 128\)"):
        preflight(ctx)


def test_preflight_refuses_a_database_nothing_was_migrated_on(server, tmp_path):
    """The settings the tool ran with name an empty database (the service's path came from an
    environment the tool did not see): refused before any change, never migrated."""
    ctx, remote, dev, app = server
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")  # an existing file with no table: every app at zero
    settings = app / "config" / "settings.py"
    settings.write_text(
        settings.read_text().replace(repr(str(tmp_path / "db.sqlite3")), repr(str(empty)))
    )
    take_lock(ctx)
    with pytest.raises(Refused, match=r"empty\.sqlite3\) has no migration applied for any app"):
        preflight(ctx)
    assert empty.read_bytes() == b""
    ctx.allow_empty_database = True  # a real first deploy says so
    assert preflight(ctx).startswith("at ")


def test_preflight_never_creates_the_sqlite_file_it_was_told_about(server, tmp_path):
    ctx, remote, dev, app = server
    gone = tmp_path / "elsewhere" / "db.sqlite3"
    gone.parent.mkdir()
    settings = app / "config" / "settings.py"
    settings.write_text(
        settings.read_text().replace(repr(str(tmp_path / "db.sqlite3")), repr(str(gone)))
    )
    take_lock(ctx)
    with pytest.raises(Refused, match=r"cannot read which migrations.*does not exist"):
        preflight(ctx)
    assert not gone.exists()


def test_preflight_refuses_initial_migrations_of_apps_the_server_already_runs(server):
    """The probe, run for real on the sqlite project: contenttypes is migrated, but the
    settings the tool ran with also have auth, at zero there. The service has been running
    this code, so its database has auth's tables: this one is not the service's."""
    ctx, remote, dev, app = server
    settings = app / "config" / "settings.py"
    settings.write_text(
        settings.read_text().replace(
            '["django.contrib.contenttypes"]',
            '["django.contrib.contenttypes", "django.contrib.auth"]',
        )
    )
    take_lock(ctx)
    with pytest.raises(Refused, match="not looking at the service's database") as e:
        preflight(ctx)
    # Only the first migration names the app as installed elsewhere; auth's later ones follow.
    assert "(auth.0001_initial)" in e.value.message
    assert not (Path(ctx.s.state_dir) / "deploy.lock" / "state").exists()
    ctx.allow_empty_database = True  # the user says these apps really were never migrated
    assert preflight(ctx).startswith("at ")


def test_only_apps_of_the_deployed_code_at_their_first_migration_are_the_red_flag():
    from tasks.steps.preflight import installed_at_initial

    state = {"contenttypes": "0002_remove_content_type_name", "orders": "0003_total"}
    plan = [
        {"app": "orders", "name": "0004_note", "initial": False},
        {"app": "invoices", "name": "0001_initial", "initial": True},  # the release's new app
    ]
    assert installed_at_initial(plan, state) == []
    plan.append({"app": "orders", "name": "0001_initial", "initial": True})
    assert installed_at_initial(plan, state) == ["orders.0001_initial"]
    # Nothing migrated at all: empty_database's refusal, with its own words.
    assert installed_at_initial(plan, {"contenttypes": "zero", "orders": "zero"}) == []


def test_validate_fails_when_the_new_code_names_a_database_without_the_old_apps(
    server, tmp_path, monkeypatch
):
    """After the code step: the settings now name a database where an app the old code had
    (contenttypes, migrated before) is back at its first migration."""
    import os

    from tasks.steps.validate import validate

    ctx, remote, dev, app = server
    take_lock(ctx)
    preflight(ctx)
    bin_dir = tmp_path / "fake-systemd"
    bin_dir.mkdir()
    exec_start = "{ path=/v/gunicorn ; argv[]=/v/gunicorn config.wsgi:application ; x=y }"
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\necho '{exec_start}'\n")
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    other = tmp_path / "other.sqlite3"
    other.write_bytes(b"")
    settings = app / "config" / "settings.py"
    settings.write_text(
        settings.read_text().replace(repr(str(tmp_path / "db.sqlite3")), repr(str(other)))
    )
    with pytest.raises(StepFailed, match="not looking at the service's database") as e:
        validate(ctx)
    assert "contenttypes.0001_initial" in e.value.message
