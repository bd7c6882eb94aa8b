"""The server's layout as the server itself says it is: the gunicorn unit (User, Group,
WorkingDirectory, ExecStart's venv, binds and app, EnvironmentFile names), its socket unit,
nginx's effective config (the location serving the URL prefix) and Django's settings as the
service runs them. Pure: built from the facts the diagnosis reads (tasks/checks), so it costs
no round trip of its own.

Each value carries where it came from. A value the config sets is an expectation: when the
server disagrees, that is a finding with both values and the one the service really uses.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from tasks.checks.base import Facts
from tasks.checks.nginx import location_block, proxy_socket, site_of
from tasks.checks.unit_file import bind_of, effective_binds, gunicorn_settings
from tasks.discovery import venv_of
from tasks.remote.gunicorn_argv import NOT_LITERAL, exec_argv, gunicorn_args
from tasks.settings import DEFAULTS, Settings, tcp_address

SOURCES = (
    "unit",
    "socket unit",
    "gunicorn config",
    "nginx",
    "django",
    "config",
    "discovered",
    "default",
)
# The socket unit's file: (layout key, property, systemd's value when the unit sets none).
SOCKET_FILE = (
    ("socket_user", "SocketUser", "root"),
    ("socket_group", "SocketGroup", "root"),
    ("socket_mode", "SocketMode", "0666"),
)
# Where Django serves its static files when the probe did not say (Django's own default).
STATIC_URL = "/static/"


@dataclass(frozen=True)
class Value:
    """One layout value: what the server says (`value`, from `source`), and the config's value
    for the same key (`configured`, from `config` or `default`; None: no such setting)."""

    key: str
    value: str | None  # None: the server did not say
    source: str
    configured: str | None = None
    config_source: str = ""
    used: str = ""  # when they disagree: which one the service really uses, and why

    @property
    def disagrees(self) -> bool:
        # A value gunicorn's config file computes is unknown, not a contradiction.
        return (
            self.value is not None
            and self.value != NOT_LITERAL
            and self.configured is not None
            and (self.value.rstrip("/") != self.configured.rstrip("/"))
        )

    def to_json(self) -> dict:
        return {**asdict(self), "disagrees": self.disagrees}


def _first(props: dict, key: str) -> str:
    """A path-list property's first path (`/etc/cynow.env (ignore_errors=no)`)."""
    return (props.get(key) or "").split(" (", 1)[0].split()[0] if props.get(key) else ""


def _paths(value: str) -> list[str]:
    """Every path of a property like EnvironmentFiles (`A (ignore_errors=no) B (…)`)."""
    return re.findall(r"(/\S+)(?: \([^)]*\))?", value or "")


def _bind(binds: list[str]) -> tuple[str | None, str]:
    """(socket path or HOST:PORT, "unix" or "tcp") of the unit's bind."""
    b = bind_of(binds)
    return b, ("tcp" if b and tcp_address(b) else "unix" if b else "")


def discover(facts: Facts, s: Settings) -> list[Value]:
    """The layout from the facts, each value with its source and the config's value beside it."""
    unit = facts.units.get(s.gunicorn_unit, {})
    socket_unit = facts.units.get(s.gunicorn_socket_unit, {})
    loaded = bool(unit) and unit.get("LoadState") != "not-found"
    args = gunicorn_args(exec_argv(unit.get("ExecStart", ""))) if loaded else {}
    probe = facts.probe or {}
    dump = (facts.nginx or {}).get("dump", "")

    def conf(key: str) -> tuple[str | None, str]:
        if key not in DEFAULTS:
            return None, ""
        v = getattr(s, key)
        if key in s.discovered:
            # The config was silent and the server's value is the one in use (tasks/discovery).
            return str(v), f"discovered: {s.discovered[key]}"
        said = key in s.configured or v != DEFAULTS[key]
        return str(v), ("config" if said else "default")

    out: list[Value] = []

    def add(key: str, value, source: str, used: str = "", setting: str | None = None) -> None:
        c, cs = conf(setting or key)
        out.append(Value(key, value or None, source, c, cs, used))

    add("app_user", loaded and (unit.get("User") or "root"), "unit", "the unit's User=")
    add("app_group", loaded and unit.get("Group"), "unit", "the unit's Group=")
    add("project_dir", loaded and unit.get("WorkingDirectory"), "unit", "WorkingDirectory=")
    add("venv", venv_of(args.get("binary", "")), "unit", "ExecStart's gunicorn")
    # gunicorn's own settings, in its order: ExecStart, GUNICORN_CMD_ARGS, the config file.
    g = gunicorn_settings(facts, s) if loaded else {}
    app = g.get("wsgi_app", (None, "unit", ""))
    if app[1] == "unit":
        add("wsgi", app[0], "unit", "the app ExecStart names")
    else:  # ExecStart names none: gunicorn serves the config file's wsgi_app
        add("wsgi", app[0], app[1], "the config file's wsgi_app")
    for key in ("gunicorn_config", "chdir", "bind", "workers", "timeout"):
        name = "config" if key == "gunicorn_config" else key
        value, source, used = g.get(name, (None, "unit", ""))
        if isinstance(value, list):
            value = " ".join(map(str, value))
        add(key, None if value is None else str(value), source, used)
    bind, how = _bind(effective_binds(facts, s) if loaded else [])
    from_file = g.get("bind", (None, ""))[1] == "gunicorn config"
    listen = _first(socket_unit, "Listen") if socket_unit.get("LoadState") == "loaded" else ""
    if bind and how == "unix":
        add("socket", bind, *_said(from_file, "gunicorn's --bind"))
    elif listen:
        # With a socket from systemd gunicorn serves on it and ignores --bind.
        add("socket", listen, "socket unit", "the socket unit's ListenStream=")
    elif bind:
        add("socket", bind, *_said(from_file, "gunicorn's TCP --bind"))
    else:
        add("socket", None, "unit")
    if socket_unit.get("LoadState") == "loaded":
        # systemd creates the socket as root, mode 0666, unless the unit says otherwise.
        for key, prop, default in SOCKET_FILE:
            said = socket_unit.get(prop)
            how = f"the socket unit's {prop}=" if said else f"systemd's default (no {prop}=)"
            add(key, said or default, "socket unit", how)
    block = location_block(dump, s.url_prefix) if dump else None
    upstream, raw = proxy_socket(block) if block else (None, None)
    add("nginx_upstream", upstream or raw, "nginx", "nginx's proxy_pass", setting="socket")
    static_url = probe.get("static_url") or STATIC_URL
    site = site_of(dump, s.url_prefix, static_url) if dump else {}
    add("server_name", " ".join(site.get("server_name", [])), "nginx", "nginx's server_name")
    add("listen", ", ".join(site.get("listen", [])), "nginx", "nginx's listen")
    static = site.get("static") or {}
    how = f"nginx's {static.get('how')} in {static.get('location')} (for {static_url})"
    add("static_alias", static.get("dir"), "nginx", how)
    add("static_root", probe.get("static_root"), "django", "Django's STATIC_ROOT")
    logs = probe.get("log_files") or []
    log = s.django_log if s.django_log in logs else (logs[0] if logs else None)
    add("django_log", log, "django", "Django's LOGGING file handler")
    db = probe.get("database") or {}
    if db.get("engine"):
        engine = db["engine"].rsplit(".", 1)[-1]
        add("database", f"{engine} {db.get('name', '')}".strip(), "django")
    env_files = _paths(unit.get("EnvironmentFiles", ""))
    add("environment_files", " ".join(env_files), "unit")
    if probe.get("allowed_hosts"):
        add("allowed_hosts", " ".join(probe["allowed_hosts"]), "django")
    return out


def _said(from_file: bool, flag: str) -> tuple[str, str]:
    """(source, how) of the socket: the unit's flag, or the config file's `bind`."""
    return ("gunicorn config", "gunicorn's config file's bind") if from_file else ("unit", flag)


def disagreements(values: list[Value]) -> list[Value]:
    return [v for v in values if v.disagrees]


def _same_dir(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def conflicts(values: list[Value]) -> list[str]:
    """Where the server contradicts itself (not the config): nginx serving the static URL
    from a directory other than Django's STATIC_ROOT, where collectstatic writes, is pages
    without their CSS."""
    v = {x.key: x for x in values}
    alias, root = v.get("static_alias"), v.get("static_root")
    if alias and root and alias.value and root.value and not _same_dir(alias.value, root.value):
        return [
            f"static files: {alias.used} serves {alias.value}, Django's STATIC_ROOT is "
            f"{root.value}: collectstatic writes where nginx does not look (pages without CSS)"
        ]
    return []


# The keys a target definition takes from the layout (`fab info --write-config`); the rest
# (nginx_upstream, database...) are what the server says, not settings.
WRITABLE = ("app_user", "app_group", "project_dir", "venv", "wsgi", "socket", "static_root")


def target_config(name: str, host: str, values: list[Value], s: Settings) -> str:
    """A target definition (YAML) from the layout, for the user to review: the server's values
    where it said them and they differ from the defaults, commented with their source."""
    lines = [
        "# Written by `fab info --write-config` from what the server says; review it, then",
        "# merge it into config/targets.yaml or pass it with `fab -f FILE`.",
        "cynow:",
        "  targets:",
        f"    {_yaml(name)}:",
        f"      hosts: [{_yaml(host)}]",
    ]
    for v in values:
        if v.key not in WRITABLE:
            continue
        if v.value is None:
            lines.append(f"      # {v.key}: not written (the server did not say)")
            continue
        keep = "" if v.value != DEFAULTS.get(v.key) else "  # the default"
        lines.append(f"      {v.key}: {_yaml(v.value)}  # from the {v.source}{keep}")
    if s.django_log:
        log = next((v for v in values if v.key == "django_log"), None)
        if log and log.value:
            lines.append(f"      django_log: {_yaml(log.value)}  # from Django's LOGGING")
    return "\n".join(lines) + "\n"


def _yaml(value: str) -> str:
    """A YAML scalar that reads back as exactly `value` (JSON strings are YAML)."""
    import json

    return json.dumps(value)
