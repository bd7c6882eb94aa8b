from __future__ import annotations

from dataclasses import replace

import pytest

from tasks.steps.context import Refused
from tasks.steps.required_files import files_in_commit_script, required_files
from tests.unit.steps.fakes import LocalRemote, commit, git, replace_ctx


def test_required_files_one_script_for_all_files(server):
    ctx, remote, dev, app = server
    ctx.s = replace(ctx.s, required_files=["orders/urls.py", "docs/a file; $(id).txt", "reqs"])
    ctx.new_commit = commit(dev, {"docs/a file; $(id).txt": "x\n"}, "docs")
    git(app, "fetch", "-q", "origin")
    with pytest.raises(Refused, match=r"the new commit lacks reqs$"):
        required_files(ctx)
    assert len(remote.sent) == 1
    ctx.s = replace(ctx.s, required_files=["orders/urls.py", "docs/a file; $(id).txt"])
    assert required_files(ctx) == "orders/urls.py, docs/a file; $(id).txt"
    ctx.s = replace(ctx.s, required_files=[])
    assert required_files(ctx) == "none required" and len(remote.sent) == 2


def test_a_file_the_script_did_not_see_counts_as_missing(server):
    ctx, remote, dev, app = server
    ctx.new_commit = git(app, "rev-parse", "HEAD")
    with pytest.raises(Refused, match="lacks orders/urls.py"):
        required_files(replace_ctx(ctx, project_dir=str(app.parent / "no such checkout")))

    class CutOff(LocalRemote):  # the output lost on the way
        def run(self, command, **kw):
            return replace(super().run(command, **kw), stdout="")

    ctx.remote = CutOff(ctx.s)
    with pytest.raises(Refused, match="lacks orders/urls.py"):
        required_files(ctx)


def test_files_in_commit_script_quotes_what_it_interpolates():
    s = files_in_commit_script("/p", "abc", ["a b; $(id)"])
    assert "cat-file -e 'abc:a b; $(id)'" in s and "printf '%s\\n' 'missing a b; $(id)'" in s
