"""The deploy's Django probe (tasks/remote/deploy_probe.py): migration state, the WSGI import
and checks, the classified plan. Used by preflight, validate and the undo of migrate."""

from __future__ import annotations

import json as jsonlib

from tasks import programs
from tasks.shell import q
from tasks.steps.context import Ctx, StepFailed


def deploy_probe(project_dir: str, python: str, wsgi: str, unit: str = "gunicorn.service") -> str:
    """The deploy's Django probe (tasks/remote/deploy_probe.py) as the app user: migration state
    from the migration table, the WSGI import and checks, the classified plan."""
    settings_module = wsgi.split(".")[0] + ".settings"
    script = "\n".join(
        [
            programs.source("migration_risk", "gunicorn_argv"),
            f"WSGI = {wsgi!r}",
            f"SETTINGS = {settings_module!r}",
            f"UNIT = {unit!r}",
            programs.source("deploy_probe"),
        ]
    )
    return f"cd {q(project_dir)} && timeout 120 {q(python)} -B -c {q(script)} 2>&1 | tail -n 40"


def probe(ctx: Ctx) -> dict:
    s = ctx.s
    out = ctx.run(
        deploy_probe(s.project_dir, s.python, s.wsgi, s.gunicorn_unit), app=True, ok=False
    )
    return read_probe(out.stdout)


def read_probe(stdout: str) -> dict:
    """The Django probe's report (its last CYNOW-DEPLOY line)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("CYNOW-DEPLOY "):
            return jsonlib.loads(line[len("CYNOW-DEPLOY ") :])
    raise StepFailed("the Django probe printed no report", stdout[-500:])
