# The deploy's Django probe, run on the server as the app user with the venv's python in the
# project directory: `python -B -c SOURCE`, where SOURCE is migration_risk.py and
# gunicorn_argv.py, then the names WSGI, SETTINGS and UNIT, then this file
# (tasks/steps/probe.py builds it).
#
# It prints one line `CYNOW-DEPLOY {json}`:
#   state    {app: latest applied migration or "zero"}, from the migration table
#   applied  {app: [every applied migration]}, from the migration table
#   state_error  when the state could not be read (the deploy must then refuse), also when
#            the sqlite file the settings name does not exist (connecting would create it)
#   database {engine, name} of the default database, as the settings the probe ran with say
#   wsgi_app the app imported: the one the unit's ExecStart serves, else WSGI
#   error    when the WSGI application does not import (the site would not serve)
#   check    serious messages of Django's system checks
#   plan     [{app, name, initial, kind, ops}] migrations to apply, each classified by
#            migration_risk; `initial`: the app's first migration (Django's own test)
#
# The state is read with settings and the database alone (django.setup(), the recorder, the
# migration files): a server whose URLs or views are broken, the very case a deploy is for,
# must still report what is applied. Guessing it would make a rollback reverse what it never
# applied.
import json
import os
import sys
import traceback

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)  # noqa: F821 (sent before this file)
out = {}


def failure(e):
    text = str(e)
    return {
        "type": type(e).__name__,
        "message": text.splitlines()[0] if text else "",
        "traceback": traceback.format_exc().splitlines()[-8:],
    }


loader = None
try:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    out["database"] = {"engine": str(db.get("ENGINE", "")), "name": str(db.get("NAME", ""))}
    if "sqlite" in out["database"]["engine"] and out["database"]["name"] not in ("", ":memory:"):
        if not os.path.exists(out["database"]["name"]):
            # Connecting would create an empty database in its place: the state of a database
            # that does not exist is not "zero", it is a sign of the wrong settings.
            raise FileNotFoundError(
                f"the sqlite database {out['database']['name']} does not exist "
                "(the service's settings name another one?)"
            )
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.recorder import MigrationRecorder

    applied = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        applied.setdefault(app, []).append(name)
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    graph = loader.graph
    state = {}
    for app in sorted(set(loader.migrated_apps) | set(applied)):
        done = [(app, n) for n in applied.get(app, []) if (app, n) in graph.nodes]
        if done:
            state[app] = max(done, key=lambda n: len(graph.forwards_plan(n)))[1]
        elif applied.get(app):
            # Applied rows whose files are gone: the latest by name, the convention Django's
            # own names follow. Never "zero" while rows say otherwise.
            state[app] = applied[app][-1]
        else:
            state[app] = "zero"
    out["state"], out["applied"] = state, applied
except BaseException as e:
    out["state_error"] = failure(e)

try:
    import importlib

    # The app the unit serves is what gunicorn will import after the reload (gunicorn_argv.py
    # is sent before this file); the configured one only when the unit names none.
    served, unreadable = unit_app(UNIT)  # noqa: F821
    if unreadable:
        # What gunicorn will import after the reload is not known: refuse, never guess.
        raise RuntimeError("cannot tell which WSGI app the unit serves: " + unreadable)
    out["wsgi_app"] = served or WSGI  # noqa: F821 (sent before this file)
    mod, _, attr = out["wsgi_app"].partition(":")
    getattr(importlib.import_module(mod), attr or "application")
    from django.core import checks

    out["check"] = [str(m) for m in checks.run_checks() if m.is_serious()]
except BaseException as e:
    out["error"] = failure(e)


def is_initial(migration):
    """An app's first migration as Django's executor tells it (detect_soft_applied): marked
    `initial = True`, or left unmarked with no dependency inside its own app."""
    if migration.initial is None:
        return not any(app == migration.app_label for app, _ in migration.dependencies)
    return bool(migration.initial)


if loader is not None:
    try:
        from django.db.migrations.executor import MigrationExecutor

        ex = MigrationExecutor(connection)
        plan = []
        for migration, backwards in ex.migration_plan(ex.loader.graph.leaf_nodes()):
            if backwards:
                continue
            node = (migration.app_label, migration.name)
            before = ex.loader.project_state(node, at_end=False)
            risk = classify_migration(migration.app_label, migration, before)  # noqa: F821
            plan.append(
                {
                    "app": migration.app_label,
                    "name": migration.name,
                    "initial": is_initial(migration),
                    **risk,
                }
            )
        out["plan"] = plan
    except BaseException as e:
        out["plan_error"] = failure(e)

print("CYNOW-DEPLOY " + json.dumps(out))
