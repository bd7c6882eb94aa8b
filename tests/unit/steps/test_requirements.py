from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.steps.code import update_code
from tasks.steps.context import StepFailed
from tasks.steps.fetch import fetch
from tasks.steps.lock import take_lock
from tasks.steps.preflight import preflight
from tasks.steps.requirements import install_requirements, restore_requirements
from tests.unit.steps.fakes import commit, fake_pip, git


def test_requirements_restore_returns_the_venv_exactly(server):
    ctx, remote, dev, app = server
    db = fake_pip(ctx, "Django==4.2.30\npip==23.0\n")
    new = "Django==5.0\nMarkdown==3.7\n"
    commit(dev, {"requirements.txt": new}, "markdown")
    take_lock(ctx)
    preflight(ctx)
    fetch(ctx)
    assert ctx.requirements_changed
    update_code(ctx)
    remote.sent.clear()
    assert install_requirements(ctx) == "installed requirements.txt"
    assert len(remote.sent) == 3  # the freeze, written into the lock, then the install
    assert ctx.venv_before == ["Django==4.2.30", "pip==23.0"]
    state = json.loads((Path(ctx.s.state_dir) / "deploy.lock" / "state").read_text())
    assert state["venv_before"] == ctx.venv_before
    assert sorted(db.read_text().split()) == ["Django==5.0", "Markdown==3.7", "pip==23.0"]
    remote.sent.clear()
    detail = restore_requirements(ctx)
    assert detail == "venv restored (2 packages; removed markdown)"
    assert sorted(db.read_text().split()) == ["Django==4.2.30", "pip==23.0"]
    assert len(remote.sent) == 2  # reinstall + freeze, then the uninstall


def test_a_failed_install_is_recorded_first_so_its_undo_can_run(server):
    ctx, remote, dev, app = server
    db = fake_pip(ctx, "Django==4.2.30\n")
    commit(dev, {"requirements.txt": "Broken==1.0\nfail\n"}, "broken requirements")
    take_lock(ctx)
    preflight(ctx)
    fetch(ctx)
    update_code(ctx)
    with pytest.raises(StepFailed, match="pip install -r requirements.txt failed"):
        install_requirements(ctx)
    assert ctx.venv_before == ["Django==4.2.30"]
    assert "Broken==1.0" in db.read_text()  # half-installed
    restore_requirements(ctx)
    assert db.read_text().split() == ["Django==4.2.30"]


def test_an_old_record_without_a_freeze_reinstalls_the_old_file(server):
    ctx, remote, dev, app = server
    db = fake_pip(ctx, "")
    old = git(app, "rev-parse", "HEAD")
    commit(dev, {"requirements.txt": "Django==4.2.30\n"}, "pin")
    ctx.old_commit, ctx.requirements_changed = old, True
    (app / "requirements.txt").write_text("Django==4.2.30\n")
    assert restore_requirements(ctx) == "old requirements reinstalled"
    assert db.read_text().split() == ["Django"]  # the old commit's file, from git
