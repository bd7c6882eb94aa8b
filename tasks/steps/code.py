"""Fast-forward the checkout to the new commit; undo: reset it to the old one."""

from __future__ import annotations

from tasks.steps.context import Ctx, Step


def update_code(ctx: Ctx) -> str:
    ctx.git("merge", "--ff-only", "--quiet", ctx.new_commit)
    return f"{ctx.old_commit[:12]} -> {ctx.new_commit[:12]}"


def restore_code(ctx: Ctx) -> str:
    ctx.git("reset", "--hard", "--quiet", ctx.old_commit)
    return f"back at {ctx.old_commit[:12]}"


STEP = Step("code", update_code, restore_code)
