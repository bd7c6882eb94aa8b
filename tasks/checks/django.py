"""Guide step 8: Django's own checks, run with the venv's python as gunicorn would import it."""

from __future__ import annotations

import json
from dataclasses import replace

from tasks import guide, programs, service
from tasks.checks.base import FAIL, ROOT, SKIPPED, WARN, Check, Fact, Facts, Finding
from tasks.settings import Settings
from tasks.shell import in_dir, q, say

IMPORT_ERRORS = {
    "ModuleNotFoundError",
    "ImportError",
    "SyntaxError",
    "IndentationError",
    "NameError",
    "AttributeError",
}


def django_probe(project_dir: str, python: str, wsgi: str, unit: str, timeout: float = 60) -> str:
    """The probe (tasks/remote/django_probe.py) as gunicorn would import the app."""
    settings_module = wsgi.split(".")[0] + ".settings"
    script = (
        f"WSGI = {wsgi!r}\nSETTINGS = {settings_module!r}\nUNIT = {unit!r}\n"
        + programs.source("gunicorn_argv", "django_probe")
    )
    # -B: importing the app must not write __pycache__ into the checkout (read-only).
    return (
        f"cd {q(project_dir)} && timeout {timeout:g} {q(python)} -B -c {q(script)} 2>&1 "
        "| tail -n 60"
    )


def required_files_command(s: Settings, _facts=None) -> str:
    return (
        "\n".join(
            f"if test -f {q(s.project_dir + '/' + f)}; then {say('present', f)}; "
            f"else {say('missing', f)}; fi"
            for f in s.required_files
        )
        or "true"
    )


def probe_command(s: Settings, _facts=None) -> str:
    """The probe as the service runs (tasks/service.py, lenient: a broken unit is what a
    diagnosis looks at, so it still runs, as the app user, and says it lacked the unit's
    environment). The wrapper's notes join the probe's output."""
    probe = django_probe(s.project_dir, s.python, s.wsgi, s.gunicorn_unit)
    return service.as_service(s.gunicorn_unit, s.app_user, probe, strict=False) + " 2>&1"


def parse_probe(stdout: str, _s=None) -> dict:
    notes = [
        ln[len(service.PREFIX) :] for ln in stdout.splitlines() if ln.startswith(service.PREFIX)
    ]
    for line in reversed(stdout.splitlines()):
        if line.startswith("CYNOW-PROBE "):
            try:
                report = json.loads(line[len("CYNOW-PROBE ") :])
            except json.JSONDecodeError:
                return {"unavailable": ["the probe's report was cut short"]}
            report["env_unreadable"] = notes
            return report
    return {"unavailable": stdout.strip().splitlines()[-3:] if stdout.strip() else ["no output"]}


def _exc_line(e: dict) -> str:
    return f"{e.get('type')}: {e.get('message')}"


def classify(error: dict, behind: int, s: Settings, project_dir: str) -> Finding:
    """Which cause an exception raised while importing the app points to."""
    line = _exc_line(error)
    # The frames in the project's own code say where; importlib's and Django's do not.
    frames = [
        ln
        for ln in error.get("traceback", [])
        if ln.startswith('  File "') and project_dir in ln and s.venv not in ln
    ]
    ev = [line] + frames[-2:]
    restart = guide.sudo("systemctl", "restart", s.gunicorn_unit)
    if error.get("type") == "ImproperlyConfigured":
        return Finding(
            "settings_error",
            ev,
            ["set what the message asks for (environment file or settings), then " + restart],
        )
    # Behind origin first: a module missing from older code (even a new app, or a package the
    # newer requirements add) comes with the newer code.
    if behind > 0 and error.get("type") in IMPORT_ERRORS:
        return Finding(
            "code_outdated",
            ev + [f"the checkout is {behind} commit(s) behind {s.git_remote}/{s.git_branch}"],
            guide.update_by_hand(s, project_dir),
        )
    if error.get("type") == "ModuleNotFoundError" and not error.get("in_project"):
        module = (error.get("name") or "").split(".")[0]
        return Finding(
            "missing_dependency",
            ev,
            [
                in_dir(
                    project_dir,
                    guide.by_hand(s)["requirements"],
                )
                + guide.comment(f"add {module} there first if it is not listed"),
                restart,
            ],
        )
    return Finding(
        "app_import_error",
        ev,
        [
            "fix the code the traceback names, push it to "
            f"{s.git_remote}/{s.git_branch}, then pull it on the server and " + restart
        ],
    )


def wrong_app(error: dict, app: str, s: Settings) -> Finding:
    return Finding(
        "unit_file_invalid",
        [
            f"the unit's ExecStart serves {app}, which does not load: {_exc_line(error)}",
            f"{s.wsgi} (cynow.wsgi) loads with the same code and environment",
        ],
        [
            guide.sudo("systemctl", "edit", "--full", s.gunicorn_unit)
            + guide.comment(f"in ExecStart, replace {app} with {s.wsgi}"),
            guide.sudo("systemctl", "daemon-reload"),
            guide.sudo("systemctl", "restart", s.gunicorn_unit),
        ],
    )


CHECK = Check("django.check", 8, "manage.py check", reads=("probe",))


def evaluate(facts: Facts, s: Settings) -> list:
    p = facts.probe
    behind = int(facts.code.get("behind") or 0)
    python = Check("django.python", 8, "venv python", reads=("probe",))
    wsgi = Check("django.wsgi", 8, f"import {s.wsgi}", reads=("probe",))
    if "python" not in p:
        ev = p.get("unavailable", [])
        return (
            [python.fail(f"{s.python} did not run: {ev[-1] if ev else '?'}", ev)]
            + [
                check.skip("venv python did not run")
                for check in (wsgi, CHECK, Check("django.migrations", 8, "migrations applied"))
            ]
            + _required(facts, s)
        )
    out = [python.ok(f"Python {p['python']}, Django {p.get('django', '?')}", [p["executable"]])]
    w = p.get("wsgi", {})
    serving = bool(facts.http.get("socket")) and all(
        200 <= r.get("code", 0) < 400 for r in facts.http["socket"].values()
    )
    # Without the unit's environment the app may not import; the running service has it.
    untestable = bool(p.get("env_unreadable")) and serving
    app = p.get("wsgi_app") or s.wsgi
    if app != s.wsgi:
        wsgi = replace(wsgi, title=f"import {app} (the unit's; configured {s.wsgi})")
    if p.get("wsgi_unit_error"):
        wsgi = replace(wsgi, title=f"import {app} (configured; the unit's app is not known)")
    if w.get("ok") and p.get("wsgi_unit_error"):
        # The configured app loads, but gunicorn may serve another: not a pass.
        out.append(
            wsgi.warn(
                "the configured app imports; which app the unit serves is not known",
                [p["wsgi_unit_error"]],
            )
        )
    elif w.get("ok"):
        out.append(wsgi.ok("imports cleanly"))
    elif (p.get("wsgi_config") or {}).get("ok"):
        # The code loads; the unit names an app that does not exist in it. A restart would
        # fail the same way: the unit must change.
        out.append(wsgi.fail(_exc_line(w), w.get("traceback", [])[-6:], [wrong_app(w, app, s)]))
    else:
        f = classify(w, behind, s, s.project_dir)
        for note in p.get("env_unreadable", []):
            f.evidence.append(f"caveat: {note}, so this import ran without it")
        if untestable:
            out.append(
                wsgi.warn(
                    "could not be tested without the unit's environment; the "
                    "running service answers",
                    f.evidence,
                )
            )
        else:
            out.append(wsgi.fail(_exc_line(w), w.get("traceback", [])[-6:], [f]))
    setup = p.get("setup")
    ran = p.get("check")  # Django's system checks, as the probe ran them
    if setup:
        out.append(
            CHECK.result(
                WARN if untestable else FAIL,
                _exc_line(setup),
                setup.get("traceback", [])[-4:],
            )
        )
    elif ran and ran.get("ok"):
        out.append(CHECK.ok((ran.get("output") or ["no issues"])[-1]))
    elif ran:
        out.append(CHECK.fail(_exc_line(ran), ran.get("traceback", [])[-6:]))
    out.append(_migrations(p, s))
    return out + _required(facts, s)


def _migrations(p: dict, s: Settings):
    check = Check("django.migrations", 8, "migrations applied", reads=("probe",))
    migrate = in_dir(s.project_dir, guide.by_hand(s)["migrate"])
    db = p.get("database", {})
    if db and "sqlite" in db.get("engine", "") and not db.get("exists"):
        ev = [f"{db.get('name')} does not exist: no table has been created"]
        return check.failure("migrations_pending", ev, [migrate])
    if "unapplied" not in p:
        e = p.get("migrations_error")
        return check.result(
            SKIPPED if not e else WARN, _exc_line(e) if e else "Django did not load"
        )
    if p["unapplied"]:
        ev = [
            f"You have {len(p['unapplied'])} unapplied migration(s): " + ", ".join(p["unapplied"])
        ]
        return check.failure("migrations_pending", ev, [migrate])
    return check.ok("no unapplied migrations")


def _required(facts: Facts, s: Settings) -> list:
    check = Check("django.required", 8, "required files", reads=("required",))
    req = facts.required
    if not req:
        return [check.skip("none configured")]
    missing = [f for f, present in req.items() if not present]
    if missing:
        ev = [f"missing in the checkout: {s.project_dir}/{f}" for f in missing]
        behind = int(facts.code.get("behind") or 0)
        findings = []
        if behind:
            findings.append(
                Finding(
                    "code_outdated",
                    ev
                    + [f"the checkout is {behind} commit(s) behind {s.git_remote}/{s.git_branch}"],
                    [guide.by_hand(s)["pull"], guide.by_hand(s)["restart"]],
                )
            )
        return [check.fail(ev[0], ev, findings)]
    return [check.ok(", ".join(req))]


def parse_required(stdout: str, _s=None) -> dict:
    out = {}
    for line in stdout.splitlines():
        state, _, name = line.partition(" ")
        if state in ("present", "missing"):
            out[name] = state == "present"
    return out


FACTS = [
    Fact("probe", probe_command, parse_probe, identity=ROOT, alone=True),
    Fact("required", required_files_command, parse_required),
]
