"""`fab diagnose`: every step of the 502 guide, read-only, ending in one named cause and its fix.

Gathering is two rounds of concurrent channels on one SSH connection: round one reads everything
the guide's steps read; round two checks the paths the unit names and, only when gunicorn is
down, runs it by hand on a temporary socket (guide step 7). Evaluation is pure (tasks/checks).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fabric import task

from tasks import checks_commands
from tasks.checks import code, django, http, listener, logs, nginx, permissions, services, unit
from tasks.checks.base import FAIL, CheckResult, Facts
from tasks.cli import COMMON_HELP, PARALLEL_HELP, PRINTING, console, guarded, load, print_json
from tasks.connect import describe
from tasks.errors import ConnectError, ExitCode, OpsError
from tasks.fleet import Fleet, parse_parallel
from tasks.runner import Output, Remote
from tasks.settings import Settings
from tasks.verdict import CAUSES, Verdict, decide

SCHEMA = "cynow-ops.diagnose.v1"
MULTI_SCHEMA = "cynow-ops.diagnose-hosts.v1"

# Which remote commands each check reads: a check's time is the slowest of them.
SOURCES = {
    "services": ["units"],
    "listener": ["listener"],
    "logs.gunicorn": ["journal"],
    "logs.nginx": ["nginx_log"],
    "logs.django": ["django_log"],
    "unit": ["units", "paths", "unit_paths"],
    "nginx": ["nginx"],
    "permissions.socket": ["permissions"],
    "permissions.static": ["permissions"],
    "permissions.database": ["probe"],
    "http.manual": ["manual"],
    "http": ["http"],
    "django.required": ["required"],
    "django": ["probe"],
    "code": ["code"],
}


def expected_paths(s: Settings) -> tuple[list[str], list[str], list[str]]:
    """What the guide's unit names, checked in round one; round two only checks a unit that
    names something else."""
    return [f"{s.venv}/bin/gunicorn", s.project_dir], [s.app_user], [s.app_group]


def first_round(s: Settings) -> dict[str, dict]:
    """Everything steps 1-9 read, as independent commands (name -> Remote.run kwargs). The
    slow or possibly hanging ones run alone; the rest share a channel per identity."""
    return {
        "probe": dict(
            command=checks_commands.django_probe(s.project_dir, s.python, s.wsgi, s.gunicorn_unit),
            user=s.app_user,
            alone=True,
        ),
        "http": dict(
            command=checks_commands.http_script(s.socket, s.health_urls, s.http_timeout),
            root=True,
            alone=True,
        ),
        "code": dict(
            command=checks_commands.code_script(s.project_dir, s.git_remote, s.git_branch),
            user=s.app_user,
            alone=True,
        ),
        "paths": dict(command=checks_commands.path_facts(*expected_paths(s))),
        "units": dict(
            command=checks_commands.units_script(
                s.gunicorn_unit, s.gunicorn_socket_unit, s.nginx_unit
            )
        ),
        "journal": dict(
            command=checks_commands.journal(
                s.gunicorn_unit, s.gunicorn_socket_unit, int(s.log_window_minutes)
            ),
            root=True,
        ),
        "nginx_log": dict(
            command=checks_commands.log_tail(s.nginx_error_log, logs.NGINX_CLOCK, 400), root=True
        ),
        "django_log": dict(
            command=checks_commands.log_tail(s.django_log, logs.DJANGO_CLOCK, 300), root=True
        ),
        "listener": dict(command=checks_commands.listener_script(s.socket), root=True),
        "nginx": dict(command=checks_commands.nginx_script(s.nginx_site), root=True),
        "permissions": dict(
            command=checks_commands.permissions_script(s.socket, s.static_root), user=s.web_user
        ),
        "required": dict(
            command=checks_commands.required_files_script(s.project_dir, s.required_files)
        ),
    }


def parse_first_round(out: dict[str, Output], s: Settings) -> Facts:
    f = Facts()
    f.units, f.unit_file, f.unit_verify = unit.parse_units(out["units"].stdout)
    f.journal = logs.parse_journal(out["journal"].stdout)
    f.nginx_log = logs.parse_nginx_log(out["nginx_log"].stdout, s.log_window_minutes)
    f.django_log = logs.parse_django_log(out["django_log"].stdout, s.log_window_minutes)
    f.listener = listener.parse_listener(out["listener"].stdout)
    f.nginx = nginx.parse_nginx(out["nginx"].stdout)
    f.permissions = permissions.parse_permissions(out["permissions"].stdout)
    f.http = http.parse_http(out["http"].stdout)
    f.probe = django.parse_probe(out["probe"].stdout)
    f.required = django.parse_required(out["required"].stdout)
    f.code = code.parse_code(out["code"].stdout)
    f.paths = unit.parse_paths(out["paths"].stdout)
    f.seconds = {name: o.seconds for name, o in out.items()}
    return f


def needs_manual_run(f: Facts, s: Settings) -> bool:
    """Guide step 7 by hand only when the service's gunicorn cannot answer."""
    g = f.units.get(s.gunicorn_unit, {})
    running = g.get("ActiveState") == "active" and g.get("SubState") == "running"
    answered = any(r.get("code") for r in f.http.get("socket", {}).values())
    return not (running and answered)


def second_round(f: Facts, s: Settings) -> dict[str, dict]:
    """Only what round one could not know: paths a non-standard unit names, and the by-hand
    run when gunicorn is down. Usually nothing."""
    paths, users, groups = unit.unit_paths(f, s)
    paths = [p for p in paths if p not in f.paths]
    users = [u for u in users if f"user:{u}" not in f.paths]
    groups = [g for g in groups if f"group:{g}" not in f.paths]
    jobs = {}
    if paths or users or groups:
        jobs["unit_paths"] = dict(command=checks_commands.path_facts(paths, users, groups))
    if needs_manual_run(f, s):
        jobs["manual"] = dict(
            command=checks_commands.manual_run(
                s.project_dir, s.venv, s.wsgi, s.health_urls[0] if s.health_urls else s.url_prefix
            ),
            user=s.app_user,
            timeout=60,
        )
    return jobs


def gather(remote: Remote) -> Facts:
    s = remote.settings
    first = remote.many(first_round(s))
    f = parse_first_round(first, s)
    jobs = second_round(f, s)
    second = remote.many(jobs) if jobs else {}
    parse_second_round(f, second)
    capture(first | second)
    return f


def parse_second_round(f: Facts, out: dict[str, Output]) -> None:
    if "unit_paths" in out:
        f.paths.update(unit.parse_paths(out["unit_paths"].stdout))
    if "manual" in out:
        f.manual = http.parse_manual(out["manual"].stdout)
    f.seconds.update({name: o.seconds for name, o in out.items()})


def capture(outputs: dict[str, Output]) -> None:
    """With CYNOW_OPS_CAPTURE=DIR, keep each command's raw output: the unit tests' data files
    (tests/unit/data/diagnose) are real output captured this way from the lab."""
    target = os.environ.get("CYNOW_OPS_CAPTURE")
    if not target:
        return
    os.makedirs(target, exist_ok=True)
    for name, o in outputs.items():
        with open(os.path.join(target, f"{name}.out"), "w") as fh:
            fh.write(o.stdout)


def evaluate(f: Facts, s: Settings) -> list[CheckResult]:
    """Every check, in the guide's order of steps."""
    checks = (
        services.evaluate(f, s)
        + listener.evaluate(f, s)
        + logs.evaluate(f, s)
        + unit.evaluate(f, s)
        + nginx.evaluate(f, s)
        + permissions.evaluate(f, s)
        + http.evaluate(f, s)
        + django.evaluate(f, s)
        + code.evaluate(f, s)
    )
    for c in checks:
        key = next((k for k in SOURCES if c.id == k or c.id.startswith(k + ".")), None)
        if key is None:
            key = next((k for k in SOURCES if c.id.split(".")[0] == k), None)
        c.seconds = max((f.seconds.get(src, 0.0) for src in SOURCES.get(key, [])), default=0.0)
    return sorted(checks, key=lambda c: c.step)


@dataclass
class Report:
    host: str
    target: str | None
    verdict: Verdict
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    started: str = ""

    @property
    def exit_code(self) -> int:
        if self.verdict.cause == "unreachable":
            return int(ExitCode.UNREACHABLE)
        return int(ExitCode.OK if self.verdict.healthy else ExitCode.PROBLEM)

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA,
            "host": self.host,
            "target": self.target,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "verdict": self.verdict.to_json(),
            "checks": [c.to_json() for c in self.checks],
        }


def conclude(checks: list[CheckResult], facts: Facts, s: Settings) -> Verdict:
    """The verdict from every check's findings; a failed check counts even without one."""
    failing = [f"{c.title}: {c.summary}" for c in checks if c.status == FAIL]
    return decide([f for c in checks for f in c.findings], facts, s, failing)


def diagnose_host(remote: Remote) -> Report:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    s = remote.settings
    facts = gather(remote)
    checks = evaluate(facts, s)
    verdict = conclude(checks, facts, s)
    return Report(remote.name, s.target, verdict, checks, time.monotonic() - t0, started)


def unreachable(host: str, s: Settings, error: OpsError, started: str) -> Report:
    """The report of a host that could not be diagnosed: unreachable (exit 2), or stopped by
    an unexpected error, which is said as it is (cause `unknown`, exit 1)."""
    if not isinstance(error, ConnectError):
        v = Verdict(
            "unknown",
            "the diagnosis of this host stopped: " + error.message,
            [],
            [error.message],
            ["run `fab diagnose` on this host alone; report the error if it persists"],
        )
        return Report(host, s.target, v, [], 0.0, started)
    v = Verdict(
        "unreachable",
        CAUSES["unreachable"],
        [error.message],
        [error.message],
        ["check the address, your key (-i) and known_hosts, then retry"],
    )
    return Report(host, s.target, v, [], 0.0, started)


@task(help={**COMMON_HELP, **PARALLEL_HELP})
@guarded
def diagnose(c, target=None, json=False, parallel=None):
    """Find why CYNOW answers 502: every guide step, read-only, one cause with its fix.

    Several hosts (-H a,b,c or a target's list) are diagnosed at once, at most --parallel at a
    time: a line per host as it finishes, a table of hosts by guide step, a verdict per host.
    Exit codes (the worst host's): 0 healthy, 1 a problem was found, 2 could not diagnose
    (unreachable, authentication, host key, sudo), 3 bad configuration.
    """
    settings = load(c, target)
    parallel = parse_parallel(parallel)
    fleet = Fleet.of(c, settings)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    if len(fleet) == 1:
        reports = [one_host(Remote(fleet[0], settings), json, started)]
    else:
        reports = many_hosts(fleet, parallel, json, started)
    if json:
        if len(reports) == 1:
            print_json(reports[0].to_json())
        else:
            print_json(
                {
                    "schema": MULTI_SCHEMA,
                    "exit_code": max(r.exit_code for r in reports),
                    "hosts": [r.to_json() for r in reports],
                }
            )
    worst = max(r.exit_code for r in reports)
    if worst:
        from invoke.exceptions import Exit

        raise Exit(code=worst)


def one_host(remote: Remote, json: bool, started: str) -> Report:
    """One host: the full checklist and its verdict, with a spinner on a terminal."""
    settings = remote.settings
    try:
        if json or not console().is_terminal:
            remote.open()
            report = diagnose_host(remote)
        else:
            with console().status(f"diagnosing {remote.name}…"):
                remote.open()
                report = diagnose_host(remote)
    except ConnectError as e:
        report = unreachable(remote.name, settings, e, started)
        if not json:
            console(stderr=True).print(f"cynow-ops: {e.message}")
    finally:
        remote.close()
    if not json:
        from tasks.report import render

        render(report)
    return report


def many_hosts(fleet: Fleet, parallel: int, json: bool, started: str) -> list[Report]:
    """Every host concurrently (at most `parallel`), a line per host as it ends, then the
    table and each verdict."""

    def done(remote: Remote, value) -> None:
        if json:
            return
        from tasks.report import host_line

        with PRINTING:
            if isinstance(value, OpsError):
                from rich.markup import escape

                console().print(
                    f"[bold]{escape(remote.name)}[/] [red]unreachable:[/] {escape(value.message)}"
                )
            else:
                console().print(host_line(value))

    if not json:
        console().print(
            f"[bold]cynow-ops diagnose:[/] {len(fleet)} hosts, at most {parallel} at once"
        )
    results = fleet.each(diagnose_host, parallel, done)
    reports = [
        unreachable(describe(cxn), fleet.settings, v, started) if isinstance(v, OpsError) else v
        for cxn, v in results.items()
    ]
    if not json:
        from tasks.report import render_fleet

        render_fleet(reports)
    return reports
