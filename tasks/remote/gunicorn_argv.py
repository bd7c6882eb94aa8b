# gunicorn's command line as systemd holds it (the ExecStart property): its argv, the binds and
# the WSGI app; GUNICORN_CMD_ARGS and gunicorn's config file, read without running either.
# Standalone (the standard library only): tasks/checks/unit_file.py imports it, the Django probe
# is sent with it (tasks/remote/django_probe.py), to import the app the unit serves, and so is
# the config file reader (tasks/remote/gunicorn_config.py).
import os
import re
import shlex
import subprocess

# gunicorn options that take a separate value (so that value is not the WSGI app).
VALUE_OPTS = {
    "-b",
    "--bind",
    "-w",
    "--workers",
    "-t",
    "--timeout",
    "-k",
    "--worker-class",
    "-c",
    "--config",
    "--chdir",
    "-u",
    "--user",
    "-g",
    "--group",
    "-m",
    "--umask",
    "--log-level",
    "--access-logfile",
    "--error-logfile",
    "--log-file",
    "--max-requests",
    "--max-requests-jitter",
    "--threads",
    "-e",
    "--env",
    "--pythonpath",
    "--graceful-timeout",
    "--keep-alive",
    "--backlog",
    "-n",
    "--name",
    "-p",
    "--pid",
    "--worker-connections",
    "--log-config",
    "--forwarded-allow-ips",
    "--paste",
    "--limit-request-line",
    "--limit-request-fields",
    "--worker-tmp-dir",
    "--statsd-host",
}


def exec_argv(exec_start: str) -> list[str]:
    """argv of systemd's ExecStart property: `{ path=... ; argv[]=ARGS ; ignore_errors=no ... }`."""
    m = re.search(r"argv\[\]=(.*?) ; ", exec_start)
    if not m:
        return []
    try:
        return shlex.split(m.group(1))
    except ValueError:
        return m.group(1).split()


# The options whose values the layout reads (tasks/layout.py), by each spelling.
NAMED = {
    "-b": "bind",
    "--bind": "bind",
    "-c": "config",
    "--config": "config",
    "--chdir": "chdir",
    "-w": "workers",
    "--workers": "workers",
    "-t": "timeout",
    "--timeout": "timeout",
}


def gunicorn_options(argv):
    """A gunicorn command line (argv[0] the binary) as gunicorn's argparse reads it: `--opt V`,
    `--opt=V` and a short option's attached value (`-w3`), the last of a repeated option wins
    and every --bind counts. {"binds": [...], "config", "chdir", "workers", "timeout", "app"}:
    None where not given."""
    out = {"binds": [], "config": None, "chdir": None, "workers": None, "timeout": None}
    app, i = None, 1
    while i < len(argv):
        a = argv[i]
        name, value = a, None
        if a.startswith("--") and "=" in a:
            name, value = a.split("=", 1)
        elif not a.startswith("--") and len(a) > 2 and a[:2] in VALUE_OPTS:
            name, value = a[:2], a[2:]
        if name in VALUE_OPTS:
            if value is None and i + 1 < len(argv):
                i += 1
                value = argv[i]
            key = NAMED.get(name)
            if key == "bind" and value is not None:
                out["binds"].append(value)
            elif key:
                out[key] = value
        elif not a.startswith("-"):
            app = a
        i += 1
    out["app"] = app
    return out


def gunicorn_args(argv):
    """--bind values and the WSGI app from a gunicorn command line."""
    o = gunicorn_options(argv)
    return {"binary": argv[0] if argv else "", "binds": o["binds"], "app": o["app"]}


def cmd_args(value):
    """GUNICORN_CMD_ARGS as gunicorn splits it (shlex), read as a command line's options."""
    try:
        words = shlex.split(value or "")
    except ValueError:
        words = (value or "").split()
    return gunicorn_options(["gunicorn"] + words)


def unit_environment(unit_text, name):
    """The value a unit file (`systemctl cat`: the file and its drop-ins, in order) gives the
    variable `name` with Environment=, as systemd reads it: each line a list of quoted
    assignments, later ones override, an empty `Environment=` resets; None when unset.
    Environment= only: an EnvironmentFile's values are the service's to read (as_service)."""
    lines, value = [], None
    for raw in (unit_text or "").splitlines():
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + raw.strip()
        else:
            lines.append(raw.strip())
    for line in lines:
        key, eq, rest = line.partition("=")
        if not eq or key.strip() != "Environment":
            continue
        if not rest.strip():
            value = None
            continue
        try:
            words = shlex.split(rest)
        except ValueError:
            continue  # systemd ignores an assignment it cannot parse too
        for w in words:
            k, eq, v = w.partition("=")
            if eq and k == name:
                value = v
    return value


# What the layout reads of a gunicorn config file; the rest of the file is not looked at.
CONFIG_KEYS = ("bind", "workers", "timeout", "chdir", "wsgi_app")
NOT_LITERAL = "not a literal: not read"


def config_literals(text):
    """gunicorn's config file read, never executed: its top-level `NAME = LITERAL` assignments
    of CONFIG_KEYS (ast.literal_eval), the last one winning as it would when gunicorn runs the
    file. A key assigned any other way (an expression, under an `if`, `+=`) is NOT_LITERAL:
    what it holds is only known by running the file, which root must not do."""
    import ast

    out = {}
    for node in ast.parse(text).body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name):
            if target.id in CONFIG_KEYS:
                try:
                    v = ast.literal_eval(value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    v = NOT_LITERAL
                out[target.id] = list(v) if isinstance(v, tuple) else v
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # a hook's locals are not settings
        for sub in ast.walk(node):
            targets = getattr(sub, "targets", None) or [getattr(sub, "target", None)]
            for t in targets:
                for n in ast.walk(t) if t is not None else ():
                    if isinstance(n, ast.Name) and n.id in CONFIG_KEYS:
                        out[n.id] = NOT_LITERAL
    return out


def _show(unit, prop):
    """One property of the unit, as systemd has it loaded."""
    return subprocess.run(
        ["systemctl", "show", "-p", prop, "--value", unit],
        capture_output=True,
        text=True,
        timeout=10,
    )


def unit_app(unit: str):  # no `str | None`: evaluated on the server, where Python may be < 3.10
    """(app, None): the WSGI app the unit's ExecStart serves, what gunicorn imports on its next
    start, so the probes import that one; app is None when the unit names none. (None, reason)
    when the unit could not be read: then nobody knows what gunicorn serves (not a guess)."""
    try:
        r = _show(unit, "ExecStart")
    except Exception as e:
        return None, f"systemctl show {unit}: {e}"
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        return None, f"systemctl show {unit}: {why}"
    opts = gunicorn_options(exec_argv(r.stdout))
    if opts["app"]:
        return opts["app"], None
    # No app on the command line: gunicorn serves its config file's wsgi_app.
    return config_app(unit, opts), None


def config_path(opts, env_opts):
    """(path, where it was named) of the config file gunicorn loads: the command line's
    -c/--config, else GUNICORN_CMD_ARGS's, else its default ./gunicorn.conf.py (loaded only
    when it exists). A relative path is from the directory gunicorn starts in."""
    if opts.get("config"):
        return opts["config"], "unit"
    if env_opts and env_opts.get("config"):
        return env_opts["config"], "GUNICORN_CMD_ARGS"
    return "gunicorn.conf.py", "default"


def config_app(unit, opts):
    """The config file's wsgi_app when it is a literal (read, never run), else None."""
    env = os.environ.get("GUNICORN_CMD_ARGS")
    path, _ = config_path(opts, cmd_args(env) if env is not None else None)
    if path.startswith("python:"):
        return None
    path = path[len("file:") :] if path.startswith("file:") else path
    try:
        r = _show(unit, "WorkingDirectory")
        base = r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else os.getcwd()
        with open(os.path.join(base, path), encoding="utf-8", errors="replace") as f:
            app = config_literals(f.read(1 << 20)).get("wsgi_app")
    except Exception:
        return None
    return app if isinstance(app, str) and app != NOT_LITERAL else None
