"""Install the new requirements when they changed (the venv frozen first); undo: the venv as
it was."""

from __future__ import annotations

from tasks import app, git, parse
from tasks.steps.context import Ctx, Step, StepFailed


def install_requirements(ctx: Ctx) -> str:
    if not ctx.requirements_changed:
        return "unchanged"
    s = ctx.s
    frozen = ctx.run(app.pip_freeze(s.venv), app=True, timeout=120)
    ctx.venv_before = frozen.stdout.splitlines()
    # Recorded before pip changes anything: a half-done install is undone from this freeze,
    # also by a `fab rollback` after a deploy interrupted during the install.
    ctx.save_state()
    out = ctx.run(
        app.pip_install(s.project_dir, s.venv, s.requirements), app=True, timeout=900, ok=False
    )
    if not out.ok:
        tail = (out.stdout + out.stderr).strip().splitlines()[-8:]
        raise StepFailed(
            f"pip install -r {s.requirements} failed (exit {out.exited})", "\n".join(tail)
        )
    return f"installed {s.requirements}"


def restore_requirements(ctx: Ctx) -> str:
    """The venv as it was: the recorded freeze installed again, then every package the new
    requirements added removed."""
    if not ctx.requirements_changed:
        return "unchanged"
    if not ctx.venv_before:
        return restore_old_file(ctx)  # a deploy recorded before freezes were kept
    s = ctx.s
    parts = ctx.script(app.venv_restore(s.venv, ctx.venv_before), app=True, timeout=900)
    parts.need("install", "reinstalling the recorded packages")
    added = parse.added_packages(ctx.venv_before, parts.need("freeze", "pip freeze").lines)
    if added:
        ctx.run(app.pip_uninstall(s.venv, added), app=True, timeout=300)
    return f"venv restored ({len(ctx.venv_before)} packages" + (
        f"; removed {', '.join(added)})" if added else ")"
    )


def restore_old_file(ctx: Ctx) -> str:
    # The old file, from git: the checkout may still hold the new one at this point.
    old = f"{ctx.old_commit}:{ctx.s.requirements}"
    ctx.run(
        app.pip_install_from(ctx.s.venv, git.git(ctx.s.project_dir, "show", old)),
        app=True,
        timeout=900,
    )
    return "old requirements reinstalled"


STEP = Step("requirements", install_requirements, restore_requirements)
