"""`fab restart`: the guide's restart, made safe. Graceful by default (HUP to the master: the
socket stays, old workers drain, no request fails); `--force` is the guide's stop + kill -9 +
start, but kills only what is left in the unit's own control group, by PID."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from fabric import task

from tasks import parse, shell, systemd, tools
from tasks.common import COMMON_HELP, console, each_host, emit, guarded, load
from tasks.runner import Remote
from tasks.settings import tcp_address
from tasks.shell import q
from tasks.steps.health import health
from tasks.text import markup

SCHEMA = "cynow-ops.restart.v1"


def remove_stale_socket(socket: str) -> str:
    """Remove the socket file only when no process holds it (a live gunicorn's is kept). The
    holders are listed with ss, or from /proc without it (tools.listing); when no listing
    could be made, nothing is removed (exit 127): nobody would seem to hold the live socket.
    A TCP bind leaves no file behind: nothing to do."""
    if tcp_address(socket):
        return "true"
    return "\n".join(
        [
            f"if ! held=$({tools.listing('unix')}); then",
            "  echo 'cynow-ops: cannot list who holds the socket (no ss, no /proc listing)' >&2",
            "  exit 127",
            "fi",
            f"if [ -S {q(socket)} ] && ! printf '%s\\n' \"$held\" "
            f"| grep -F -- {q(' ' + socket + ' ')} | grep -q 'users:(('; then",
            f"  rm -f -- {q(socket)} && echo removed",
            "fi",
        ]
    )


@dataclass
class StepLine:
    """One line of a run's report (name, ok, detail, seconds); a deploy step is tasks.steps.Step."""

    name: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Outcome:
    host: str
    mode: str
    steps: list[StepLine] = field(default_factory=list)
    healthy: bool = False
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}


def unit_state(remote: Remote) -> dict:
    s = remote.settings
    out = remote.run(
        shell.batch(
            {
                "show": systemd.systemctl_show(
                    [s.gunicorn_unit], ["ActiveState", "SubState", "MainPID", "NeedDaemonReload"]
                ),
                "pids": systemd.unit_pids(s.gunicorn_unit),
            }
        ),
        root=True,
    )
    parts = {k: v[0] for k, v in shell.read_batch(out.stdout).items()}
    props = parse.key_values(parts.get("show", ""))
    return {
        "active": props.get("ActiveState", ""),
        "sub": props.get("SubState", ""),
        "main_pid": int(props.get("MainPID") or 0),
        "reload_needed": props.get("NeedDaemonReload") == "yes",
        "pids": sorted(int(p) for p in parts.get("pids", "").split() if p.isdigit()),
    }


def _step(outcome: Outcome, name: str, fn) -> bool:
    t0 = time.monotonic()
    ok, detail = fn()
    outcome.steps.append(StepLine(name, ok, detail, time.monotonic() - t0))
    return ok


def _run_ok(remote: Remote, command: str) -> tuple[bool, str]:
    out = remote.run(command, root=True, timeout=120)
    text = (out.stdout + out.stderr).strip().splitlines()
    return out.ok, (text[-1] if text else "done")


def restart_host(remote: Remote, force: bool) -> Outcome:
    s = remote.settings
    tools.require(remote, "restart")
    unit = s.gunicorn_unit
    before = unit_state(remote)
    running = before["active"] == "active" and before["main_pid"] > 0
    mode = (
        "force"
        if force
        else (
            "graceful"
            if running and not before["reload_needed"]
            else "start"
            if not running
            else "restart"
        )
    )
    o = Outcome(remote.name, mode, before=before)
    if before["reload_needed"]:
        # HUP cannot apply a changed unit file; systemd must read it first.
        _step(o, "daemon-reload", lambda: _run_ok(remote, systemd.systemctl("daemon-reload", unit)))
    if mode == "graceful":
        old_workers = [p for p in before["pids"] if p != before["main_pid"]]
        ok = _step(
            o,
            f"HUP gunicorn master (pid {before['main_pid']})",
            lambda: _run_ok(remote, systemd.hup_main(unit)),
        )
        if ok:
            o.healthy = _step(
                o,
                "health: new workers answer, old ones gone",
                lambda: health(remote, since_pids=old_workers),
            )
    else:
        if mode in ("force", "restart"):
            _step(
                o,
                f"systemctl stop {unit}",
                lambda: _run_ok(remote, systemd.systemctl("stop", unit)),
            )
        if mode == "force":
            _step(
                o,
                "kill what is left in the unit's control group",
                lambda: _kill_left(remote, before["pids"]),
            )
            _step(
                o,
                "remove a stale socket",
                lambda: _run_ok(remote, remove_stale_socket(s.socket)),
            )
        _step(
            o,
            "systemctl reset-failed",
            lambda: _run_ok(remote, systemd.systemctl("reset-failed", unit)),
        )
        if _step(
            o, f"systemctl start {unit}", lambda: _run_ok(remote, systemd.systemctl("start", unit))
        ):
            o.healthy = _step(o, "health: the site answers", lambda: health(remote))
    o.after = unit_state(remote)
    return o


def _kill_left(remote: Remote, old: list[int]) -> tuple[bool, str]:
    """Kill what is left of the processes the unit had before the stop. Only those: with a
    socket unit, a request arriving after the stop has already started a new gunicorn."""
    left = [p for p in unit_state(remote)["pids"] if p in old]
    if not left:
        return True, "none left"
    _run_ok(remote, systemd.kill_pids(left))
    time.sleep(0.2)
    still = [p for p in unit_state(remote)["pids"] if p in old]
    return not still, f"killed {left}" + (f"; still there: {still}" if still else "")


def render(o: Outcome) -> None:
    out = console()
    out.print(f"[bold]cynow-ops restart ({o.mode}): {o.host}[/]")
    for st in o.steps:
        mark = "[green]✓[/]" if st.ok else "[red]✗[/]"
        # The detail quotes the server (systemctl's words, a socket path): data, not markup.
        out.print(f"  {mark} {st.name} [dim]{st.seconds:.2f}s[/]  {markup(st.detail)}")
    b, a = o.before, o.after
    out.print(
        f"  master pid {b.get('main_pid')} → {a.get('main_pid')}; processes "
        f"{len(b.get('pids', []))} → {len(a.get('pids', []))}"
    )
    out.print("[green]healthy[/]" if o.healthy else "[red]not healthy: run fab diagnose[/]")


@task(
    help={
        **COMMON_HELP,
        "force": "stop, kill -9 what is left of the unit (by PID, from its "
        "own control group), remove a stale socket, start; never a machine-wide pkill",
    }
)
@guarded
def restart(c, force=False, target=None, json=False):
    """Restart gunicorn: graceful HUP by default, --force for the guide's hard restart.

    Graceful keeps the socket and drains old workers (no request fails); a stopped or failed
    service is started instead, and a unit changed on disk gets daemon-reload and a full
    restart. Ends with a health check through the socket and nginx.
    Exit codes: 0 healthy afterwards, 1 not healthy, 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    outcomes = each_host(c, settings, lambda r: restart_host(r, force), render, json)
    emit(outcomes, SCHEMA, json, failed=lambda o: not o.healthy)
