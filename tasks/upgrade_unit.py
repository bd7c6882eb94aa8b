"""`fab upgrade-unit`: the guide's gunicorn unit turned into the socket-activated pair gunicorn's
docs recommend (gunicorn.socket holds the socket, gunicorn.service gets it, ExecReload, notify),
the user's values kept. Snapshot of the old units, `systemd-analyze verify` of the new ones,
daemon-reload, a switch that keeps the socket path served, the health gate; any failure puts
the old units back. `--undo` restores the last snapshot; `--dry-run` shows the diff.

    STATE_DIR/unit-snapshots/ID/old/NAME   the unit files as they were (root-only, 0700)
    STATE_DIR/unit-snapshots/ID/new/NAME   the files written (staged, verified, installed)
    STATE_DIR/unit-snapshots/ID/meta       `socket=absent|present`, `socket_enabled=...`
"""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import asdict, dataclass, field

from fabric import task

from tasks import parse, programs, service, shell
from tasks.common import COMMON_HELP, console, each_host, emit, guarded, load
from tasks.errors import OpsError
from tasks.redact import redact_text
from tasks.remote import unit_upgrade
from tasks.restart import Step  # one step of a run: name, ok, detail, seconds
from tasks.runner import Remote
from tasks.settings import Settings
from tasks.shell import batch, join, q
from tasks.steps.health import health
from tasks.systemd import systemctl_show, unit_pids

SCHEMA = "cynow-ops.upgrade-unit.v1"
UNIT_DIR = "/etc/systemd/system"
SOCKET_USER = "www-data"
# Test hook (the client's environment, never the server's): fail right after this step.
FAULT_ENV = "CYNOW_OPS_FAULT"


# ---- builders (pure) -------------------------------------------------------------------------


def folder(s: Settings) -> str:
    return f"{s.state_dir}/unit-snapshots"


def read_script(s: Settings) -> str:
    """As root: the unit as systemd has it, its file's kind and owner, the socket unit's file."""
    u, sk = s.gunicorn_unit, s.gunicorn_socket_unit
    return batch(
        {
            "cat": join("systemctl", "cat", "--no-pager", u),
            "show": systemctl_show(
                [u], ["FragmentPath", "DropInPaths", "ActiveState", "MainPID", "LoadState"]
            ),
            "socket": join("systemctl", "cat", "--no-pager", sk) + " 2>/dev/null",
            "socket_show": systemctl_show([sk], ["LoadState", "ActiveState", "UnitFileState"]),
            "kind": f"stat -c '%F %U' -- {q(f'{UNIT_DIR}/{u}')}",
            "snapshots": f"ls -1 {q(folder(s))} 2>/dev/null | sort",
        }
    )


def version_command(s: Settings, binary: str) -> str:
    """The unit's gunicorn asked for its version as the service runs (its user, never root)."""
    return service.as_service(s.gunicorn_unit, s.app_user, join(binary, "--version"))


def snapshot_script(s: Settings, snap: str, socket_present: bool) -> str:
    """As root, umask 077: the old files copied (no symlink followed: -P) into ID/old, and
    ID/new for the staged ones."""
    d = f"{folder(s)}/{snap}"
    lines = [
        "umask 077",
        f"mkdir -p {q(folder(s))} && chmod 700 {q(folder(s))} || exit 1",
        f"mkdir {q(d)} {q(d + '/old')} {q(d + '/new')} || exit 1",
        f"cp -P --preserve=mode,timestamps -- {q(f'{UNIT_DIR}/{s.gunicorn_unit}')} "
        f"{q(d + '/old/')} || exit 1",
    ]
    if socket_present:
        lines.append(
            f"cp -P --preserve=mode,timestamps -- {q(f'{UNIT_DIR}/{s.gunicorn_socket_unit}')} "
            f"{q(d + '/old/')} || exit 1"
        )
    state = f"$(systemctl is-enabled {q(s.gunicorn_socket_unit)} 2>/dev/null)"
    lines.append(
        f'printf "socket=%s\\nsocket_enabled=%s\\n" '
        f'{"present" if socket_present else "absent"} "{state}" > {q(d + "/meta")}'
    )
    return "\n".join(lines)


def stage_command(s: Settings, snap: str, notify: bool) -> str:
    """As root: tasks/remote/unit_upgrade.py with the system python writes the new texts into
    ID/new from `systemctl cat` (the unit's values never travel in a command line)."""
    return "umask 022; " + join(
        "python3",
        "-I",
        "-B",
        "-c",
        programs.source("unit_upgrade"),
        "stage",
        s.gunicorn_unit,
        s.gunicorn_socket_unit,
        SOCKET_USER,
        "notify" if notify else "simple",
        f"{folder(s)}/{snap}/new",
    )


def verify_command(s: Settings, snap: str) -> str:
    """systemd's own verification of the staged files, before they are installed."""
    new = f"{folder(s)}/{snap}/new"
    return (
        join(
            "systemd-analyze",
            "verify",
            f"{new}/{s.gunicorn_socket_unit}",
            f"{new}/{s.gunicorn_unit}",
        )
        + " 2>&1"
    )


def install_script(s: Settings, snap: str) -> str:
    """As root: the staged files into /etc/systemd/system (written beside, then renamed over:
    a symlink there is replaced, never followed), daemon-reload, the socket unit enabled."""
    new = f"{folder(s)}/{snap}/new"
    lines = []
    for name in (s.gunicorn_socket_unit, s.gunicorn_unit):
        dest = f"{UNIT_DIR}/{name}"
        lines.append(
            f"install -m 0644 -o root -g root -T -- {q(f'{new}/{name}')} {q(dest + '.cynow-new')}"
            f" && mv -fT -- {q(dest + '.cynow-new')} {q(dest)} || exit 1"
        )
    lines += [
        "systemctl daemon-reload || exit 1",
        f"systemctl enable --quiet {q(s.gunicorn_socket_unit)} || exit 1",
    ]
    return "\n".join(lines)


BRIDGE_SECONDS = 60


def bridge_command(s: Settings, path: str) -> str:
    """tasks/remote/socket_bridge.py as the unit's user and group (never root), with the system
    python: it holds the socket path while one gunicorn gives way to the other."""
    return service.as_service(
        s.gunicorn_unit,
        s.app_user,
        join(
            "exec",
            "/usr/bin/python3",
            "-I",
            "-B",
            "-c",
            programs.source("socket_bridge"),
            path,
            BRIDGE_SECONDS,
        ),
    )


def as_unit_user(s: Settings, argv: list[str]) -> str:
    """A command as the unit's user and groups (for what the app user may do to its own files)."""
    return service.as_service(s.gunicorn_unit, s.app_user, join(*argv))


def bridge_lines(s: Settings, path: str, required: bool) -> list[str]:
    """Shell lines: the bridge started in the background ($bridge its PID, $out its output),
    waited for until it holds the path. Not `required` (the undo): without it, go on."""
    give_up = 'rm -f "$out"; exit 1' if required else "bridge="
    return [
        "out=$(mktemp) || exit 1",
        f'{bridge_command(s, path)} < /dev/null > "$out" 2>&1 &',
        "bridge=$!",
        "i=0; until grep -q '^ready' \"$out\"; do",
        "  i=$((i+1))",
        '  if [ $i -gt 500 ] || ! kill -0 "$bridge" 2>/dev/null; then',
        f'    cat "$out" >&2; kill "$bridge" 2>/dev/null; {give_up}; break',
        "  fi",
        "  sleep 0.01",
        "done",
    ]


def drain_lines(path: str) -> list[str]:
    """Shell lines: wait (up to 2 s) until the listener $main holds on `path` (nameless now:
    the bridge has the name) has no connection queued."""
    return [
        "i=0; while [ $i -lt 200 ]; do",
        f'  n=$(ss -xlnpH | grep -F -- {q(" " + path + " ")} | grep -F "pid=$main," '
        "| awk '{print $3}' | head -n 1)",
        '  [ "${n:-0}" = 0 ] && break; i=$((i+1)); sleep 0.01',
        "done",
    ]


def switch_script(s: Settings, path: str, group: str = "") -> str:
    """As root, in one round trip: from the old gunicorn (which bound the socket itself) to
    the socket unit, every request answered. systemd refuses to start a socket unit while its
    service is active, and a gunicorn that bound its socket unlinks the path on a graceful stop
    (which would delete the socket unit's file). So: the bridge takes the path first (renamed
    over it: the old socket keeps serving what is queued on it, nothing new reaches it); the old
    master gets KILL (it unlinks nothing) once its queue is empty, its workers TERM (they finish
    their requests); as soon as the unit is down the socket unit binds the path and the new
    service starts on it; the bridge hands what it held to the new socket and exits.

    systemd binds the new socket as root:root and gives it to SocketUser/SocketGroup a moment
    later: meanwhile www-data could not connect. With the directory set-group-ID for that
    moment (by the app user, who owns it), the socket is born in the directory's group."""
    u, sk = q(s.gunicorn_unit), q(s.gunicorn_socket_unit)
    d = os.path.dirname(path)
    setgid = ["sg=no"]
    if group:
        setgid += [
            f'if [ ! -g {q(d)} ] && [ "$(stat -c %G -- {q(d)})" = {q(group)} ]; then',
            f"  {as_unit_user(s, ['chmod', 'g+s', '--', d])} && sg=yes",
            "fi",
        ]
    return "\n".join(
        setgid
        + bridge_lines(s, path, required=True)
        + [
            f"main=$(systemctl show -p MainPID --value {u})",
            f"pids=$( {unit_pids(s.gunicorn_unit)} )",
            'if [ "${main:-0}" -gt 1 ]; then',
        ]
        + drain_lines(path)
        + [
            '  kill -KILL "$main"',
            '  for p in $pids; do [ "$p" = "$main" ] || kill -TERM "$p" 2>/dev/null; done',
            "fi",
            "i=0",
            "while :; do",
            f"  st=$(systemctl show -p ActiveState --value {u})",
            '  case "$st" in failed|inactive) break;; esac',
            '  i=$((i+1)); [ $i -lt 3000 ] || { echo "still $st" >&2; break; }',
            "  sleep 0.01",
            "done",
            f"systemctl reset-failed {u} 2>/dev/null",
            f"systemctl start {sk} && systemctl start {u}",
            "rc=$?",
            # On a failure the bridge stays: it hands what it holds to whatever binds the path
            # next (the old unit, put back), or gives up after BRIDGE_SECONDS.
            '[ "$rc" -ne 0 ] || wait "$bridge"',
            f'[ "$sg" = no ] || {as_unit_user(s, ["chmod", "g-s", "--", d])}',
            'cat "$out"; rm -f "$out"',
            "exit $rc",
        ]
    )


def undo_script(s: Settings, snap: str, path: str) -> str:
    """As root: the old files back from snapshot ID (a socket unit that was not there removed,
    and disabled), daemon-reload; then, when the switch had happened (or the unit is down), the
    old service started on its own socket, the bridge holding the path meanwhile (the
    socket-activated gunicorn unlinks nothing when it stops; the old one replaces the file)."""
    d = f"{folder(s)}/{snap}"
    svc, sk = s.gunicorn_unit, s.gunicorn_socket_unit
    return "\n".join(
        [
            f"[ -f {q(d + '/old/' + svc)} ] || {{ echo 'no such snapshot' >&2; exit 4; }}",
            f"sock=$(sed -n 's/^socket=//p' {q(d + '/meta')})",
            f"was=$(sed -n 's/^socket_enabled=//p' {q(d + '/meta')})",
            f"install -m 0644 -o root -g root -T -- {q(d + '/old/' + svc)} "
            f"{q(f'{UNIT_DIR}/{svc}.cynow-old')} && "
            f"mv -fT -- {q(f'{UNIT_DIR}/{svc}.cynow-old')} {q(f'{UNIT_DIR}/{svc}')} || exit 1",
            'if [ "$sock" = present ]; then',
            f"  install -m 0644 -o root -g root -T -- {q(d + '/old/' + sk)} "
            f"{q(f'{UNIT_DIR}/{sk}.cynow-old')} && "
            f"mv -fT -- {q(f'{UNIT_DIR}/{sk}.cynow-old')} {q(f'{UNIT_DIR}/{sk}')} || exit 1",
            "else",
            f"  systemctl disable --quiet {q(sk)} 2>/dev/null",
            f"  rm -f -- {q(f'{UNIT_DIR}/{sk}')}",
            "fi",
            # Switched (the socket unit runs) or down: the old unit must start afresh. Else the
            # old gunicorn still runs on its own socket: reading the old files back is enough.
            "restart=no",
            f"systemctl is-active --quiet {q(sk)} && restart=yes",
            f"systemctl is-active --quiet {q(svc)} || restart=yes",
            "systemctl daemon-reload || exit 1",
            'if [ "$restart" = yes ]; then',
            "bridge=; out=",
            f"if [ -S {q(path)} ]; then",
            *bridge_lines(s, path, required=False),
            "fi",
            f"main=$(systemctl show -p MainPID --value {q(svc)})",
            'if [ -n "$bridge" ] && [ "${main:-0}" -gt 1 ]; then',
            *drain_lines(path),
            "fi",
            f"systemctl stop {q(svc)}",
            f'[ "$sock" = present ] || systemctl stop {q(sk)} 2>/dev/null',
            f"systemctl reset-failed {q(svc)} {q(sk)} 2>/dev/null",
            f"systemctl start {q(svc)} || exit 1",
            'if [ -n "$bridge" ]; then wait "$bridge"; cat "$out"; fi',
            '[ -z "$out" ] || rm -f "$out"',
            "echo restarted",
            "else",
            "echo 'the old gunicorn still ran: files back, no restart'",
            "fi",
            'if [ "$sock" = present ] && [ "$was" = enabled ]; then '
            f"systemctl enable --quiet {q(sk)}; fi",
            "true",
        ]
    )


# ---- the plan (pure) -------------------------------------------------------------------------


@dataclass
class Plan:
    """What the server has and what upgrade-unit would write."""

    old: dict[str, str]  # unit name -> current text ("" when absent)
    new: dict[str, str]  # unit name -> text to write
    socket_path: str
    notify: bool
    version: str

    @property
    def changed(self) -> list[str]:
        return [n for n in self.new if self.old.get(n, "") != self.new[n]]


def diff(plan: Plan) -> str:
    """The unified diff of every file, secrets redacted (it is printed)."""
    out = []
    for name in plan.new:
        old, new = plan.old.get(name, ""), plan.new[name]
        if old == new:
            continue
        before = f"{UNIT_DIR}/{name}" if old else "/dev/null"
        for line in difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), before, f"{UNIT_DIR}/{name}"
        ):
            out.append(redact_text(line if line.endswith("\n") else line + "\n"))
    return "".join(out)


def make_plan(s: Settings, parts: shell.Parts, version: str) -> Plan:
    """The plan from read_script's parts and the gunicorn version; OpsError for a unit this
    upgrade will not rewrite."""
    show = parse.key_values(parts["show"].text)
    if show.get("LoadState") != "loaded":
        raise OpsError(f"{s.gunicorn_unit} is not loaded: nothing to upgrade")
    if show.get("DropInPaths", "").strip():
        raise OpsError(
            f"{s.gunicorn_unit} has drop-ins ({show['DropInPaths']}): merge them into the unit "
            "first (systemctl edit --full), then run upgrade-unit"
        )
    want = f"{UNIT_DIR}/{s.gunicorn_unit}"
    if show.get("FragmentPath") != want or parts["kind"].text.strip() != "regular file root":
        raise OpsError(
            f"{s.gunicorn_unit} is not root's own file {want} (FragmentPath="
            f"{show.get('FragmentPath')}, {parts['kind'].text.strip() or 'missing'}): not rewritten"
        )
    try:
        _path, old = unit_upgrade.fragment(parts["cat"].text)
        path = unit_upgrade.socket_path(old)
    except unit_upgrade.Unsupported as e:
        raise OpsError(f"{s.gunicorn_unit}: {e}") from None
    major = unit_upgrade.gunicorn_major(version)
    if major is None:
        raise OpsError(f"the unit's gunicorn gave no version ({version.strip()[:80]!r})")
    notify = major >= 20
    socket_old = ""
    if parts["socket"].text.startswith("# /"):
        socket_old = unit_upgrade.fragment(parts["socket"].text)[1]
    new = unit_upgrade.plan(parts["cat"].text, s.gunicorn_socket_unit, SOCKET_USER, notify)
    service_done = new[s.gunicorn_unit] == old
    socket_same = new[s.gunicorn_socket_unit] == socket_old
    if (socket_old or service_done) and not (service_done and socket_same):
        # Half done, or a socket unit of someone else's: the switch assumes a gunicorn that
        # binds its own socket and no socket unit, so neither is touched.
        why = (
            "exists and differs from what upgrade-unit writes"
            if socket_old and not socket_same
            else "exists while the service still binds its own socket"
            if socket_old
            else "is missing, but the service is already the socket-activated one"
        )
        raise OpsError(f"{s.gunicorn_socket_unit} {why}: nothing touched (see --dry-run)")
    return Plan(
        {s.gunicorn_unit: old, s.gunicorn_socket_unit: socket_old}, new, path, notify, version
    )


# ---- running it --------------------------------------------------------------------------------


@dataclass
class Outcome:
    host: str
    mode: str  # upgrade | dry-run | undo
    result: str = ""  # upgraded | unchanged | would-change | restored | rolled-back | failed
    message: str = ""
    diff: str = ""
    snapshot: str = ""
    steps: list[Step] = field(default_factory=list)
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
    o.steps.append(Step(name, ok, detail, time.monotonic() - t0))
    if not ok:
        raise _Failed(f"{name}: {detail}")
    if os.environ.get(FAULT_ENV) == f"upgrade-unit:after-{name}":
        o.steps.append(Step(f"fault injected after {name}", False, FAULT_ENV))
        raise _Failed(f"fault injected after {name}")
    return detail


def _root(remote: Remote, command: str, timeout: float = 120) -> tuple[bool, str]:
    out = remote.run(command, root=True, timeout=timeout)
    text = (out.stdout + out.stderr).strip().splitlines()
    return out.ok, redact_text(text[-1]) if text else "done"


def read_plan(remote: Remote) -> tuple[Plan, list[str]]:
    s = remote.settings
    out = remote.run(read_script(s), root=True)
    parts = shell.read_batch(out.stdout)
    try:
        text = unit_upgrade.fragment(parts["cat"].text)[1] if parts["cat"].text else ""
    except unit_upgrade.Unsupported as e:
        raise OpsError(f"{s.gunicorn_unit}: {e}; merge them into the unit first") from None
    start = unit_upgrade.values(text, "Service", "ExecStart")
    # systemd's prefixes (-, @, +, !) are not part of the path.
    binary = start[0].split()[0].lstrip("-@+!:") if start else f"{s.venv}/bin/gunicorn"
    v = remote.run(version_command(s, binary), root=True, timeout=60)
    if not v.ok:
        raise OpsError(
            f"could not ask {binary} for its version as the service user: "
            f"{(service.refusal(v.stderr) or v.stderr.strip())[-200:]}"
        )
    snaps = [ln for ln in parts["snapshots"].text.split() if ln]
    return make_plan(s, parts, v.stdout + v.stderr), snaps


def upgrade_host(remote: Remote, dry_run: bool) -> Outcome:
    s = remote.settings
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
    from tasks.snapshots import new_id

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
    try:
        _step(o, "old units back", lambda: _root(remote, undo_script(s, snap, path)))
        _step(o, "health", lambda: health(remote, timeout=s.health_timeout))
        o.result, o.healthy = "restored", True
        o.message = f"{s.gunicorn_unit} restored from {folder(s)}/{snap}/old"
    except _Failed as e:
        o.result, o.message = "failed", f"{e}: run fab diagnose"
    return o


def read_plan_snapshots(remote: Remote) -> list[str]:
    out = remote.run(f"ls -1 {q(folder(remote.settings))} 2>/dev/null | sort", root=True)
    return [ln for ln in out.stdout.split() if ln]


def render(o: Outcome) -> None:
    c = console()
    c.print(f"[bold]cynow-ops upgrade-unit ({o.mode}): {o.host}[/]")
    if o.diff and o.mode != "undo" and o.result != "unchanged":
        for line in o.diff.splitlines():
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            c.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
    for st in o.steps:
        mark = "[green]✓[/]" if st.ok else "[red]✗[/]"
        c.print(f"  {mark} {st.name} [dim]{st.seconds:.2f}s[/]  {st.detail}")
    colour = "green" if o.result in ("upgraded", "unchanged", "would-change", "restored") else "red"
    c.print(f"[{colour}]{o.result}[/]: {o.message}")


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
    puts the old units back. A unit already upgraded is left alone.
    Exit codes: 0 upgraded, unchanged or restored (healthy), 1 failed (rolled back or not),
    2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    if dry_run and undo:
        from tasks.errors import ConfigError

        raise ConfigError("--dry-run and --undo together: choose one")
    work = undo_host if undo else (lambda r: upgrade_host(r, dry_run))
    outcomes = each_host(c, settings, work, render, json)
    emit(outcomes, SCHEMA, json, failed=lambda o: o.result in ("failed", "rolled-back"))
