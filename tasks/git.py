"""git in the checkout (a pure builder)."""

from __future__ import annotations

from tasks.shell import join


def git(project_dir: str, *args: str) -> str:
    """git in the checkout. Never with `safe.directory`: git runs hooks and programs a
    repository's .git/config names (core.fsmonitor, gpg.program...), so its refusal to work in
    a repository another user owns is what keeps root (or the operator) from running the app
    user's code. Run it as the checkout's owner instead (shell.as_owner, or the app identity)."""
    return join("git", "-C", project_dir, *args)
