"""Reload gunicorn: HUP to the master (graceful), or a full restart when it must."""

from __future__ import annotations

from tasks import parse
from tasks.shell import batch, q
from tasks.steps.context import Ctx, Parts, Step
from tasks.systemd import hup_main, journal_cursor, systemctl, systemctl_show, unit_pids


def reload_script(unit: str, graceful: bool) -> str:
    """The deploy's reload in one round trip, as root: the unit's state and processes before it,
    then a daemon-reload when systemd asks for one, the journal's position, and HUP to the
    master when `graceful` and the unit runs with its file unchanged (`mode=hup`), else
    reset-failed and a full restart (`mode=restart`). The `reload` part fails when they do."""
    u = q(unit)
    hup_allowed = '[ "$need" != yes ] && [ "$active" = active ]' if graceful else "false"
    act = "\n".join(
        [
            f"need=$(systemctl show -p NeedDaemonReload --value {u})",
            f"active=$(systemctl show -p ActiveState --value {u})",
            # HUP cannot apply a changed unit file; systemd must read it first.
            f'[ "$need" != yes ] || {systemctl("daemon-reload", unit)} || exit',
            f"if {hup_allowed}; then",
            f"  {journal_cursor(unit)}",
            f"  {hup_main(unit)} && echo mode=hup",
            "else",
            f"  {systemctl('reset-failed', unit)} 2>/dev/null",
            f"  {journal_cursor(unit)}",
            f"  {systemctl('restart', unit)} && echo mode=restart",
            "fi",
        ]
    )
    return batch(
        {
            "show": systemctl_show(
                [unit], ["ActiveState", "SubState", "MainPID", "NeedDaemonReload"]
            ),
            "pids": unit_pids(unit),
            "reload": act,
        }
    )


def read_reload(parts: Parts) -> dict:
    """What reload_script did: `hup` or `restart`, the master and the processes before it, and
    the journal's position just before the signal."""
    props = parse.key_values(parts.get("show").stdout)
    text = parts.get("reload").stdout
    return {
        "mode": parse.key_values(text).get("mode", ""),
        "main_pid": int(props.get("MainPID") or 0),
        "pids": sorted(int(p) for p in parts.get("pids").stdout.split() if p.isdigit()),
        "cursor": next(
            (ln.split("cursor: ", 1)[1] for ln in text.splitlines() if "cursor: " in ln), ""
        ),
    }


def reload(ctx: Ctx) -> str:
    """HUP to the master (graceful) unless --restart, a stopped unit or a changed unit file ask
    for a full restart; the server decides between them in the same round trip."""
    parts = ctx.script(reload_script(ctx.s.gunicorn_unit, graceful=not ctx.full_restart), root=True)
    parts.need("reload", "reloading gunicorn")
    r = read_reload(parts)
    ctx.journal_cursor = r["cursor"]
    if r["mode"] != "hup":
        ctx.reload_workers, ctx.reload_master = [], 0
        return "full restart"
    ctx.reload_workers = [p for p in r["pids"] if p != r["main_pid"]]
    ctx.reload_master = r["main_pid"]
    return f"HUP to the master (pid {r['main_pid']}): new workers, socket kept"


STEP = Step("reload", reload)
