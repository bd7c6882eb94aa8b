"""git in the checkout (a pure builder)."""

from __future__ import annotations

from tasks.shell import join


def git(project_dir: str, *args: str) -> str:
    """git in the checkout, readable by any user (safe.directory: reading is harmless)."""
    return join("git", "-c", f"safe.directory={project_dir}", "-C", project_dir, *args)
