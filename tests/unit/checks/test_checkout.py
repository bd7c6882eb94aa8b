"""Guide step 9 (tasks/checks/checkout.py): the deployed commit against origin/main, its
command run for real in a shell on git repositories, then judged."""

from __future__ import annotations

import subprocess

import pytest

from tasks import shell
from tasks.checks import checkout
from tasks.checks.base import Facts
from tasks.settings import resolve

ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def git(cwd, *args) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=ENV | {"PATH": "/usr/bin:/bin"},
        check=True,
        text=True,
        capture_output=True,
    ).stdout.strip()


@pytest.fixture
def repos(tmp_path):
    """origin (bare), a developer's clone that pushes, and the server's checkout."""
    origin, dev, app = tmp_path / "origin.git", tmp_path / "dev", tmp_path / "the app"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(dev))
    git(dev, "checkout", "-q", "-b", "main")
    git(dev, "commit", "-q", "--allow-empty", "-m", "first")
    git(dev, "push", "-q", "origin", "main")
    git(tmp_path, "clone", "-q", str(origin), str(app))
    return dev, app, resolve({"project_dir": str(app)})


def read(s) -> dict:
    out = subprocess.run(
        ["sh", "-c", checkout.code_command(s)],
        env=ENV | {"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    return checkout.parse_code(shell.read_batch(out.stdout))


def test_up_to_date_and_clean(repos):
    _dev, app, s = repos
    code = read(s)
    assert code["head"] == git(app, "rev-parse", "HEAD") and code["behind"] == 0
    origin, worktree = checkout.evaluate(Facts(code=code), s)
    assert origin.status == "ok" and origin.summary.startswith("up to date at")
    assert worktree.status == "ok"


def test_behind_names_the_new_commits_and_leaves_the_checkout_as_it_was(repos):
    dev, app, s = repos
    git(dev, "commit", "-q", "--allow-empty", "-m", "orders: add the forgotten urls.py")
    git(dev, "push", "-q", "origin", "main")
    before = git(app, "for-each-ref")
    code = read(s)
    assert code["behind"] == 1 and code["new_commits"][0].endswith("add the forgotten urls.py")
    origin, _ = checkout.evaluate(Facts(code=code), s)
    assert origin.status == "warn" and "1 commit(s) behind origin/main" in origin.summary
    # The fetch stores objects only: no ref moves, no FETCH_HEAD.
    assert git(app, "for-each-ref") == before
    assert not (app / ".git" / "FETCH_HEAD").exists()


def test_a_changed_file_on_the_server_is_a_warning(repos):
    _dev, app, s = repos
    (app / "hotfix.py").write_text("x = 1\n")
    _, worktree = checkout.evaluate(Facts(code=read(s)), s)
    assert worktree.status == "warn" and worktree.evidence == ["?? hotfix.py"]


def test_not_a_checkout_fails(tmp_path):
    s = resolve({"project_dir": str(tmp_path)})
    origin, _ = checkout.evaluate(Facts(code=read(s)), s)
    assert origin.status == "fail" and "is not a git checkout" in origin.summary


def test_an_unreachable_origin_is_a_warning_not_a_verdict(repos):
    _dev, app, s = repos
    git(app, "remote", "set-url", "origin", str(app.parent / "gone.git"))
    origin, _ = checkout.evaluate(Facts(code=read(s)), s)
    assert origin.status == "warn" and origin.summary.startswith("could not read origin/main")
