"""`fab info`: what the target server is."""

from __future__ import annotations

from fabric import task

from tasks import parse
from tasks.cli import COMMON_HELP, PARALLEL_HELP, console, each_host, emit, guarded, load
from tasks.fleet import parse_parallel
from tasks.runner import Remote
from tasks.settings import Settings
from tasks.shell import as_owner, as_user_here, batch, q, read_batch
from tasks.status import commit_lines
from tasks.systemd import systemctl_show

SCHEMA = "cynow-ops.info.v1"


def info_script(project_dir: str, python: str, units: list[str], app_user: str = "cynow") -> str:
    """One round trip for `fab info`: key=value lines, and the units' `systemctl show`.

    The venv's python runs as the app user and git as the checkout's owner, never as the
    operator: both run code the app user controls (sitecustomize, .git/config)."""
    about = [
        "printf 'hostname=%s\\n' \"$(hostname)\"",
        'printf \'os=%s\\n\' "$(. /etc/os-release && echo "$PRETTY_NAME")"',
        "printf 'kernel=%s\\n' \"$(uname -r)\"",
        "printf 'systemd=%s\\n' \"$(systemctl --version | head -n1)\"",
    ]
    python_line = f"printf 'python=%s\\n' \"$({q(python)} -I --version 2>&1)\""
    return batch(
        {
            "about": "\n".join(about),
            "python": as_user_here(app_user, python_line),
            "commit": as_owner(project_dir, commit_lines(project_dir)),
            "units": systemctl_show(
                units, ["Id", "LoadState", "ActiveState", "SubState", "UnitFileState"]
            ),
        }
    )


def units_of(settings: Settings) -> list[str]:
    return [settings.gunicorn_unit, settings.gunicorn_socket_unit, settings.nginx_unit]


def parse_info(stdout: str) -> dict:
    """The info script's output as plain data (see info_script)."""
    parts = read_batch(stdout)
    units = parts["units"].text
    facts = {
        **parse.key_values(parts["about"].text),
        **parse.key_values(parts["python"].text),
        **parse.key_values(parts["commit"].text),
    }
    keys = ("hostname", "os", "kernel", "systemd", "python", "commit", "branch", "subject")
    return {
        **{k: facts.get(k, "") for k in keys},
        "units": {
            uid: {
                "load": p.get("LoadState", ""),
                "active": p.get("ActiveState", ""),
                "sub": p.get("SubState", ""),
                "enabled": p.get("UnitFileState", ""),
            }
            for uid, p in parse.systemctl_show(units).items()
        },
    }


def gather(remote: Remote) -> dict:
    s = remote.settings
    out = remote.run(info_script(s.project_dir, s.python, units_of(s), s.app_user))
    return {"host": remote.name, **parse_info(out.stdout)}


def _unit_text(u: dict) -> str:
    if u["load"] == "not-found":
        return "[dim]not installed[/]"
    colour = {"active": "green", "failed": "red"}.get(u["active"], "yellow")
    return f"[{colour}]{u['active']} ({u['sub']})[/], {u['enabled'] or 'unknown'}"


def render(facts: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"cynow-ops info: {facts['host']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    commit = facts["commit"][:12] or "[red]no checkout[/]"
    e = escape  # server text is data, never markup
    rows = [
        ("hostname", e(facts["hostname"])),
        ("os", e(f"{facts['os']} (kernel {facts['kernel']})")),
        ("systemd", e(facts["systemd"])),
        ("venv python", e(facts["python"]) or "[red]missing[/]"),
        ("deployed", f"{commit} on {e(facts['branch'] or '?')}: {e(facts['subject'])}"),
    ]
    rows += [(uid, _unit_text(u)) for uid, u in facts["units"].items()]
    for k, v in rows:
        table.add_row(k, v)
    console().print(table)


@task(help={**COMMON_HELP, **PARALLEL_HELP})
@guarded
def info(c, target=None, json=False, parallel=None):
    """Show what the target is: OS, systemd, venv Python, deployed commit, unit states.

    Read-only. Exit codes: 0 shown, 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    work = each_host(c, settings, gather, render, json, parse_parallel(parallel))
    emit(work, SCHEMA, json, single=False)
