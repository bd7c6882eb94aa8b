from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.steps.context import Parts, Refused
from tasks.steps.fetch import fetch, fetch_script
from tasks.steps.lock import take_lock
from tasks.steps.preflight import preflight
from tests.unit.steps.fakes import commit, git


def test_fetch_reads_the_new_commit_its_log_and_files_in_one_script(server):
    ctx, remote, dev, app = server
    take_lock(ctx)
    preflight(ctx)
    new = commit(dev, {"requirements.txt": "Django\nMarkdown\n"}, "markdown")
    remote.sent.clear()
    detail = fetch(ctx)
    assert ctx.new_commit == new
    assert [c.split(" ", 1)[1] for c in ctx.commits] == ["markdown"]
    assert ctx.requirements_changed
    assert detail.startswith("1 new commit(s): ")
    assert [root for _, root, _ in remote.sent] == [True, True]
    assert ": as-service cynow; " in remote.sent[0][0]
    state = json.loads((Path(ctx.s.state_dir) / "deploy.lock" / "state").read_text())
    assert state["to"] == new and state["requirements_changed"] is True
    # The subjects go into the lock's state and the history (`fab history` shows them).
    assert ctx.new_subject == "markdown" and state["to_subject"] == "markdown"
    assert ctx.old_subject == git(app, "log", "-1", "--format=%s") != ""
    assert state["from_subject"] == ctx.old_subject
    # The checkout itself did not move.
    assert git(app, "rev-parse", "HEAD") == ctx.old_commit


def test_fetch_up_to_date_writes_nothing(server):
    ctx, remote, dev, app = server
    ctx.old_commit = git(app, "rev-parse", "HEAD")
    assert fetch(ctx) == "already up to date"
    assert len(remote.sent) == 1


def test_fetch_refuses_a_diverged_history(server):
    ctx, remote, dev, app = server
    git(app, "commit", "-q", "--allow-empty", "-m", "hotfix made on the server")
    ctx.old_commit = git(app, "rev-parse", "HEAD")
    commit(dev, {"README": "x\n"}, "docs")
    with pytest.raises(Refused, match="has diverged from the deployed commit"):
        fetch(ctx)
    assert len(remote.sent) == 1


def test_fetch_refuses_an_unreachable_origin_and_runs_nothing_after_the_fetch(server):
    ctx, remote, dev, app = server
    ctx.old_commit = git(app, "rev-parse", "HEAD")
    git(app, "remote", "set-url", "origin", str(app.parent / "gone.git"))
    parts = Parts(remote.run(fetch_script(str(app), "origin", "main", "x" * 40)))
    assert parts.get("fetch").exited != 0 and list(parts.parts) == ["fetch"]
    with pytest.raises(Refused, match="cannot fetch origin main: and the repository exists"):
        fetch(ctx)


def test_fetch_script_quotes_what_it_interpolates():
    s = fetch_script("/srv/my app", "origin", "main", "abc")
    assert "-C '/srv/my app' fetch --quiet --no-tags origin +refs/heads/main:refs/remotes/" in s
