# The diagnosis's Django probe (guide step 8), run on the server as the app user with the
# venv's python in the project directory: `python -B -c SOURCE`, where SOURCE is the three names
# WSGI, SETTINGS and UNIT, then gunicorn_argv.py, then this file (tasks/checks/django.py builds
# it). One interpreter imports the WSGI app the unit serves as gunicorn would, runs Django's
# checks, reads the migration plan and the database file, and prints one line
# `CYNOW-PROBE {json}`.
import importlib
import json
import os
import sys
import traceback

sys.path.insert(0, os.getcwd())
out = {"python": sys.version.split()[0], "executable": sys.executable}
# The unit's Environment= and EnvironmentFile= are already set: tasks/service.py runs this
# program as the service runs (the unit's user and environment).


def err(e):
    name = getattr(e, "name", None)
    top = (name or "").split(".")[0]
    return {
        "ok": False,
        "type": type(e).__name__,
        "message": str(e).splitlines()[0] if str(e) else "",
        "name": name,
        "in_project": bool(top) and (os.path.isdir(top) or os.path.isfile(top + ".py")),
        "traceback": traceback.format_exc().splitlines()[-15:],
    }


def load(app):
    """Import a WSGI app as gunicorn does: `module:attribute`, the attribute `application`
    when none is named."""
    mod, _, attr = app.partition(":")
    try:
        getattr(importlib.import_module(mod), attr or "application")
        return {"ok": True}
    except BaseException as e:
        return err(e)


# What gunicorn imports is the unit's app; the configured one stands in only when the unit
# names none. When they differ, the configured one is tried too, so that a unit naming an app
# that does not exist is told apart from code that does not import.
served, unreadable = unit_app(UNIT)  # noqa: F821
out["wsgi_app"], out["wsgi_source"] = (served, "unit") if served else (WSGI, "config")  # noqa: F821
if unreadable:
    # Not known what gunicorn serves: the configured app is tried, and the check says so.
    out["wsgi_source"], out["wsgi_unit_error"] = "unknown", unreadable
out["wsgi"] = load(out["wsgi_app"])
if out["wsgi_app"] != WSGI:  # noqa: F821
    out["wsgi_config"] = load(WSGI)  # noqa: F821
try:
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)  # noqa: F821
    django.setup()
    out["django"] = django.get_version()
    db = settings.DATABASES["default"]
    name = str(db.get("NAME", ""))
    out["database"] = {"engine": db.get("ENGINE", ""), "name": name}
    if "sqlite" in db.get("ENGINE", ""):
        d = os.path.dirname(name) or "."
        out["database"].update(
            exists=os.path.exists(name),
            writable=os.access(name, os.W_OK),
            dir=d,
            dir_writable=os.access(d, os.W_OK),
        )
        import grp
        import pwd

        for key, path in (("file", name), ("dir", d)):
            try:
                st = os.stat(path)
                owner = pwd.getpwuid(st.st_uid).pw_name
                group = grp.getgrgid(st.st_gid).gr_name
                out["database"][key + "_stat"] = f"{owner}:{group} {st.st_mode & 0o7777:o}"
            except (OSError, KeyError):
                pass
    out["static_root"] = str(getattr(settings, "STATIC_ROOT", "") or "")
    # The URL nginx must serve STATIC_ROOT at (the layout finds nginx's location for it). As
    # Django spells it outside a request: a relative STATIC_URL gets FORCE_SCRIPT_NAME or "/".
    out["static_url"] = str(getattr(settings, "STATIC_URL", "") or "")
    # Where the app's own logging writes (file handlers), and the hosts it answers: the layout
    # `fab info` shows comes from the settings the service runs with.
    handlers = (getattr(settings, "LOGGING", None) or {}).get("handlers") or {}
    out["log_files"] = sorted(
        {str(h["filename"]) for h in handlers.values() if isinstance(h, dict) and h.get("filename")}
    )
    out["allowed_hosts"] = [str(h) for h in getattr(settings, "ALLOWED_HOSTS", [])]
    # What `manage.py check` runs, without loading the management machinery.
    try:
        from django.core import checks

        found = checks.run_checks()
        bad = [str(m) for m in found if m.is_serious()]
        out["check"] = (
            {
                "ok": True,
                "output": [f"System check identified {len(found)} issue(s), none serious."],
            }
            if not bad
            else {"ok": False, "type": "SystemCheckError", "message": bad[0], "traceback": bad[:6]}
        )
    except BaseException as e:
        out["check"] = err(e)
    if "sqlite" not in db.get("ENGINE", "") or out["database"]["exists"]:
        try:
            from django.db import connection
            from django.db.migrations.executor import MigrationExecutor

            ex = MigrationExecutor(connection)
            plan = ex.migration_plan(ex.loader.graph.leaf_nodes())
            out["unapplied"] = [m.app_label + "." + m.name for m, back in plan if not back]
        except BaseException as e:
            out["migrations_error"] = err(e)
except BaseException as e:
    out["setup"] = err(e)
print("CYNOW-PROBE " + json.dumps(out))
