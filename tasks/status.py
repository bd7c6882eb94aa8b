"""`fab status`: services, the unit's processes, the socket and the deployed commit, one screen."""

from __future__ import annotations

from fabric import task

from tasks import parse, shell
from tasks.checks import socket as socket_check
from tasks.common import COMMON_HELP, PARALLEL_HELP, console, each_host, emit, guarded, load
from tasks.fleet import parse_parallel
from tasks.git import git
from tasks.redact import redact_text
from tasks.runner import Remote
from tasks.settings import Settings
from tasks.shell import batch
from tasks.systemd import processes, systemctl_show

SCHEMA = "cynow-ops.status.v1"


def commit_lines(project_dir: str) -> str:
    """commit=, branch=, subject= lines of the deployed commit (empty when git cannot say)."""
    return "\n".join(
        [
            f'echo "commit=$({git(project_dir, "rev-parse", "HEAD")} 2>/dev/null)"',
            f'echo "branch=$({git(project_dir, "rev-parse", "--abbrev-ref", "HEAD")} 2>/dev/null)"',
            f'echo "subject=$({git(project_dir, "log", "-1", "--format=%s")} 2>/dev/null)"',
        ]
    )


def status_script(s: Settings, units: list[str]) -> str:
    return batch(
        {
            "units": systemctl_show(
                units,
                [
                    "Id",
                    "LoadState",
                    "ActiveState",
                    "SubState",
                    "UnitFileState",
                    "MainPID",
                    "NRestarts",
                    "Result",
                ],
            ),
            "processes": processes(s.gunicorn_unit),
            "listener": socket_check.listener_command(s),
            # This script runs as root: git, which runs what .git/config names, runs as the
            # checkout's owner.
            "commit": shell.as_owner(s.project_dir, commit_lines(s.project_dir)),
        }
    )


def parse_processes(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[0].isdigit():
            pid, ppid, user, rss, etime, args = parts
            out.append(
                {
                    "pid": int(pid),
                    "ppid": int(ppid),
                    "user": user,
                    "rss_kb": int(rss) if rss.isdigit() else None,
                    "elapsed": etime,
                    # A `-e SECRET_KEY=...` on gunicorn's command line stays on the server.
                    "args": redact_text(args),
                }
            )
    return out


def gather(remote: Remote) -> dict:
    s = remote.settings
    units = [s.gunicorn_unit, s.gunicorn_socket_unit, s.nginx_unit]
    out = remote.run(status_script(s, units), root=True)
    framed = shell.read_batch(out.stdout)
    parts = {k: v.text for k, v in framed.items()}
    li = socket_check.parse_listener(shell.read_batch(framed["listener"].text), s)
    return {
        "host": remote.name,
        "units": {
            uid: {
                "load": p.get("LoadState"),
                "active": p.get("ActiveState"),
                "sub": p.get("SubState"),
                "enabled": p.get("UnitFileState"),
                "main_pid": int(p.get("MainPID") or 0),
                "restarts": int(p.get("NRestarts") or 0),
                "result": p.get("Result"),
            }
            for uid, p in parse.systemctl_show(parts.get("units", "")).items()
        },
        "processes": parse_processes(parts.get("processes", "")),
        "socket": {
            "path": s.socket,
            "exists": li["exists"],
            "listening": li["listening"],
            **{k: li.get(k) for k in ("type", "owner", "group", "mode")},
        },
        **parse.key_values(parts.get("commit", "")),
    }


def render(st: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = console()
    c.print(f"[bold]cynow-ops status: {st['host']}[/]")
    t = Table("unit", "state", "enabled", "main pid", "restarts", title_justify="left")
    for uid, u in st["units"].items():
        if u["load"] == "not-found":
            t.add_row(uid, "[dim]not installed[/]", "", "", "")
            continue
        colour = {"active": "green", "failed": "red"}.get(u["active"], "yellow")
        t.add_row(
            uid,
            f"[{colour}]{u['active']} ({u['sub']})[/]",
            u["enabled"] or "",
            str(u["main_pid"] or ""),
            str(u["restarts"]),
        )
    c.print(t)
    p = Table(
        "pid",
        "ppid",
        "user",
        "rss",
        "elapsed",
        "command",
        title=f"processes of {next(iter(st['units']), 'the gunicorn unit')}",
        title_justify="left",
    )
    for proc in st["processes"]:
        p.add_row(
            str(proc["pid"]),
            str(proc["ppid"]),
            proc["user"],
            f"{(proc['rss_kb'] or 0) // 1024} MB",
            proc["elapsed"],
            escape(proc["args"]),
        )
    c.print(p if st["processes"] else "[yellow]no processes in the unit[/]")
    so = st["socket"]
    state = (
        "[green]listening[/]"
        if so["listening"]
        else "[red]stale: nobody listens[/]"
        if so["exists"]
        else "[red]missing[/]"
    )
    extra = f" ({so['type']}, {so['owner']}:{so['group']} {so['mode']})" if so["exists"] else ""
    c.print(f"socket {so['path']}: {state}{extra}")
    c.print(
        f"deployed: {st.get('commit', '')[:12] or '[red]no checkout[/]'} on "
        f"{escape(st.get('branch') or '?')}: {escape(st.get('subject', ''))}"
    )


@task(help={**COMMON_HELP, **PARALLEL_HELP})
@guarded
def status(c, target=None, json=False, parallel=None):
    """Show services, gunicorn's processes, the socket and the deployed commit.

    Read-only: the guide's `systemctl status`, `ps aux | grep gunicorn` and `ls -l` of the
    socket in one screen; processes are those of the unit's own control group. Exit codes: 0
    shown, 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    work = each_host(c, settings, gather, render, json, parse_parallel(parallel))
    emit(work, SCHEMA, json, single=False)
