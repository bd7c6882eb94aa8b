"""Guide step 1: are gunicorn and nginx running, failed, looping, or stopped by hand?"""

from __future__ import annotations

from tasks import parse
from tasks.checks.base import FAIL, OK, WARN, Check, Fact, Facts, Finding, installed
from tasks.guide import sudo
from tasks.settings import Settings
from tasks.systemd import systemctl_show

# What `systemctl show` reports of the three units (steps 1 and 3 read them).
UNIT_PROPS = [
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "Result",
    "NRestarts",
    "NeedDaemonReload",
    "ExecMainStatus",
    "ExecMainCode",
    "MainPID",
    "FragmentPath",
    "User",
    "Group",
    "WorkingDirectory",
    "ExecStart",
    "Restart",
    "ActiveEnterTimestamp",
    # For the layout (tasks/layout.py): file names only, never the files' contents.
    "EnvironmentFiles",
    "Listen",
    # The socket unit's file owner and mode (systemd creates it as them): the layout's.
    "SocketUser",
    "SocketGroup",
    "SocketMode",
]


def units_command(s: Settings, _facts=None) -> str:
    """The state and properties of the gunicorn unit, its socket unit and nginx."""
    return systemctl_show([s.gunicorn_unit, s.gunicorn_socket_unit, s.nginx_unit], UNIT_PROPS)


FACTS = [Fact("units", units_command, lambda out, s: parse.systemctl_show(out))]

# systemd's exit statuses for "could not even start the command the unit names".
SPAWN_FAILURES = {"200": "CHDIR", "203": "EXEC", "216": "GROUP", "217": "USER"}


def state_line(p: dict) -> str:
    """The `Active:` line of `systemctl status`, rebuilt from `systemctl show`."""
    active, sub = p.get("ActiveState", "?"), p.get("SubState", "?")
    line = f"Active: {active}" + (f" ({sub})" if sub != active else "")
    if active == "failed" or p.get("Result", "success") != "success":
        line += f" (Result: {p.get('Result', '?')})"
    if p.get("ExecMainStatus", "0") not in ("", "0"):
        line += f", status={p['ExecMainStatus']}"
    return line


def gave_up(journal: list[str]) -> str | None:
    """systemd's last word on the unit, when it was "Start request repeated too quickly"
    (systemd 252 then leaves Result=exit-code; newer ones say start-limit-hit)."""
    verdict = None
    for line in journal:
        if "Start request repeated too quickly" in line:
            verdict = line.strip()
        elif "systemd[1]: Started " in line or "systemd[1]: Starting " in line:
            verdict = None
    return verdict


def _enabled(p: dict) -> str:
    return p.get("UnitFileState") or "unknown"


def _unit(facts: Facts, unit: str, check_id: str, title: str) -> tuple[dict, Check]:
    """The unit's `systemctl show` properties, and the step 1 check that judges them."""
    return facts.units.get(unit, {}), Check(check_id, 1, title)


def _absent(check: Check, unit: str, summary: str, evidence: list, cause: str, fix: str) -> list:
    """The unit does not exist: `cause`, fixed by `fix`."""
    return [check.fail(summary, evidence, [Finding(cause, [f"{unit} does not exist"], [fix])])]


def gunicorn(facts: Facts, s: Settings) -> list:
    unit = s.gunicorn_unit
    p, check = _unit(facts, unit, "services.gunicorn", f"{unit} running")
    if not installed(p):
        return _absent(
            check,
            unit,
            f"{unit} is not installed",
            [f"LoadState={p.get('LoadState', 'unknown')}"],
            "unit_file_invalid",
            f"install the unit as /etc/systemd/system/{unit}",
        )
    active, sub, res = p.get("ActiveState"), p.get("SubState"), p.get("Result", "success")
    ev = [state_line(p), f"enabled: {_enabled(p)}", f"restarts: {p.get('NRestarts', '0')}"]
    findings = []
    status = OK
    summary = f"{active} ({sub}), {_enabled(p)}"
    status_code = p.get("ExecMainStatus", "0")
    if active == "active" and sub == "running":
        if int(p.get("NRestarts", "0") or 0) >= 3:
            status, summary = WARN, summary + f", restarted {p['NRestarts']} times"
    elif res == "start-limit-hit" or (active == "failed" and gave_up(facts.journal)):
        status = FAIL
        summary = "failed: start-limit-hit (the crash loop gave up)"
        said = gave_up(facts.journal)
        findings.append(
            Finding(
                "gunicorn_start_limit_hit",
                [
                    "systemd gave up restarting: "
                    + (said.split(": ", 1)[-1] if said else "Result=start-limit-hit")
                ]
                + ev,
                [sudo("systemctl", "reset-failed", unit), sudo("systemctl", "start", unit)],
            )
        )
    elif active == "activating" and sub == "auto-restart":
        status, summary = (
            FAIL,
            f"crash loop: activating (auto-restart), {p.get('NRestarts')} restarts",
        )
        findings.append(
            Finding(
                "gunicorn_crash_loop",
                ev,
                [sudo("journalctl", "-u", unit, "-n", "50", "--no-pager") + "  # the error"],
            )
        )
    elif (
        active == "inactive"
        and facts.units.get(s.gunicorn_socket_unit, {}).get("ActiveState") == "active"
    ):
        # Socket activation: systemd holds the socket and starts gunicorn on the first request.
        summary = f"inactive, started on demand by {s.gunicorn_socket_unit}"
    elif active in ("inactive", "failed"):
        status = FAIL
        summary = state_line(p).removeprefix("Active: ")
        if status_code in SPAWN_FAILURES:
            findings.append(
                Finding(
                    "unit_file_invalid",
                    ev
                    + [
                        f"status={status_code}/{SPAWN_FAILURES[status_code]}: systemd could not "
                        "start the command the unit names"
                    ],
                    [sudo("systemctl", "cat", unit) + "  # then fix the path or user it names"],
                )
            )
        fix = [sudo("systemctl", "start", unit)]
        if _enabled(p) != "enabled":
            fix.append(sudo("systemctl", "enable", unit))
        findings.append(Finding("gunicorn_stopped", ev, fix))
    else:
        status, summary = WARN, f"{active} ({sub})"
    if status == OK and _enabled(p) not in ("enabled", "static", "enabled-runtime"):
        status, summary = WARN, summary + " (will not start at boot)"
    return [check.result(status, summary, ev, findings)]


def gunicorn_socket(facts: Facts, s: Settings) -> list:
    unit = s.gunicorn_socket_unit
    p, check = _unit(facts, unit, "services.gunicorn_socket", f"{unit} (socket activation)")
    if not installed(p):
        return [check.skip("not used: gunicorn binds the socket itself (the guide's setup)")]
    ok = p.get("ActiveState") in ("active",)
    return [
        check.result(
            OK if ok else FAIL,
            f"{p.get('ActiveState')} ({p.get('SubState')}), {_enabled(p)}",
            [state_line(p)],
        )
    ]


def nginx(facts: Facts, s: Settings) -> list:
    unit = s.nginx_unit
    p, check = _unit(facts, unit, "services.nginx", f"{unit} running")
    if not installed(p):
        return _absent(
            check, unit, "nginx is not installed", [], "nginx_stopped", "sudo apt-get install nginx"
        )
    ev = [state_line(p), f"enabled: {_enabled(p)}"]
    if p.get("ActiveState") == "active":
        return [check.ok(f"active ({p.get('SubState')}), {_enabled(p)}", ev)]
    fix = ["sudo nginx -t", sudo("systemctl", "start", unit)]
    return [
        check.fail(
            f"{p.get('ActiveState')} ({p.get('SubState')})",
            ev,
            [Finding("nginx_stopped", ev, fix)],
        )
    ]


def evaluate(facts: Facts, s: Settings) -> list:
    return gunicorn(facts, s) + gunicorn_socket(facts, s) + nginx(facts, s)
