"""Apply the planned migrations; undo: each app the deploy migrated back to its recorded
migration."""

from __future__ import annotations

from tasks import app, snapshots
from tasks.shell import sequence
from tasks.steps.context import Ctx, Step, StepFailed
from tasks.steps.probe import probe
from tasks.steps.snapshot import snap_now


def unmigrate_script(project_dir: str, python: str, targets: list[tuple[str, str]]) -> str:
    """`manage.py migrate APP TARGET` for each (app, target) in order, in one round trip; stops
    at the first that fails. Parts are named by position ("0", "1", …)."""
    return sequence(
        {
            str(i): app.migrate_to(project_dir, python, name_app, name)
            for i, (name_app, name) in enumerate(targets)
        }
    )


def migrate(ctx: Ctx) -> str:
    if not ctx.plan:
        return "nothing to apply"
    ctx.manage(*app.MIGRATE)
    return f"applied {len(ctx.plan)}"


def unmigrate(ctx: Ctx) -> str:
    """The apps the deploy migrated back to their recorded migration (see reverse_targets); the
    new code is still checked out, so the migration files to reverse are there. A `fab
    rollback` takes a snapshot first: writes made since the deploy live in these tables."""
    p = probe(ctx)
    if "state" not in p:
        e = p.get("state_error") or {}
        raise StepFailed(
            "cannot read which migrations are applied: nothing reversed "
            f"({e.get('type', 'no report')}: {e.get('message', '')})"
        )
    back = reverse_targets(ctx.migrations_before, ctx.plan, p["state"], p.get("applied", {}))
    if not back:
        return "nothing to reverse"
    note = ""
    if ctx.command == "rollback":
        note = "; snapshot " + snapshots.summary(snap_now(ctx, f"before rollback of {ctx.undoes}"))
    parts = ctx.script(unmigrate_script(ctx.s.project_dir, ctx.s.python, back), app=True)
    for i, (name_app, target) in enumerate(back):
        parts.need(str(i), f"manage.py migrate {name_app} {target}")
    return "; ".join(f"{name_app} -> {target}" for name_app, target in back) + note


def reverse_targets(before: dict, plan: list, now_state: dict, now_applied: dict) -> list:
    """(app, target) for each app whose migration state differs from the one recorded before
    the deploy, newest apps first. An app without a record goes to `zero` only when every
    migration applied to it now is one this deploy applied (the deploy introduced it); any other
    unrecorded app refuses the whole undo, reversing nothing: an unknown state is never zero."""
    planned = {(m["app"], m["name"]) for m in plan}
    back, unknown = [], []
    for name_app in sorted(now_state, reverse=True):
        if name_app in before:
            if now_state[name_app] != before[name_app]:
                back.append((name_app, before[name_app]))
        elif now_state[name_app] == "zero":
            continue
        elif now_applied.get(name_app) and all(
            (name_app, n) in planned for n in now_applied[name_app]
        ):
            back.append((name_app, "zero"))
        else:
            unknown.append(name_app)
    if unknown:
        raise StepFailed(
            "the migration state before the deploy was not recorded for "
            + ", ".join(sorted(unknown))
            + ": nothing reversed (migrating them to zero would drop their tables). Restore a "
            "snapshot instead (`fab backup --list`, `fab restore ID`) or migrate by hand"
        )
    return back


STEP = Step("migrate", migrate, unmigrate)
