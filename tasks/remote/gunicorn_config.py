# gunicorn's own config file, read for the layout (tasks/layout.py) and never executed: run on
# the server with the system python (`python3 -I -B -c SOURCE`, SOURCE the name UNIT, then
# gunicorn_argv.py, then this file; tasks/checks/unit_file.py builds it) through
# tasks/remote/as_service.py, so as the unit's user, in its WorkingDirectory, with its
# Environment= and EnvironmentFile=: the file gunicorn would load is the one read, with the
# permissions gunicorn has, and root never runs code the app user can write.
#
# Which file, as gunicorn picks it: ExecStart's -c/--config, else GUNICORN_CMD_ARGS's, else
# ./gunicorn.conf.py in the working directory when it exists (gunicorn's default). Prints one
# line `CYNOW-GUNICORN-CONFIG {json}`: the path, where it was named, the literals read
# (config_literals), and GUNICORN_CMD_ARGS's options as gunicorn reads them (the variable's
# text itself is never printed: an EnvironmentFile's values stay out of every output).
import json
import os
import subprocess

MAX_BYTES = 1 << 20


def read_unit(unit):
    r = subprocess.run(
        ["systemctl", "show", "-p", "LoadState", "-p", "ExecStart", "-p", "WorkingDirectory", unit],
        capture_output=True,
        text=True,
        timeout=10,
    )
    props = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition("=")
        props[key] = value
    return props


def main(unit):
    out = {}
    props = read_unit(unit)
    if props.get("LoadState") != "loaded":
        out["error"] = f"the unit {unit} is {props.get('LoadState') or 'unknown'}"
        return out
    args = gunicorn_options(exec_argv(props.get("ExecStart", "")))  # noqa: F821
    env = os.environ.get("GUNICORN_CMD_ARGS")
    env_args = cmd_args(env) if env is not None else None  # noqa: F821
    if env_args is not None:
        env_args.pop("app", None)
    out["env_args"] = env_args
    path, named = config_path(args, env_args)  # noqa: F821
    out["named"] = named
    if path.startswith("python:"):
        out.update(path=path, error="a python module: not read")
        return out
    path = path[len("file:") :] if path.startswith("file:") else path
    # A relative path is gunicorn's: from the directory it starts in (WorkingDirectory).
    base = props.get("WorkingDirectory") or os.getcwd()
    full = os.path.normpath(os.path.join(base, path))
    out["path"] = full
    try:
        with open(full, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        out["exists"] = False
        return out
    except OSError as e:
        out.update(exists=True, error=f"{type(e).__name__}: {e.strerror}")
        return out
    out["exists"] = True
    if len(data) > MAX_BYTES:
        out["error"] = f"larger than {MAX_BYTES} bytes: not read"
        return out
    try:
        out["values"] = config_literals(data.decode("utf-8", "replace"))  # noqa: F821
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        out["error"] = f"not Python gunicorn can load: {type(e).__name__}: {e}"
    return out


try:
    report = main(UNIT)  # noqa: F821
except Exception as e:  # the layout says it was not read, the diagnosis goes on
    report = {"error": f"{type(e).__name__}: {e}"}
print("CYNOW-GUNICORN-CONFIG " + json.dumps(report))
