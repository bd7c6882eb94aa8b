"""Refuse a new commit that lacks a file the settings require."""

from __future__ import annotations

from tasks.git import git
from tasks.shell import say
from tasks.steps.context import Ctx, Refused, Step


def files_in_commit_script(project_dir: str, commit: str, files: list[str]) -> str:
    """`present FILE` or `missing FILE` for each file, as a commit has it (one `git cat-file -e`
    each, in one shell)."""
    return (
        "\n".join(
            f"if {git(project_dir, 'cat-file', '-e', f'{commit}:{f}')} 2>/dev/null; "
            f"then {say('present', f)}; else {say('missing', f)}; fi"
            for f in files
        )
        or "true"
    )


def required_files(ctx: Ctx) -> str:
    files = ctx.s.required_files
    if not files:
        return "none required"
    out = ctx.run(
        files_in_commit_script(ctx.s.project_dir, ctx.new_commit, files), app=True, ok=False
    )
    # Only a file the script saw counts as present: whatever else happened, it is missing.
    present = out.stdout.splitlines()
    missing = [f for f in files if f"present {f}" not in present]
    if missing:
        raise Refused("the new commit lacks " + ", ".join(missing))
    return ", ".join(files)


STEP = Step("required files", required_files)
