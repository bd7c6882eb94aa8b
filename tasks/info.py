"""`fab info`: what the target server is, and its layout as the server itself says it is
(tasks/layout.py: the unit, its socket unit, nginx's effective config, Django's settings as the
service runs them), each value with its source and the config's value beside it."""

from __future__ import annotations

from pathlib import Path

from fabric import task

from tasks import diagnose, layout, parse
from tasks.checks import django, nginx, services, unit_file
from tasks.common import COMMON_HELP, PARALLEL_HELP, console, each_host, emit, guarded, load
from tasks.connect import target_hosts
from tasks.errors import ConfigError, ConnectError
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


# The diagnosis's facts the layout is read from: the units, nginx -T, the Django probe and
# gunicorn's config file (with GUNICORN_CMD_ARGS as the service has it).
GUNICORN_CONFIG = next(f for f in unit_file.FACTS if f.name == "gunicorn_config")
LAYOUT_FACTS = [*services.FACTS, *nginx.FACTS, django.FACTS[0], GUNICORN_CONFIG]


def gather(remote: Remote) -> dict:
    """The info script, then the layout's facts. The layout reads as root (nginx -T, the probe
    as the service): a login without sudo still gets the rest, and the reason the layout is
    missing."""
    s = remote.settings
    info = remote.run(info_script(s.project_dir, s.python, units_of(s), s.app_user))
    doc = {"host": remote.name, **parse_info(info.stdout), "layout": []}
    jobs = {f.name: diagnose.job(f, f.command(s, diagnose.Facts()), s) for f in LAYOUT_FACTS}
    try:
        out = remote.many(jobs)
    except ConnectError as e:
        doc["layout_error"] = str(e)
        return doc
    facts = diagnose.parse_first_round(out, s)
    values = layout.discover(facts, s)
    doc["layout"] = [v.to_json() for v in values]
    doc["layout_conflicts"] = layout.conflicts(values)
    return doc


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
    if facts.get("layout_error"):
        console().print(
            f"[yellow]layout not read[/]: {escape(facts['layout_error'])}", highlight=False
        )
    else:
        render_layout(facts.get("layout", []))
        for line in facts.get("layout_conflicts", []):
            console().print(f"[yellow]{escape(line)}[/]", highlight=False)


def render_layout(values: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="layout (what the server says)", title_justify="left")
    for name in ("setting", "server", "from", "config"):
        table.add_column(name)
    for v in values:
        server = escape(v["value"]) if v["value"] is not None else "[dim]not said[/]"
        if v["configured"] is None:
            config = "[dim]-[/]"
        elif v["disagrees"]:
            config = f"[red]{escape(v['configured'])} ({v['config_source']})[/]"
        else:
            config = f"[green]same[/] ({v['config_source']})"
        table.add_row(v["key"], server, v["source"], config)
    console().print(table)
    wrong = [v["key"] for v in values if v["disagrees"]]
    if wrong:
        console().print(
            f"[yellow]the server contradicts the config on {escape(', '.join(wrong))}[/]: "
            "the server's value is the one in force"
        )


def write_config_file(path: str, target: str, facts: dict, settings: Settings) -> None:
    """A target definition from the layout, written to a new file (never over one)."""
    values = [
        layout.Value(**{k: v for k, v in d.items() if k != "disagrees"}) for d in facts["layout"]
    ]
    text = layout.target_config(target, facts["host"], values, settings)
    with open(path, "x", encoding="utf-8") as f:
        f.write(text)


@task(
    help={
        **COMMON_HELP,
        **PARALLEL_HELP,
        "write-config": "write a target definition from the server's layout to this new file",
    }
)
@guarded
def info(c, target=None, json=False, parallel=None, write_config=None):
    """Show what the target is: OS, systemd, venv Python, deployed commit, unit states, and
    the layout the server says it has (each value with its source, against the config).

    Read-only on the server. --write-config FILE writes a target definition from the layout
    for you to review (one host; FILE must not exist). Exit codes: 0 shown, 2 could not
    connect, 3 bad configuration or FILE.
    """
    settings = load(c, target)
    if write_config is not None:
        # Bad input is refused before connecting, and nothing is written.
        out = Path(write_config)
        if out.exists() or out.is_symlink():
            raise ConfigError(
                f"--write-config: {write_config} exists; name a new file (it is never overwritten)"
            )
        if not out.parent.is_dir():
            raise ConfigError(f"--write-config: no directory {out.parent}; create it first")
        if len(target_hosts(c, settings)) != 1:
            raise ConfigError("--write-config takes one host: name it with -H or a one-host target")
    work = each_host(c, settings, gather, render, json, parse_parallel(parallel))
    if write_config is not None and isinstance(work[0], dict):
        if work[0].get("layout_error"):
            raise ConnectError(
                f"--write-config: the layout could not be read ({work[0]['layout_error']}); "
                "nothing written"
            )
        write_config_file(write_config, settings.target or "server", work[0], settings)
        if not json:
            console().print(f"wrote {write_config}: review it, then use it with fab -f")
    emit(work, SCHEMA, json, single=False)
