"""Read the deployed commit, refuse a dirty checkout or a full disk, record the migrations."""

from __future__ import annotations

from tasks.git import git
from tasks.shell import q, sequence
from tasks.steps.context import Ctx, Refused, Step
from tasks.steps.probe import deploy_probe, read_probe

MIN_FREE_KB = 200 * 1024


def preflight_script(project_dir: str, python: str, wsgi: str, unit: str) -> str:
    """The deploy's preflight in one round trip, as the app user: the deployed commit, changes
    not committed, the free space under the checkout, and the Django probe (the migration state
    to record)."""
    return sequence(
        {
            "head": git(project_dir, "rev-parse", "HEAD"),
            "subject": git(project_dir, "log", "-1", "--format=%s", "HEAD"),
            "dirty": git(
                project_dir, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"
            ),
            "free": f"df --output=avail -k {q(project_dir)} | tail -n 1",
            "probe": deploy_probe(project_dir, python, wsgi, unit),
        }
    )


def preflight(ctx: Ctx) -> str:
    s = ctx.s
    parts = ctx.script(preflight_script(s.project_dir, s.python, s.wsgi, s.gunicorn_unit), app=True)
    ctx.old_commit = parts.need("head", "reading the deployed commit").stdout.strip()
    ctx.old_subject = parts.get("subject").stdout.strip()  # for the history; may be unknown
    dirty = parts.need("dirty", "git status").stdout.strip()
    if dirty:
        raise Refused(
            "the checkout has uncommitted changes; commit or discard them first:\n" + dirty
        )
    free = parts.need("free", "df").stdout.strip()
    if free.isdigit() and int(free) < MIN_FREE_KB:
        raise Refused(f"only {int(free) // 1024} MB free under {s.project_dir}")
    p = read_probe(parts.get("probe").stdout)
    if "state" not in p:
        e = p.get("state_error") or {}
        raise Refused(
            "cannot read which migrations are applied, so a rollback could not know what to "
            f"reverse: {e.get('type', 'no report')}: {e.get('message', '')}".rstrip(": "),
            "\n".join(e.get("traceback", [])),
        )
    ctx.migrations_before, ctx.applied_before = p["state"], p.get("applied", {})
    if empty_database(ctx.migrations_before) and not ctx.allow_empty_database:
        db = p.get("database") or {}
        raise Refused(
            f"the database the app's settings name ({db.get('name') or '?'}) has no migration "
            "applied for any app, though this code has been deployed: it is not the database "
            "the service has been using (a setting from the environment the tool cannot see?). "
            "Nothing changed; check `fab info`, or deploy with --allow-empty-database if this "
            "really is a new, empty database"
        )
    again = installed_at_initial(p.get("plan") or [], ctx.migrations_before)
    if again and not ctx.allow_empty_database:
        raise Refused(wrong_database(again, p.get("database") or {}))
    ctx.save_state()
    return f"at {ctx.old_commit[:12]}, migrations recorded for {len(ctx.migrations_before)} apps"


def empty_database(state: dict) -> bool:
    """Every app the deployed code has is at "zero": a database nothing was ever migrated on.
    On a server that runs this code, that is a database other than the service's."""
    return bool(state) and all(v == "zero" for v in state.values())


def installed_at_initial(plan: list, state: dict) -> list[str]:
    """The planned initial migrations (app.name) of apps the deployed code already has (the
    keys of `state`, read before the new code) on a database where some app is migrated: the
    service has been running that code on its database, so those tables exist there. An app
    the release adds is not in `state`: its first migration is not one of these. A database
    where nothing is migrated at all is empty_database's."""
    if not any(v != "zero" for v in state.values()):
        return []
    return [f"{m['app']}.{m['name']}" for m in plan if m.get("initial") and m.get("app") in state]


def wrong_database(again: list[str], db: dict) -> str:
    return (
        f"the database the app's settings name ({db.get('name') or '?'}) would get the initial "
        f"migration of apps this server already runs ({', '.join(again)}): the tool is not "
        "looking at the service's database (a setting from an environment it cannot see?). "
        "Nothing changed; check `fab info` and the unit's EnvironmentFile, or deploy with "
        "--allow-empty-database if these apps really were never migrated here"
    )


STEP = Step("preflight", preflight)
