"""The settings of one host as its server runs it: every layout key the config leaves at the
guide's value is taken from the gunicorn unit (and its socket unit) when the server says
otherwise, before any task reads the host. A server set up by hand (checkout in /srv, venv
`.venv`, the unit's own socket path, socket activation) is then read and deployed where it
really is, not where the guide puts it; a value the user set is never replaced (it is an
expectation: diagnose's layout step compares it with the server's).

What the unit says is data: a value is taken only when it passes the same validation as a
config value, and only when the server has it (a WorkingDirectory holding manage.py, a venv
with its python, a user and group that exist). A unit the tool cannot read, or a value that
does not check out, leaves the guide's value (and the diagnosis then names what is wrong):
nothing is guessed.

    read (one round trip): systemctl show of the unit and its socket unit
    config (one more, only when ExecStart binds nothing and no socket unit listens):
                            gunicorn's config file and GUNICORN_CMD_ARGS, read as the service
    candidates(...)      -> {key: (value, source)} for keys still at the guide's value
    confirm (one more round trip, only when a candidate differs): do the paths and names exist
    adopt(...)           -> the host's Settings, `discovered` naming each value taken and why
"""

from __future__ import annotations

import dataclasses
import json
import re

from tasks import parse, programs, service, tools
from tasks.errors import ConfigError, ConnectError
from tasks.remote.gunicorn_argv import NOT_LITERAL, exec_argv, gunicorn_args
from tasks.settings import CHECKS, DEFAULTS, Settings, tcp_address
from tasks.shell import batch, join, q, read_batch
from tasks.systemd import systemctl_show

UNIT_PROPS = [
    "Id",
    "LoadState",
    "User",
    "Group",
    "WorkingDirectory",
    "ExecStart",
    "RuntimeDirectory",
]
SOCKET_PROPS = ["Id", "LoadState", "ActiveState", "Listen"]
# Never taken from a unit: fix-permissions would hand the tree to root (tasks/service.py
# refuses a root unit anyway, and diagnose names it).
IN_CHECKOUT = [
    k for k in ("venv", "static_root") if DEFAULTS[k].startswith(DEFAULTS["project_dir"] + "/")
]
NEVER = {"app_user": {"root"}, "app_group": {"root"}}


# nginx's whole effective config, bounded: a server with hundreds of sites stays one read.
NGINX_DUMP = "nginx -T 2>/dev/null | head -c 4000000"


ALLOWED_MARK = "CYNOW-ALLOWED-HOSTS "


def needs_host(s: Settings) -> bool:
    return "health_host" not in s.configured and not s.health_host


def needs_scheme(s: Settings) -> bool:
    return "health_scheme" not in s.configured and not s.health_scheme


def allowed_hosts_command(s: Settings) -> str:
    """Django's ALLOWED_HOSTS as the service has it (tasks/remote/allowed_hosts.py), run as the
    service (never as root) in its WorkingDirectory, with the python of ExecStart's venv (read
    on the server: the config's venv may be the guide's, not this server's)."""
    settings_module = s.wsgi.split(".")[0] + ".settings"
    script = f"SETTINGS = {settings_module!r}\n" + programs.source("allowed_hosts")
    exec_start = join("systemctl", "show", "-p", "ExecStart", "--value", s.gunicorn_unit)
    run = "\n".join(
        [
            f"py=$({exec_start} | sed -n 's|^{{ path=\\([^ ;]*\\)/gunicorn ;.*|\\1/python|p')",
            f'[ -x "$py" ] || py={q(s.python)}',
            f'timeout 20 "$py" -B -c {q(script)}',
        ]
    )
    return service.as_service(s.gunicorn_unit, s.app_user, run, strict=False) + " 2>&1"


def read_command(s: Settings, nginx: bool = True) -> str:
    """The unit, its socket unit and the tools; with `nginx` (as root), nginx's effective config
    for the site's name and listen ports, and Django's ALLOWED_HOSTS as the service has it,
    when no health_host (or health_scheme) is configured."""
    parts = {
        "unit": systemctl_show([s.gunicorn_unit], UNIT_PROPS),
        "socket": systemctl_show([s.gunicorn_socket_unit], SOCKET_PROPS),
        "tools": tools.command(),
    }
    if nginx and (needs_host(s) or needs_scheme(s)):
        parts["nginx"] = NGINX_DUMP
    if nginx and needs_host(s):
        parts["allowed"] = allowed_hosts_command(s)
    return batch(parts)


def browser_name(names: list[str]) -> str:
    """The name a browser asks the site by: nginx's first server_name that is one name (not
    `_`, a wildcard or a regex). "" when there is none: curl's own Host then, as before."""
    for n in names:
        if n and n != "_" and "*" not in n and not n.startswith(("~", ".")):
            try:
                return CHECKS["health_host"]("health_host", n)
            except ConfigError:
                continue
    return ""


def first_allowed(hosts: list[str]) -> str:
    """The first name Django's ALLOWED_HOSTS allows by itself (`.example.com` allows
    example.com): the Host a browser that works asks with. "" when it allows any ("*")."""
    if "*" in hosts:
        return ""
    return next((h.lstrip(".") for h in hosts if h.strip(".") and "*" not in h), "")


def allowed_name(stdout: str) -> str:
    """The Host from the ALLOWED_HOSTS reader's report, validated as a config value."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(ALLOWED_MARK):
            try:
                hosts = json.loads(line[len(ALLOWED_MARK) :]).get("hosts")
            except (ValueError, AttributeError):
                return ""
            if isinstance(hosts, list):
                return browser_name([first_allowed([str(h) for h in hosts])])
    return ""


def site(dump: str, s: Settings) -> dict:
    """nginx's site for the URL prefix (tasks/checks/nginx.site_of); {} when not read."""
    if not dump.strip():
        return {}
    # Here, not at the top: tasks.checks imports tasks.layout, which imports this module.
    from tasks.checks.nginx import site_of

    return site_of(dump, s.url_prefix, "/static/")


def site_name(dump: str, s: Settings) -> str:
    return browser_name(site(dump, s).get("server_name") or [])


def site_scheme(listens: list[str]) -> str:
    """ "https" when the site listens on 443 (`443 ssl`, `[::]:443 ssl`, `10.0.0.5:443`): a
    browser is sent there. "" otherwise (http on 80, as before)."""
    for value in listens:
        words = value.split()
        if words and words[0].rsplit(":", 1)[-1] == "443":
            return "https"
    return ""


def venv_of(binary: str) -> str:
    """/x/venv/bin/gunicorn -> /x/venv (a venv's gunicorn); else '' (a system gunicorn)."""
    m = re.match(r"^(/.+)/bin/[^/]+$", binary or "")
    return m.group(1) if m and m.group(1) not in ("/usr", "/usr/local") else ""


def listen_of(props: dict) -> str:
    """The socket unit's first ListenStream path or address (`/run/g.sock (Stream)`)."""
    value = (props.get("Listen") or "").split(" (", 1)[0].strip()
    return value.split()[0] if value else ""


def _bind(binds: list[str]) -> str:
    """The unit's first usable --bind as the `socket` setting: a unix path or HOST:PORT."""
    for b in binds:
        if b.startswith("unix:"):
            return b[len("unix:") :]
        if tcp_address(b):
            return b
    return ""


def _listening(socket_unit: dict) -> str:
    """The socket unit's listen value while it is loaded and active, else ""."""
    active = socket_unit.get("LoadState") == "loaded" and socket_unit.get("ActiveState") == "active"
    return listen_of(socket_unit) if active else ""


def needs_config(unit: dict, socket_unit: dict, s: Settings) -> bool:
    """gunicorn's config file and GUNICORN_CMD_ARGS are read (one more round trip) only when
    they can decide the socket: the unit is loaded, ExecStart binds nothing, no socket unit
    listens, and the config leaves `socket` at the guide's value."""
    if not unit or unit.get("LoadState") != "loaded" or _listening(socket_unit):
        return False
    if "socket" in s.configured or s.socket != DEFAULTS["socket"]:
        return False
    return not gunicorn_args(exec_argv(unit.get("ExecStart", ""))).get("binds")


def config_bind(conf: dict | None) -> tuple[str, str]:
    """(bind, where) from the config reader's report (tasks/remote/gunicorn_config.py), in
    gunicorn's order: GUNICORN_CMD_ARGS over the config file; a computed value is none."""
    conf = conf or {}
    env = (conf.get("env_args") or {}).get("binds") or []
    if bind := _bind([str(b) for b in env]):
        return bind, "GUNICORN_CMD_ARGS's --bind"
    values = conf.get("values") or {}
    binds = values.get("bind")
    binds = [binds] if isinstance(binds, str) else binds or []
    if conf.get("error") or NOT_LITERAL in binds:
        return "", ""
    if bind := _bind([str(b) for b in binds]):
        return bind, f"the bind of gunicorn's config file {conf.get('path', '')}".rstrip()
    return "", ""


def candidates(
    unit: dict, socket_unit: dict, s: Settings, conf: dict | None = None
) -> dict[str, tuple[str, str]]:
    """The server's value for each layout key the config leaves at the guide's value and the
    server says otherwise, with where it came from; `conf`, the config reader's report when it
    was read (needs_config). Pure."""
    if not unit or unit.get("LoadState") != "loaded":
        return {}
    args = gunicorn_args(exec_argv(unit.get("ExecStart", "")))
    # Not `wsgi`: the probes and the by-hand gunicorn already import the app the unit names,
    # and a unit naming an app that does not load is a finding, not a setting to take.
    found = {
        "app_user": (unit.get("User", ""), "the unit's User="),
        "app_group": (unit.get("Group", ""), "the unit's Group="),
        "project_dir": (unit.get("WorkingDirectory", "").lstrip("!-"), "WorkingDirectory="),
        "venv": (venv_of(args.get("binary", "")), "ExecStart's gunicorn"),
    }
    # A socket unit that is not listening hands gunicorn nothing: then --bind is what it uses.
    listen = _listening(socket_unit)
    bind = _bind(args.get("binds", []))
    later, where = config_bind(conf)
    if listen:
        # gunicorn serves on a socket systemd hands it and then ignores --bind.
        found["socket"] = (listen, "the socket unit's ListenStream=")
    elif bind:
        found["socket"] = (bind, "gunicorn's --bind")
    elif later and not args.get("binds"):
        found["socket"] = (later, where)
    checkout = found["project_dir"][0]
    for key in IN_CHECKOUT:
        # The guide keeps these in the checkout: where the unit's checkout is, they are looked
        # for at the same place in it (confirmed to exist, compared with Django by diagnose).
        rel = DEFAULTS[key][len(DEFAULTS["project_dir"]) + 1 :]
        if checkout.startswith("/") and not found.get(key, ("",))[0]:
            found[key] = (f"{checkout.rstrip('/')}/{rel}", f"{rel}/ in the checkout")
    out = {}
    for key, (value, source) in found.items():
        said = key in s.configured or getattr(s, key) != DEFAULTS[key]
        if not value or said or value == DEFAULTS[key]:
            continue
        if value in NEVER.get(key, ()):
            continue
        try:
            out[key] = (CHECKS[key](key, value), source)
        except ConfigError:
            continue  # not a value a config could hold: the guide's stays, diagnose says why
    return out


def runtime_dirs(unit: dict) -> list[str]:
    """The unit's RuntimeDirectory= as paths: systemd creates each under /run when the service
    starts and removes it when it stops."""
    return [f"/run/{d.strip('/')}" for d in (unit.get("RuntimeDirectory") or "").split() if d]


def _socket_test(value: str, runtime: list[str] = ()) -> str:
    """A unix socket is created by whoever listens: its directory must exist, unless it is one
    of the unit's RuntimeDirectory= (gone while the service is stopped, made again at start)."""
    directory = value.rsplit("/", 1)[0] or "/"
    return "true" if tcp_address(value) or directory in runtime else join("test", "-d", directory)


def confirm_command(found: dict[str, tuple[str, str]], unit: dict | None = None) -> str:
    """One test per candidate, each printing yes or no: the server has what the value names."""
    runtime = runtime_dirs(unit or {})
    tests = {
        "app_user": lambda v: join("id", "-u", v),
        "app_group": lambda v: join("getent", "group", v),
        "project_dir": lambda v: join("test", "-f", f"{v}/manage.py"),
        "venv": lambda v: join("test", "-x", f"{v}/bin/python"),
        "static_root": lambda v: join("test", "-d", v),
        "socket": lambda v: _socket_test(v, runtime),
    }
    return batch(
        {
            key: f"if {tests[key](value)} >/dev/null 2>&1; then echo yes; else echo no; fi"
            for key, (value, _) in found.items()
        }
    )


def apply(s: Settings, found: dict[str, tuple[str, str]], confirmed: set[str]) -> Settings:
    taken = {k: v for k, v in found.items() if k in confirmed}
    if not taken:
        return s
    return dataclasses.replace(
        s,
        **{k: value for k, (value, _) in taken.items()},
        discovered={**s.discovered, **{k: source for k, (_, source) in taken.items()}},
    )


def adopt(remote) -> tuple[Settings, dict]:
    """The host's settings: the remote's, with the server's values where the config leaves the
    guide's (a server that cannot be read for this, no sudo, keeps the config's values); and
    which of the tools (tasks/tools.py) the server has."""
    s = remote.settings
    try:
        # As root, for nginx's config; the same one round trip as the login's read.
        said = remote.run(read_command(s), root=True).stdout
    except ConnectError:
        # No sudo: the unit and tools as the login reads them; nothing confirmed, none taken.
        said = remote.run(read_command(s, nginx=False)).stdout
        parts = {k: v[0] for k, v in read_batch(said).items()}
        return s, tools.parse(parts.get("tools", ""))
    parts = {k: v[0] for k, v in read_batch(said).items()}
    has = tools.parse(parts.get("tools", ""))
    s = browser(s, parts)
    unit = parse.systemctl_show(parts.get("unit", "")).get(s.gunicorn_unit, {})
    sock = parse.systemctl_show(parts.get("socket", "")).get(s.gunicorn_socket_unit, {})
    conf = None
    if needs_config(unit, sock, s):
        # Here, not at the top: tasks.checks imports tasks.layout, which imports this module.
        from tasks.checks.unit_file import gunicorn_config_command, parse_gunicorn_config

        # The file as the service's user reads it, never run (diagnose's own reader).
        conf = parse_gunicorn_config(remote.run(gunicorn_config_command(s), root=True).stdout)
    found = candidates(unit, sock, s, conf)
    if not found:
        return s, has
    # As root: the app's home is often closed to the login user.
    out = read_batch(remote.run(confirm_command(found, unit), root=True).stdout)
    confirmed = {k for k, v in out.items() if v[0].strip() == "yes"}
    return apply(s, found, confirmed), has


def browser(s: Settings, parts: dict) -> Settings:
    """The health requests asked as a browser asks (when the config does not say): the Host
    from nginx's server_name, else Django's ALLOWED_HOSTS; HTTPS when nginx's site listens on
    443."""
    nginx = site(parts.get("nginx", ""), s)
    taken = {}
    if needs_host(s):
        if name := browser_name(nginx.get("server_name") or []):
            taken["health_host"] = (name, "nginx's server_name")
        elif name := allowed_name(parts.get("allowed", "")):
            taken["health_host"] = (name, "Django's ALLOWED_HOSTS")
    if needs_scheme(s) and site_scheme(nginx.get("listen") or []):
        taken["health_scheme"] = ("https", "nginx's listen 443")
    return apply(s, taken, set(taken))
