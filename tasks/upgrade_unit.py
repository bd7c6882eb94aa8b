"""`fab upgrade-unit`: the guide's gunicorn unit turned into the socket-activated pair gunicorn's
docs recommend (gunicorn.socket holds the socket, gunicorn.service gets it, ExecReload, notify),
the user's values kept. Snapshot of the old units, `systemd-analyze verify` of the new ones,
daemon-reload, a switch that keeps the socket path served, the health gate; any failure puts
the old units back. `--undo` restores the last snapshot; `--dry-run` shows the diff.

What is read and planned: tasks/unit_plan.py; the scripts that change the server:
tasks/unit_switch.py; here, the steps in order and the task.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from fabric import task

from tasks import lock, parse, tools
from tasks.common import COMMON_HELP, console, each_host, emit, guarded, load
from tasks.errors import OpsError
from tasks.redact import redact_text
from tasks.remote import unit_upgrade
from tasks.restart import StepLine
from tasks.runner import Remote
from tasks.settings import Settings
from tasks.shell import q
from tasks.steps.health import health
from tasks.systemd import unit_pids
from tasks.text import markup
from tasks.unit_plan import Plan, diff, folder, read_plan, read_plan_snapshots
from tasks.unit_switch import (
    install_script,
    snapshot_script,
    stage_command,
    switch_script,
    undo_script,
    verify_command,
)

SCHEMA = "cynow-ops.upgrade-unit.v1"
# Test hook (the client's environment, never the server's): fail right after this step.
FAULT_ENV = "CYNOW_OPS_FAULT"


@dataclass
class Outcome:
    host: str
    mode: str  # upgrade | dry-run | undo
    # upgraded | unchanged | would-change | restored | rolled-back | failed | refused (lock held)
    result: str = ""
    message: str = ""
    diff: str = ""
    snapshot: str = ""
    steps: list[StepLine] = field(default_factory=list)
    healthy: bool = False

    def to_json(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}


class _Failed(Exception):
    pass


def _step(o: Outcome, name: str, fn) -> str:
    t0 = time.monotonic()
    try:
        ok, detail = fn()
    except OpsError as e:
        ok, detail = False, e.message
    o.steps.append(StepLine(name, ok, detail, time.monotonic() - t0))
    if not ok:
        raise _Failed(f"{name}: {detail}")
    if os.environ.get(FAULT_ENV) == f"upgrade-unit:after-{name}":
        o.steps.append(StepLine(f"fault injected after {name}", False, FAULT_ENV))
        raise _Failed(f"fault injected after {name}")
    return detail


def _root(remote: Remote, command: str, timeout: float = 120) -> tuple[bool, str]:
    out = remote.run(command, root=True, timeout=timeout)
    text = (out.stdout + out.stderr).strip().splitlines()
    return out.ok, redact_text(text[-1]) if text else "done"


class _Refused(Exception):
    """The deploy lock is not ours: nothing was changed."""


def _take_lock(remote: Remote) -> lock.LockedRemote:
    """The deploy lock for the change, as `fab repair` takes it: a deploy, rollback or repair
    beside the switch would restart gunicorn under it (or snapshot units mid-change). Every
    command then runs supervised (its heartbeat kept, so no `fab rollback` takes the lock over
    as stale). Raises _Refused, one line, when it is held or cannot be taken."""
    from tasks.outcomes import who
    from tasks.snapshots import now

    s = remote.settings
    token = lock.new_token()
    owner = {"by": who(), "command": "upgrade-unit", "since": now(), "deploy": ""}
    out = remote.run(lock.take(s.state_dir, token, owner), root=True, timeout=60)
    if out.exited == 3:
        holder = lock.read_status(out.stdout, s.lock_grace).describe()
        raise _Refused(
            f"a deploy holds the lock ({holder}): nothing changed; wait for it, or "
            "`fab rollback` an interrupted one"
        )
    if not out.ok:
        why = (out.stderr.strip().splitlines() or [f"exit {out.exited}"])[-1]
        raise _Refused(f"the deploy lock could not be taken ({why}): nothing changed")
    return lock.LockedRemote(remote, s.state_dir, token)


def _under_lock(remote: Remote, o: Outcome, work) -> Outcome:
    """`work(locked)` while this run holds the deploy lock, released after whatever happens;
    `refused`, nothing run, when the lock is not ours."""
    try:
        locked = _take_lock(remote)
    except _Refused as e:
        o.result, o.message = "refused", str(e)
        return o
    try:
        work(locked)
    finally:
        locked.inner.run(lock.release(locked.state_dir, locked.token), root=True, timeout=60)
    return o


def upgrade_host(remote: Remote, dry_run: bool) -> Outcome:
    s = remote.settings
    if not dry_run:
        tools.require(remote, "upgrade-unit")
    o = Outcome(remote.name, "dry-run" if dry_run else "upgrade")
    plan = read_plan(remote)[0]
    o.diff = diff(plan)
    if not plan.changed:
        o.result, o.healthy = "unchanged", True
        o.message = (
            f"{s.gunicorn_unit} is already socket-activated by {s.gunicorn_socket_unit} "
            f"({plan.socket_path}): nothing to change"
        )
        return o
    if dry_run:
        o.result = "would-change"
        o.message = f"would write {', '.join(plan.changed)}; nothing changed (--dry-run)"
        return o
    return _under_lock(remote, o, lambda locked: _upgrade(locked, o, plan))


def _upgrade(remote: lock.LockedRemote, o: Outcome, plan: Plan) -> Outcome:
    """The change, under the lock: snapshot, stage, verify, install, switch, health; on a
    failure after the install, the old units back."""
    from tasks.snapshots import new_id

    s = remote.settings
    snap = o.snapshot = new_id()
    socket_present = bool(plan.old.get(s.gunicorn_socket_unit))
    try:
        _step(o, "snapshot", lambda: _ok(_root(remote, snapshot_script(s, snap, socket_present))))
    except _Failed as e:
        o.result, o.message = "failed", str(e)
        return o
    installed = False
    groups = unit_upgrade.values(plan.new[s.gunicorn_socket_unit], "Socket", "SocketGroup")
    group = groups[0] if groups else ""
    try:
        _step(o, "stage", lambda: _staged(remote, s, snap, plan))
        _step(o, "verify", lambda: _verify(remote, s, snap))
        installed = True
        _step(o, "daemon-reload", lambda: _root(remote, install_script(s, snap)))
        _step(o, "switch", lambda: _root(remote, switch_script(s, plan.socket_path, group)))
        _step(o, "health", lambda: health(remote, timeout=s.health_timeout))
        _step(o, "reload works", lambda: _reload_works(remote))
        o.result, o.healthy = "upgraded", True
        o.message = (
            f"{s.gunicorn_unit} now gets {plan.socket_path} from {s.gunicorn_socket_unit}; "
            f"old units in {folder(s)}/{snap}/old (fab upgrade-unit --undo)"
        )
    except _Failed as e:
        o.result, o.message = "failed", str(e)
        if installed:
            try:
                path = plan.socket_path
                _step(o, "undo: old units back", lambda: _root(remote, undo_script(s, snap, path)))
                _step(o, "undo: health", lambda: health(remote, timeout=s.health_timeout))
                o.result = "rolled-back"
                o.message = f"{e}; the old units are back and the site answers"
            except _Failed as e2:
                o.message = f"{e}; undo failed too: {e2}: run fab diagnose"
    return o


def _ok(r: tuple[bool, str]) -> tuple[bool, str]:
    return r[0], ("done" if r[0] else r[1])


def _staged(remote: Remote, s: Settings, snap: str, plan: Plan) -> tuple[bool, str]:
    out = remote.run(stage_command(s, snap, plan.notify), root=True, timeout=60)
    if not out.ok:
        return False, (out.stderr.strip() or "staging failed")[-300:]
    sums = {
        parts[1]: parts[2]
        for parts in (ln.split() for ln in out.stdout.splitlines())
        if len(parts) == 3 and parts[0] == "sha256"
    }
    want = {n: unit_upgrade.sha256(t) for n, t in plan.new.items()}
    if sums != want:
        return False, "the server built other texts than the ones planned: refused"
    return True, ", ".join(sorted(sums))


def _verify(remote: Remote, s: Settings, snap: str) -> tuple[bool, str]:
    out = remote.run(verify_command(s, snap), root=True, timeout=60)
    lines = [redact_text(ln) for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    mine = [ln for ln in lines if s.gunicorn_unit in ln or s.gunicorn_socket_unit in ln]
    if not out.ok or mine:
        return False, "; ".join(mine or lines)[-300:] or f"exit {out.exited}"
    return True, "no complaint"


def _reload_works(remote: Remote) -> tuple[bool, str]:
    s = remote.settings
    out = remote.run(
        f"pids=$( {unit_pids(s.gunicorn_unit)} ); "
        f"main=$(systemctl show -p MainPID --value {q(s.gunicorn_unit)}); "
        f"systemctl reload {q(s.gunicorn_unit)} || exit 1; "
        'echo "main=$main"; echo "pids=$(echo $pids)"',
        root=True,
        timeout=60,
    )
    if not out.ok:
        return False, redact_text(out.stderr.strip()[-200:] or "systemctl reload failed")
    kv = parse.key_values(out.stdout)
    main = int(kv.get("main") or 0)
    old = [int(p) for p in kv.get("pids", "").split() if p.isdigit() and int(p) != main]
    return health(remote, timeout=s.health_timeout, since_pids=old, main_pid=main)


def undo_host(remote: Remote) -> Outcome:
    s = remote.settings
    tools.require(remote, "upgrade-unit")
    o = Outcome(remote.name, "undo")
    snaps = read_plan_snapshots(remote)
    if not snaps:
        o.result, o.message = "failed", f"no unit snapshot under {folder(s)}: nothing to undo"
        return o
    snap = o.snapshot = snaps[-1]
    try:
        path = read_plan(remote)[0].socket_path
    except OpsError:
        path = s.socket

    def restore(locked: lock.LockedRemote) -> None:
        try:
            _step(o, "old units back", lambda: _root(locked, undo_script(s, snap, path)))
            _step(o, "health", lambda: health(locked, timeout=s.health_timeout))
            o.result, o.healthy = "restored", True
            o.message = f"{s.gunicorn_unit} restored from {folder(s)}/{snap}/old"
        except _Failed as e:
            o.result, o.message = "failed", f"{e}: run fab diagnose"

    return _under_lock(remote, o, restore)


def render(o: Outcome) -> None:
    c = console()
    c.print(f"[bold]cynow-ops upgrade-unit ({o.mode}): {o.host}[/]")
    if o.diff and o.mode != "undo" and o.result != "unchanged":
        for line in o.diff.splitlines():
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            c.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
    for st in o.steps:
        mark = "[green]✓[/]" if st.ok else "[red]✗[/]"
        # Details and the message quote the server (systemd-analyze, unit text): data.
        c.print(f"  {mark} {st.name} [dim]{st.seconds:.2f}s[/]  {markup(st.detail)}")
    colour = "green" if o.result in ("upgraded", "unchanged", "would-change", "restored") else "red"
    c.print(f"[{colour}]{o.result}[/]: {markup(o.message)}")


@task(
    help={
        **COMMON_HELP,
        "dry_run": "show the diff of every unit file and change nothing",
        "undo": "put back the units of the last upgrade's snapshot and restart gunicorn on them",
    }
)
@guarded
def upgrade_unit(c, dry_run=False, undo=False, target=None, json=False):
    """Turn gunicorn.service into a socket-activated unit (gunicorn.socket); --undo reverts.

    The user's values (User, Group, WorkingDirectory, Environment, ExecStart) are kept; added:
    gunicorn.socket (ListenStream= the unit's --bind path, SocketUser=www-data, SocketMode=0660),
    Requires=/After= the socket, Type=notify (gunicorn >= 20), ExecReload (HUP), KillMode=mixed.
    The old units are snapshotted, the new ones verified (systemd-analyze) before they are
    installed, the switch keeps the socket path served, a health gate ends it, and any failure
    puts the old units back. A unit already upgraded is left alone. The change (and --undo)
    holds the deploy lock: refused while a deploy, rollback or repair holds it.
    Exit codes: 0 upgraded, unchanged or restored (healthy), 1 failed (rolled back or not) or
    refused (lock held), 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    if dry_run and undo:
        from tasks.errors import ConfigError

        raise ConfigError("--dry-run and --undo together: choose one")
    work = undo_host if undo else (lambda r: upgrade_host(r, dry_run))
    outcomes = each_host(c, settings, work, render, json)
    emit(outcomes, SCHEMA, json, failed=lambda o: o.result in ("failed", "rolled-back", "refused"))
