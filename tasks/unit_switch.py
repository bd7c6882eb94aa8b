"""The root scripts of upgrade-unit that change the server, pure builders: the old units
snapshotted, the new ones staged, verified and installed, the switch that keeps the socket path
served (tasks/remote/socket_bridge.py holds it meanwhile), and the undo from a snapshot.

    STATE_DIR/unit-snapshots/ID/old/NAME   the unit files as they were (root-only, 0700)
    STATE_DIR/unit-snapshots/ID/new/NAME   the files written (staged, verified, installed)
    STATE_DIR/unit-snapshots/ID/meta       `socket=absent|present`, `socket_enabled=...`
"""

from __future__ import annotations

import os

from tasks import programs, service
from tasks.settings import Settings
from tasks.shell import join, q
from tasks.systemd import unit_pids
from tasks.unit_plan import SOCKET_USER, UNIT_DIR, folder


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
