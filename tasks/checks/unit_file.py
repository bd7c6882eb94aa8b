"""Guide step 3: the gunicorn unit file: user, directories, binary, bind address, reloaded?"""

from __future__ import annotations

import json

from tasks import programs, service
from tasks.checks.base import APP, FAIL, OK, ROOT, WARN, Check, Fact, Facts, Finding, installed
from tasks.guide import comment, sudo
from tasks.redact import redact_argv, redact_text
from tasks.remote.gunicorn_argv import (
    NOT_LITERAL,
    cmd_args,
    exec_argv,
    gunicorn_args,
    gunicorn_options,
    unit_environment,
)
from tasks.settings import Settings, tcp_address
from tasks.shell import batch, join, q, say

CONFIG_MARK = "CYNOW-GUNICORN-CONFIG "


def unit_file_command(s: Settings, _facts=None) -> str:
    """The unit file as systemd has it on disk, and systemd's own verification of it."""
    u = q(s.gunicorn_unit)
    return batch(
        {
            "cat": f"systemctl cat --no-pager {u} 2>&1",
            "verify": f"systemd-analyze verify {u} 2>&1 | grep -F -- {u} | head -n 20",
        }
    )


def parse_unit_file(parts: dict, _s=None) -> tuple[str, list[str]]:
    """(the unit file on disk, systemd-analyze verify lines), an Environment= secret or an
    `-e SECRET_KEY=...` redacted: verify lines go into reports, and neither needs the value."""
    verify = [redact_text(ln) for ln in parts["verify"].text.splitlines() if ln.strip()]
    cat = "".join(redact_text(ln) for ln in parts["cat"].text.splitlines(keepends=True))
    return cat, verify


def path_facts(paths: list[str], users: list[str], groups: list[str]) -> str:
    """Existence of the unit's binaries and directories, and of its user and group."""
    lines = [
        f"if test -d {q(p)}; then {say('dir', p)}; elif test -x {q(p)}; then {say('exec', p)}; "
        f"elif test -e {q(p)}; then {say('file', p)}; else {say('missing', p)}; fi"
        for p in paths
    ]
    lines += [
        f"if id -u {q(u)} >/dev/null 2>&1; then {say('user', u)}; else {say('nouser', u)}; fi"
        for u in users
    ]
    lines += [
        f"if getent group {q(g)} >/dev/null; then {say('group', g)}; else {say('nogroup', g)}; fi"
        for g in groups
    ]
    return "\n".join(lines) or "true"


def expected_paths(s: Settings) -> tuple[list[str], list[str], list[str]]:
    """What the guide's unit names, checked in round one; round two only checks a unit that
    names something else."""
    return [f"{s.venv}/bin/gunicorn", s.project_dir], [s.app_user], [s.app_group]


def unit_paths_command(s: Settings, facts: Facts) -> str | None:
    """Round two: the paths, user and group the loaded unit names that round one did not
    check (none for the guide's unit)."""
    paths, users, groups = unit_paths(facts, s)
    paths = [p for p in paths if p not in facts.paths]
    users = [u for u in users if f"user:{u}" not in facts.paths]
    groups = [g for g in groups if f"group:{g}" not in facts.paths]
    return path_facts(paths, users, groups) if paths or users or groups else None


def unix_bind(binds: list[str]) -> str | None:
    for b in binds:
        if b.startswith("unix:"):
            return b[len("unix:") :]
    return None


def bind_of(binds: list[str]) -> str | None:
    """Where gunicorn listens, as the `socket` setting spells it: the unix socket's path, else
    the first TCP HOST:PORT; None when it names neither."""
    return unix_bind(binds) or next((b for b in binds if tcp_address(b)), None)


def shown(bind: str) -> str:
    """A bind as gunicorn's --bind spells it."""
    return bind if tcp_address(bind) else f"unix:{bind}"


def unit_paths(facts: Facts, s: Settings) -> tuple[list[str], list[str], list[str]]:
    """What the loaded unit names, for the existence checks: (paths, users, groups)."""
    p = facts.units.get(s.gunicorn_unit, {})
    args = gunicorn_args(exec_argv(p.get("ExecStart", "")))
    paths = [x for x in (args["binary"], p.get("WorkingDirectory", "")) if x and x.startswith("/")]
    return paths, [p.get("User") or "root"], [x for x in [p.get("Group")] if x]


def evaluate(facts: Facts, s: Settings) -> list:
    unit = s.gunicorn_unit
    p = facts.units.get(unit, {})
    check = Check(
        "unit.file", 3, f"unit file of {unit}", reads=("units", "unit", "paths", "unit_paths")
    )
    if not installed(p):
        return [check.fail("no unit file")]
    args = gunicorn_args(exec_argv(p.get("ExecStart", "")))
    user, group, wd = p.get("User") or "root", p.get("Group") or "", p.get("WorkingDirectory", "")
    problems, fix = [], []
    paths = facts.paths
    binary = args["binary"]
    if binary and paths.get(binary) not in (None, "exec"):
        problems.append(f"ExecStart binary {binary} is {paths.get(binary)} (not executable)")
    if wd and paths.get(wd) not in (None, "dir"):
        problems.append(f"WorkingDirectory {wd} is {paths.get(wd)}")
    if paths.get(f"user:{user}") == "missing":
        problems.append(f"User={user} does not exist")
    if group and paths.get(f"group:{group}") == "missing":
        problems.append(f"Group={group} does not exist")
    problems += [ln for ln in facts.unit_verify if "not executable" in ln or "No such" in ln]
    # The config file's bind counts when ExecStart has none: gunicorn listens there.
    bind = bind_of(effective_binds(facts, s))
    told = gunicorn_settings(facts, s).get("bind")
    ev = [
        f"User={user} Group={group or '-'} WorkingDirectory={wd or '-'}",
        # Evidence goes into reports and JSON: an `-e SECRET_KEY=...` does not.
        f"ExecStart={' '.join(redact_argv(exec_argv(p.get('ExecStart', ''))))}",
    ]
    if told and told[2] != "ExecStart's bind":
        ev.append(f"bind from {told[2]} = {', '.join(map(str, told[0]))}")
    findings = []
    if problems:
        fix = [
            sudo("systemctl", "edit", "--full", unit) + comment("fix: " + "; ".join(problems)),
            "sudo systemctl daemon-reload",
            sudo("systemctl", "restart", unit),
        ]
        findings.append(Finding("unit_file_invalid", problems + ev, fix))
    reload_needed = p.get("NeedDaemonReload") == "yes"
    if reload_needed:
        findings.append(
            Finding(
                "unit_not_reloaded",
                [
                    f"NeedDaemonReload=yes: {p.get('FragmentPath')} changed on disk; "
                    "systemd still runs "
                    "the old definition"
                ]
                + ev,
                ["sudo systemctl daemon-reload", sudo("systemctl", "restart", unit)],
            )
        )
    notes = []
    if s.gunicorn_unit and bind and bind != s.socket:
        notes.append(f"binds {shown(bind)}, configured socket is {s.socket}")
    if args["app"] and args["app"] != s.wsgi:
        notes.append(f"serves {args['app']}, configured wsgi is {s.wsgi}")
    if not bind:
        notes.append(
            "no --bind cynow-ops can use: "
            + (", ".join(map(str, told[0])) if told else "gunicorn's default 127.0.0.1:8000")
        )
    status = FAIL if findings else (WARN if notes else OK)
    summary = (
        "; ".join(problems)
        if problems
        else "changed on disk, not reloaded (NeedDaemonReload=yes)"
        if reload_needed
        else "; ".join(notes)
        if notes
        else f"User={user}, binds {shown(bind)}, app {args['app']}"
    )
    return [check.result(status, summary, ev + notes + facts.unit_verify[:3], findings)]


def gunicorn_config_command(s: Settings, _facts=None) -> str:
    """tasks/remote/gunicorn_config.py as the service runs (lenient, as the Django probe: a
    broken unit is what a diagnosis looks at): the unit's user reads the file gunicorn loads;
    the system python runs nothing of the app's (-I: no site, no PYTHON* variables)."""
    script = f"UNIT = {s.gunicorn_unit!r}\n" + programs.source("gunicorn_argv", "gunicorn_config")
    reader = join("timeout", "20", "python3", "-I", "-B", "-c", script)
    return service.as_service(s.gunicorn_unit, s.app_user, reader, strict=False) + " 2>&1"


def parse_gunicorn_config(stdout: str, _s=None) -> dict:
    """The reader's report; {"error": ...} when it printed none (no python3, refused...)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(CONFIG_MARK):
            try:
                return json.loads(line[len(CONFIG_MARK) :])
            except json.JSONDecodeError:
                return {"error": "the config reader's report was cut short"}
    tail = [redact_text(ln) for ln in stdout.strip().splitlines()[-2:]]
    return {"error": "; ".join(tail) or "no output"}


# gunicorn's own order: the command line over GUNICORN_CMD_ARGS over the config file.
def gunicorn_settings(facts: Facts, s: Settings) -> dict:
    """What gunicorn runs with, key -> (value, source, how): bind (a list), workers, timeout,
    chdir and wsgi_app from ExecStart, GUNICORN_CMD_ARGS (the unit's environment) and the
    config file, in gunicorn's precedence; config -> the file's path. A key nobody sets is
    absent."""
    p = facts.units.get(s.gunicorn_unit, {})
    if not installed(p):
        return {}
    conf = facts.gunicorn_config or {}
    argv = gunicorn_options(exec_argv(p.get("ExecStart", "")))
    # As the service has it (Environment= and EnvironmentFile=, read by the reader on the
    # server); when that did not say (not run, or run without the unit's environment because a
    # file was unreadable), the unit file's Environment= lines.
    env = conf.get("env_args")
    if env is None:
        value = unit_environment(facts.unit_file, "GUNICORN_CMD_ARGS")
        env = cmd_args(value) if value is not None else {}
    path = conf.get("path") if conf.get("exists") and not conf.get("error") else None
    values = conf.get("values") or {}
    from_file = {
        "bind": [values["bind"]] if isinstance(values.get("bind"), str) else values.get("bind"),
        **{k: values.get(k) for k in ("workers", "timeout", "chdir", "wsgi_app")},
    }
    out = {}
    how = {"unit": "ExecStart's --config", "GUNICORN_CMD_ARGS": "GUNICORN_CMD_ARGS's --config"}
    named = conf.get("named")
    if path:
        source = "unit" if named in how else "gunicorn config"  # found where gunicorn looks
        out["config"] = (path, source, how.get(named, "gunicorn's default ./gunicorn.conf.py"))
    elif conf.get("path") and (named in how or conf.get("error")):
        # Named but not read (missing, unreadable as the app user, a python: module): said.
        why = conf.get("error") or "missing"
        out["config"] = (f"{conf['path']} (not read: {why})", "unit", how.get(named, ""))
    layers = [
        ("unit", "ExecStart's", {**argv, "bind": argv["binds"] or None, "wsgi_app": argv["app"]}),
        ("unit", "GUNICORN_CMD_ARGS's", {**env, "bind": env.get("binds") or None}),
        ("gunicorn config", f"{path}:", from_file),
    ]
    for key in ("bind", "workers", "timeout", "chdir", "wsgi_app"):
        for source, where, layer in layers:
            if layer.get(key) not in (None, []):
                out[key] = (layer[key], source, f"{where} {key}")
                break
    return out


def effective_binds(facts: Facts, s: Settings) -> list[str]:
    """The binds gunicorn uses (ExecStart's, else GUNICORN_CMD_ARGS's, else the config
    file's); a value the file computes is not one."""
    binds = (gunicorn_settings(facts, s).get("bind") or ([],))[0]
    if not isinstance(binds, list) or NOT_LITERAL in binds:
        return []
    return [str(b) for b in binds]


def parse_paths(stdout: str, _s=None) -> dict:
    """path_facts output: path -> exec|dir|file|missing; user:NAME / group:NAME -> ok|missing."""
    out = {}
    for line in stdout.splitlines():
        kind, _, name = line.partition(" ")
        if kind in ("exec", "dir", "file", "missing"):
            out[name] = kind
        elif kind in ("user", "nouser"):
            out[f"user:{name}"] = "ok" if kind == "user" else "missing"
        elif kind in ("group", "nogroup"):
            out[f"group:{name}"] = "ok" if kind == "group" else "missing"
    return out


FACTS = [
    # As the app user, whom the unit runs as: "executable" and systemd-analyze's checks mean
    # executable by the service, and a login that cannot pass /home/cynow (a hardened server's
    # admin) must not see the unit's binary as missing. Nothing is read but modes and names.
    Fact(
        "unit",
        unit_file_command,
        parse_unit_file,
        into=("unit_file", "unit_verify"),
        identity=APP,
        framed=True,
    ),
    Fact("paths", lambda s, _f: path_facts(*expected_paths(s)), parse_paths, identity=APP),
    # gunicorn's config file, read as the service's user by a reader run as root (as_service).
    Fact("gunicorn_config", gunicorn_config_command, parse_gunicorn_config, identity=ROOT),
    Fact(
        "unit_paths",
        unit_paths_command,
        parse_paths,
        into="paths",
        identity=APP,
        second=True,
        merge=True,
    ),
]
