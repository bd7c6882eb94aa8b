"""Commands that read and drive systemd units and the processes in them (pure builders)."""

from __future__ import annotations

from tasks.shell import join, q


def systemctl_show(units: list[str], props: list[str]) -> str:
    return join("systemctl", "show", "--no-pager", *(f"--property={p}" for p in props), *units)


def unit_pids(unit: str) -> str:
    """PIDs in a unit's own control group (cgroup v1 named hierarchy, v2, or hybrid), one a
    line: what the unit really runs, unlike `pgrep gunicorn`, which matches anyone's process."""
    return (
        f"cg=$(systemctl show -p ControlGroup --value {q(unit)}); "
        # A stopped unit has no ControlGroup property, but leftovers still sit in its group.
        f'[ -n "$cg" ] || cg="/$(systemctl show -p Slice --value {q(unit)})/"{q(unit)}; '
        'for f in "/sys/fs/cgroup/systemd$cg/cgroup.procs" '
        '"/sys/fs/cgroup/unified$cg/cgroup.procs" "/sys/fs/cgroup$cg/cgroup.procs"; '
        'do [ -r "$f" ] && { cat "$f"; exit 0; }; done'
    )


def processes(unit: str) -> str:
    """`ps` of a unit's processes (the guide's `ps aux | grep gunicorn`, without strangers)."""
    return (
        f"pids=$( ( {unit_pids(unit)} ) | paste -sd, -); "
        '[ -z "$pids" ] || ps -o pid=,ppid=,user=,rss=,etime=,args= -p "$pids"'
    )


def systemctl(verb: str, unit: str) -> str:
    if verb not in ("start", "stop", "restart", "reset-failed", "daemon-reload", "enable"):
        raise ValueError(f"not a systemctl verb this tool uses: {verb}")
    return join("systemctl", verb) if verb == "daemon-reload" else join("systemctl", verb, unit)


def hup_main(unit: str) -> str:
    """Graceful reload of gunicorn: HUP to the master only (new workers start, old ones drain,
    the socket stays). The guide's unit has no ExecReload, so `systemctl reload` would fail."""
    return join("systemctl", "kill", "--kill-whom=main", "--signal=HUP", unit)


def kill_pids(pids: list[int], signal: str = "KILL") -> str:
    """Signal exactly these processes, by PID (never by name)."""
    if signal not in ("KILL", "TERM", "HUP"):
        raise ValueError(f"unexpected signal {signal}")
    clean = [int(p) for p in pids]
    if not clean or any(p <= 1 for p in clean):
        raise ValueError(f"refusing to signal PIDs {pids}")
    return join("kill", f"-{signal}", *clean)


def journal_cursor(unit: str) -> str:
    """The journal's current position (`-- cursor: …`), to read only what is logged after it."""
    return join("journalctl", "-u", unit, "-n", "0", "--show-cursor", "--no-pager")
