"""Load the new code (WSGI import, manage.py check), plan the migrations, refuse the ones that
lose data or cannot be reversed unless allowed."""

from __future__ import annotations

from tasks.steps.context import Ctx, Step, StepFailed
from tasks.steps.preflight import installed_at_initial, wrong_database
from tasks.steps.probe import probe


def validate(ctx: Ctx) -> str:
    p = probe(ctx)
    if "error" in p:
        e = p["error"]
        raise StepFailed(
            f"the new code does not load: {e['type']}: {e['message']}",
            "\n".join(e.get("traceback", [])),
        )
    if p.get("check"):
        raise StepFailed("manage.py check: " + p["check"][0], "\n".join(p["check"]))
    if "plan" not in p:
        e = p.get("plan_error") or {}
        raise StepFailed(
            f"cannot plan the migrations: {e.get('type', 'no report')}: {e.get('message', '')}",
            "\n".join(e.get("traceback", [])),
        )
    ctx.plan = p["plan"]
    # The new code on the database it names: an app the old code had back at its first
    # migration means the release's settings name another database.
    again = installed_at_initial(ctx.plan, ctx.migrations_before)
    if again and not ctx.allow_empty_database:
        raise StepFailed(wrong_database(again, p.get("database") or {}))
    ctx.save_state()  # the plan: what an undo may reverse, and only that
    one_way = risky(ctx.plan, "irreversible")
    if one_way and not ctx.allow_irreversible:
        raise StepFailed(
            "irreversible migration(s) " + ", ".join(one_way) + ": a rollback could "
            "not undo them; deploy with --allow-irreversible if that is accepted",
            "\n".join(risk_lines(ctx.plan, "irreversible")),
        )
    lossy = risky(ctx.plan, "lossy")
    if lossy and not ctx.allow_data_loss:
        raise StepFailed(
            "migration(s) that lose data "
            + ", ".join(lossy)
            + ": "
            + "; ".join(risk_lines(ctx.plan, "lossy"))
            + ". Deploy with --allow-data-loss if that is accepted (a snapshot is taken "
            "first; `fab rollback --restore-db` returns to it)"
        )
    return (
        f"check ok; {len(ctx.plan)} migration(s) to apply: "
        + ", ".join(f"{m['app']}.{m['name']}" for m in ctx.plan)
        if ctx.plan
        else "check ok; no migration to apply"
    )


def risky(plan: list, kind: str) -> list[str]:
    """The planned migrations of `kind` (lossy or irreversible), as app.name."""
    return [f"{m['app']}.{m['name']}" for m in plan if m.get("kind") == kind]


def risk_lines(plan: list, kind: str) -> list[str]:
    return [
        f"{m['app']}.{m['name']} {op['op']}: {op['what']}"
        for m in plan
        if m.get("kind") == kind
        for op in m.get("ops", [])
        if op.get("kind") == kind
    ]


STEP = Step("validate", validate)
