"""What a target server looks like: the guide's defaults, named targets, and their validation.

Values come from Fabric's own config system under the `cynow` key: config/defaults.yaml and
config/targets.yaml (set on the task collection, the lowest level), then the project's
`fabric.yaml`, a runtime file given with `fab -f FILE`, and `FABRIC_CYNOW_*` environment
variables. A named target (`cynow.targets.NAME`) may override any setting for its hosts.
Everything is checked before any connection is opened.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import ConfigError
from tasks.hosts import host_spec

CONFIG = Path(__file__).resolve().parents[1] / "config"


def _load(name: str) -> dict[str, Any]:
    with open(CONFIG / name) as fh:
        return yaml.safe_load(fh) or {}


# The production server as the 502 guide describes it (config/defaults.yaml), and the named
# targets (config/targets.yaml).
DEFAULTS: dict[str, Any] = _load("defaults.yaml")
TARGETS: dict[str, Any] = _load("targets.yaml")

# Keys a named target may carry beyond the settings above.
TARGET_ONLY = {"hosts"}
# Keys that make no sense inside a target.
NOT_IN_TARGET = {"target", "targets"}

_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# systemd's unit name characters (systemd.unit(5)), and the suffixes cynow-ops reads: the name
# is also matched against `systemctl show`'s Id, which always carries the suffix.
_UNIT = re.compile(r"^[A-Za-z0-9:_.\\@-]{1,248}\.(service|socket)$")
_REMOTE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_WSGI = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


def _fail(key: str, what: str, fix: str) -> ConfigError:
    return ConfigError(f"config: cynow.{key} {what}; {fix}")


def _str(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise _fail(key, f"must be a non-empty string, not {v!r}", "set a string value")
    if "\n" in v or "\0" in v:
        raise _fail(key, "contains a newline or NUL byte", "remove it")
    return v


def _abs_path(key: str, v: Any) -> str:
    v = _str(key, v)
    if not v.startswith("/"):
        raise _fail(
            key, f"must be an absolute path, not {v!r}", f"write it from the root, e.g. /{v}"
        )
    if "/../" in v + "/":
        raise _fail(key, f"must not contain '..' ({v!r})", "write the path without '..'")
    return v.rstrip("/") or "/"


# gunicorn's `--bind HOST:PORT`: an IPv4 address, localhost or [IPv6], and a port.
_TCP = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}|localhost):(\d{1,5})$")


def tcp_address(value: str) -> tuple[str, int] | None:
    """(host, port) of a `HOST:PORT` bind, or None (a unix socket path)."""
    m = _TCP.match(value or "")
    if not m or not 0 < int(m.group(2)) < 65536:
        return None
    return m.group(1), int(m.group(2))


def _socket(key: str, v: Any) -> str:
    """Where gunicorn listens: a unix socket's absolute path, or HOST:PORT for a TCP bind."""
    v = _str(key, v)
    if tcp_address(v):
        return v
    if not v.startswith("/"):
        raise _fail(
            key,
            f"must be a unix socket's absolute path or HOST:PORT, not {v!r}",
            "write e.g. /run/gunicorn.sock or 127.0.0.1:8000",
        )
    return _abs_path(key, v)


def _local_path(key: str, v: Any) -> str:
    v = os.path.expanduser(_str(key, v))
    if not os.path.isabs(v):
        raise _fail(
            key, f"must be an absolute path on this machine, not {v!r}", "write it from / or ~"
        )
    return v


def _valid(
    ok: Callable[[Any], Any], problem: str, fix: str, read: Callable[[str, Any], Any] = _str
) -> Callable[[str, Any], Any]:
    """A check: `read` the value (a non-empty one-line string unless told), then `ok(value)` or
    "cynow.KEY PROBLEM; FIX", where `{v!r}` in PROBLEM shows the value."""

    def check(key: str, v: Any) -> Any:
        v = read(key, v)
        if not ok(v):
            raise _fail(key, problem.format(v=v), fix)
        return v

    return check


def _as_given(key: str, v: Any) -> Any:
    return v


def _matching(pattern: re.Pattern[str], what: str, fix: str) -> Callable[[str, Any], str]:
    """A check that a string matches `pattern` whole: "cynow.KEY is not WHAT (value); FIX"."""
    return _valid(pattern.fullmatch, f"is not {what} ({{v!r}})", fix)


_name = _matching(_NAME, "a valid user or group name", "use a name like cynow")
_remote = _matching(_REMOTE, "a git remote name", "use a name like origin")
_wsgi = _matching(_WSGI, "a module:callable path", "use the form config.wsgi:application")
_unit_name = _matching(
    _UNIT,
    "a systemd unit name",
    "use letters, digits and ':_.\\@-', ending in .service or .socket, e.g. gunicorn.service",
)


def _unit(key: str, v: Any) -> str:
    v = _str(key, v)
    # A leading '-' would reach systemctl and journalctl as an option, not a unit.
    if v.startswith("-"):
        raise _fail(
            key,
            f"starts with '-' ({v!r}): systemctl would read it as an option",
            "give the unit's own name, e.g. gunicorn.service",
        )
    return _unit_name(key, v)


def _safe_branch(v: str) -> bool:
    """A git branch name that is also safe on a command line (git check-ref-format, stricter)."""
    return not (
        v.startswith(("-", "/", "."))
        or v.endswith(("/", ".lock", "."))
        or ".." in v
        or "//" in v
        or "@{" in v
        or not re.match(r"^[A-Za-z0-9._/-]+$", v)
    )


branch_name = _valid(
    _safe_branch,
    "is not a safe git branch name ({v!r})",
    "use letters, digits, '.', '_', '-' and '/', e.g. main",
)
_rel_path = _valid(
    lambda v: not (v.startswith("/") or ".." in v.split("/")),
    "entries are paths inside the project, not {v!r}",
    "give a relative path like orders/urls.py",
)
_url_path = _valid(
    lambda v: v.startswith("/") and not any(ch in v for ch in " \"'\\`$"),
    "must be a URL path starting with / ({v!r})",
    "use a path like /cynow/",
)


_HOST_HEADER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$")


_host_header = _matching(
    _HOST_HEADER, "a host name (with an optional :port)", "e.g. cynow.example.com"
)


_scheme = _valid(
    lambda v: v in ("http", "https"),
    "must be http or https, not {v!r}",
    "e.g. https",
    read=_as_given,
)
_positive = _valid(
    lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and v > 0,
    "must be a positive number of seconds, not {v!r}",
    "e.g. 10",
    read=_as_given,
)
_count = _valid(
    lambda v: not isinstance(v, bool) and isinstance(v, int) and v >= 1,
    "must be a whole number of at least 1, not {v!r}",
    "e.g. 5",
    read=_as_given,
)
_policy = _valid(
    lambda v: v in ("strict", "accept-new"),
    "must be 'strict' or 'accept-new', not {v!r}",
    "use accept-new only to trust a new server on first use",
    read=_as_given,
)


def _network(key: str, v: Any) -> str:
    try:
        return str(ipaddress.ip_network(_str(key, v), strict=False))
    except ValueError:
        raise _fail(key, f"has an entry that is not a network ({v!r})", "use CIDR like 127.0.0.0/8")


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda key, v: None if v is None else check(key, v)


def _list_of(check: Callable[[str, Any], Any]) -> Callable[[str, Any], list]:
    def inner(key: str, v: Any) -> list:
        if isinstance(v, str) or not isinstance(v, (list, tuple)):
            raise _fail(key, f"must be a list, not {v!r}", f"write it as [{v!r}]")
        return [check(key, item) for item in v]

    return inner


def _non_empty(check: Callable[[str, Any], list]) -> Callable[[str, Any], list]:
    def inner(key: str, v: Any) -> list:
        out = check(key, v)
        if not out:
            raise _fail(key, "must name at least one URL", "health is judged by asking for them")
        return out

    return inner


def _host(key: str, v: Any) -> str:
    v = _str(key, v)
    if host_spec(v) is None:
        raise _fail(
            key,
            f"has an entry that is not [user@]host[:port] ({v!r})",
            "write hosts like cynow@10.0.0.5 or cynow@host:2222",
        )
    return v


def _notify(key: str, v: Any) -> list:
    """Apprise URLs; an error shows a URL's scheme and host only (tasks/notify.shown)."""
    from tasks import notify

    if isinstance(v, str) or not isinstance(v, (list, tuple)):
        shown = notify.shown(v) if isinstance(v, str) else repr(v)
        raise _fail(key, f"must be a list of Apprise URLs, not {shown}", "write it as [URL, ...]")
    try:
        return [notify.check_url(key, _str(key, url)) for url in v]
    except ValueError as e:
        raise ConfigError(str(e))


def whole_number(flag: str, value: Any, default: int) -> int:
    """A task's numeric flag, taken as text so a bad value is a one-line error (exit 3) rather
    than invoke's int() traceback; not given: `default`."""
    if value is None:
        return default
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) < 1:
        raise ConfigError(f"{flag} must be a whole number, 1 or more, not {value!r}")
    return int(text)


CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "app_user": _name,
    "app_group": _name,
    "web_user": _name,
    "project_dir": _abs_path,
    "venv": _abs_path,
    "socket": _socket,
    "gunicorn_unit": _unit,
    "gunicorn_socket_unit": _unit,
    "nginx_unit": _unit,
    "nginx_site": _abs_path,
    "nginx_error_log": _abs_path,
    "django_log": _abs_path,
    "url_prefix": _url_path,
    "health_urls": _non_empty(_list_of(_url_path)),
    "health_host": _optional(_host_header),
    "health_scheme": _optional(_scheme),
    "git_remote": _remote,
    "git_branch": branch_name,
    "wsgi": _wsgi,
    "required_files": _list_of(_rel_path),
    "static_root": _abs_path,
    "state_dir": _abs_path,
    "requirements": _rel_path,
    "health_timeout": _positive,
    "snapshots_keep": _count,
    "lock_grace": _positive,
    "log_window_minutes": _positive,
    "http_timeout": _positive,
    "connect_timeout": _positive,
    "known_hosts": _list_of(_local_path),
    "host_key_policy": _policy,
    "key_filename": _optional(_local_path),
    "allowed_networks": _list_of(_network),
    "notify": _notify,
    "hosts": _list_of(_host),
}


@dataclass(frozen=True)
class Settings:
    """Validated settings for one run: the server layout plus how to reach it."""

    app_user: str
    app_group: str
    web_user: str
    project_dir: str
    venv: str
    socket: str
    gunicorn_unit: str
    gunicorn_socket_unit: str
    nginx_unit: str
    nginx_site: str
    nginx_error_log: str
    django_log: str
    url_prefix: str
    health_urls: list
    health_host: str | None
    health_scheme: str | None  # None: from nginx's listen (tasks/discovery.py), else http
    git_remote: str
    git_branch: str
    wsgi: str
    required_files: list
    static_root: str
    state_dir: str
    requirements: str
    health_timeout: float
    snapshots_keep: int
    lock_grace: float
    log_window_minutes: float
    http_timeout: float
    connect_timeout: float
    known_hosts: list
    host_key_policy: str
    key_filename: str | None
    allowed_networks: list
    notify: list = field(default_factory=list)  # Apprise URLs (tasks/notify.py)
    target: str | None = None
    hosts: list = field(default_factory=list)
    # Keys a config level sets (a target, -f file, FABRIC_CYNOW_*): expectations, never
    # replaced by the server's values.
    configured: frozenset = frozenset()
    # Keys taken from the server because the config left the guide's value (tasks/discovery.py),
    # each with where it came from.
    discovered: dict = field(default_factory=dict)

    @property
    def python(self) -> str:
        return f"{self.venv}/bin/python"

    @property
    def tcp(self) -> str:
        """HOST:PORT when gunicorn listens on TCP; "" for a unix socket (`socket` its path)."""
        return self.socket if tcp_address(self.socket) else ""


def _unknown(key: str, known: set[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(known))}"
    return ConfigError(
        f"config: {where}{key} is not a setting ({hint}); "
        "fix it in config/targets.yaml or your -f file"
    )


def _validated(values: Mapping[str, Any], where: str, allowed: set[str]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if key not in allowed:
            raise _unknown(key, allowed, where)
        out[key] = CHECKS[key](f"{where[len('cynow.') :]}{key}" if where else key, value)
    return out


def to_plain(value: Any) -> Any:
    """Fabric's config proxies as plain dicts and lists."""
    if hasattr(value, "items"):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def resolve(
    cynow: Mapping[str, Any], target: str | None = None, explicit: set[str] | None = None
) -> Settings:
    """Validate the `cynow` config section and apply the chosen target's overrides.

    `target` (from `--target`) wins over `cynow.target`. Raises ConfigError, naming the key and
    the fix, for unknown keys, wrong types, relative paths and unsafe names. `explicit`: the
    keys a config level above the defaults sets (tasks/connect.settings_for reads them), so a
    user who writes the guide's value is heard; without it, a value other than the default.
    """
    raw = to_plain(cynow)
    settings_keys = set(DEFAULTS) - NOT_IN_TARGET
    for key in raw:
        if key not in DEFAULTS:
            raise _unknown(key, set(DEFAULTS), "cynow.")
    base = {k: v for k, v in raw.items() if k not in NOT_IN_TARGET}
    merged = {**{k: DEFAULTS[k] for k in settings_keys}, **base}
    values = _validated(merged, "", settings_keys)
    if explicit is None:
        explicit = {k for k, v in base.items() if v != DEFAULTS.get(k)}
    configured = set(explicit) & settings_keys
    targets = raw.get("targets") or {}
    if not isinstance(targets, dict):
        raise _fail(
            "targets",
            "must be a mapping of target names to settings",
            "see config/targets.yaml for the form",
        )
    name = target or raw.get("target")
    hosts: list[str] = []
    if name is not None:
        name = _str("target", name)
        if name not in targets:
            known = ", ".join(sorted(targets)) or "none defined"
            raise ConfigError(
                f"config: no target named {name!r} (known: {known}); "
                "define it in config/targets.yaml or under cynow.targets in a -f file"
            )
        entry = targets[name] or {}
        if not isinstance(entry, dict):
            raise _fail(
                f"targets.{name}", "must be a mapping of settings", "see config/targets.yaml"
            )
        over = _validated(entry, f"cynow.targets.{name}.", settings_keys | TARGET_ONLY)
        hosts = over.pop("hosts", [])
        values.update(over)
        configured |= set(over)
    return Settings(**values, target=name, hosts=hosts, configured=frozenset(configured))
