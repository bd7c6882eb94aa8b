# run as root
python3 -I -B -c '# Runs one shell command line exactly as systemd runs the service'"'"'s process, run on the server
# as root with the system python: `python3 -I -B -c SOURCE UNIT FALLBACK_USER MODE COMMAND`
# (tasks/service.py builds it). Everything the app'"'"'s code does (manage.py, the probes, pip,
# the snapshot program, gunicorn by hand) goes through here, so it sees the database, secret
# and settings the service sees, not the ones a login shell happens to have.
#
# From the unit, read over D-Bus (busctl'"'"'s JSON: `systemctl show` prints a value holding a
# space as "[unprintable]"): User=, Group=, SupplementaryGroups=, WorkingDirectory=, UMask=,
# Environment= and EnvironmentFile=. The environment is built as systemd builds it: the
# manager'"'"'s (PATH, LANG...), then USER, LOGNAME, HOME and SHELL of the user, then Environment=,
# then each EnvironmentFile= in order (files override Environment=, later files earlier ones).
# Root reads the files (systemd does; they are often root'"'"'s own, mode 0600) and hands their
# values to the command in its environment only: never in argv, on stdout or stderr.
#
# Then groups, gid and uid are dropped to the unit'"'"'s (never root: a unit without User= is
# refused, the app'"'"'s code never runs as root here) and the command is executed with `sh -c`.
# MODE `strict`: a unit that is not loaded, an environment file missing or unreadable, refuses
# (exit 125, one line on stderr) rather than run with a guessed environment; `lenient` (the
# diagnosis, which must look at a broken server too) runs as FALLBACK_USER without the unit'"'"'s
# environment and says so on stderr, once, in a line starting `cynow-ops as-service:`.
import grp
import json
import os
import pwd
import subprocess
import sys

REFUSED = 125  # tasks/service.py knows this number too
PREFIX = "cynow-ops as-service: "
PROPS = [
    "User",
    "Group",
    "SupplementaryGroups",
    "WorkingDirectory",
    "UMask",
    "Environment",
    "EnvironmentFiles",
]


class Refusal(Exception):
    pass


def object_path(unit: str) -> str:
    """systemd'"'"'s D-Bus object path of a unit: every byte but [A-Za-z0-9] as _XX."""
    return "/org/freedesktop/systemd1/unit/" + "".join(
        chr(b) if chr(b).isascii() and chr(b).isalnum() else f"_{b:02x}" for b in unit.encode()
    )


def busctl(path: str, iface: str, props: list[str]) -> list:
    out = subprocess.run(
        ["busctl", "--json=short", "get-property", "org.freedesktop.systemd1", path, iface] + props,
        capture_output=True,
        text=True,
        timeout=20,
    )
    if out.returncode != 0:
        raise Refusal("cannot read the unit over D-Bus: " + (out.stderr.strip() or "busctl failed"))
    return [json.loads(line)["data"] for line in out.stdout.splitlines() if line.strip()]


def read_unit(unit: str) -> dict:
    path = object_path(unit)
    # Loading the unit first (as `systemctl show` does): a unit no one started has no object.
    subprocess.run(
        [
            "busctl",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "LoadUnit",
            "s",
            unit,
        ],
        capture_output=True,
        timeout=20,
    )
    (load,) = busctl(path, "org.freedesktop.systemd1.Unit", ["LoadState"])
    if load != "loaded":
        raise Refusal(f"the unit {unit} is {load or '"'"'unknown'"'"'}, not loaded")
    return dict(zip(PROPS, busctl(path, "org.freedesktop.systemd1.Service", PROPS), strict=True))


def parse_env_file(text: str) -> dict:
    """KEY=VALUE lines as systemd reads an EnvironmentFile: comments (# ;) and blank lines
    skipped, single quotes literal, double quotes with backslash escapes, a backslash at the
    end of a line continues it, unquoted trailing blanks dropped; invalid names ignored (systemd
    ignores them too, with a warning)."""
    env, i, n = {}, 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] in "#;":
            while i < n and text[i] != "\n":
                i += 1
            continue
        key_start = i
        while i < n and text[i] not in "=\n":
            i += 1
        if i >= n or text[i] != "=":
            continue  # a line without '"'"'='"'"': ignored
        key = text[key_start:i].strip()
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        value, quoted = [], False
        while i < n and text[i] != "\n":
            c = text[i]
            if c == "'"'"'":
                quoted, end = True, text.find("'"'"'", i + 1)
                end = n if end < 0 else end
                value.append(text[i + 1 : end])
                i = end + 1
            elif c == '"'"'"'"'"':
                quoted, i = True, i + 1
                while i < n and text[i] != '"'"'"'"'"':
                    if text[i] == "\\" and i + 1 < n:
                        if text[i + 1] == "\n":
                            i += 2
                            continue
                        if text[i + 1] in '"'"'"\\`$'"'"':
                            i += 1
                    value.append(text[i])
                    i += 1
                i += 1
            elif c == "\\" and i + 1 < n:
                if text[i + 1] != "\n":
                    value.append(text[i + 1])
                i += 2
            else:
                value.append(c)
                i += 1
        v = "".join(value)
        if not quoted:
            v = v.rstrip(" \t\r")
        if key.startswith("export "):  # not systemd'"'"'s syntax, but a common .env habit
            key = key[len("export ") :].strip()
        if (
            key
            and (key[0].isalpha() or key[0] == "_")
            and all(ch.isalnum() or ch == "_" for ch in key)
        ):
            env[key] = v
    return env


def manager_env() -> dict:
    """The manager'"'"'s environment (PATH, LANG...), which every service starts from."""
    out = subprocess.run(
        ["systemctl", "show-environment"], capture_output=True, text=True, timeout=20
    )
    env = {}
    for line in out.stdout.splitlines():
        k, eq, v = line.partition("=")
        if eq and not v.startswith("$'"'"'"):  # a value systemd had to escape: left out
            env[k] = v
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def service_env(props: dict, user: pwd.struct_passwd, strict: bool) -> tuple[dict, list]:
    env = manager_env()
    env.update(USER=user.pw_name, LOGNAME=user.pw_name, HOME=user.pw_dir, SHELL=user.pw_shell)
    for pair in props.get("Environment") or []:
        k, eq, v = pair.partition("=")
        if eq:
            env[k] = v
    notes = []
    for path, ignore_errors in props.get("EnvironmentFiles") or []:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                env.update(parse_env_file(f.read()))
        except OSError as e:
            if ignore_errors:
                continue
            why = f"the unit'"'"'s EnvironmentFile {path} cannot be read ({e.strerror})"
            if strict:
                raise Refusal(why) from None
            notes.append(why)
    return env, notes


def identity(props: dict):
    name = props.get("User") or ""
    if not name:
        raise Refusal("the unit has no User=: it runs as root, and the app'"'"'s code never does here")
    try:
        user = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise Refusal(f"the unit'"'"'s User={name} does not exist") from None
    if user.pw_uid == 0:
        raise Refusal("the unit runs as root, and the app'"'"'s code never does here")
    group = props.get("Group") or ""
    try:
        gid = (
            (int(group) if group.isdigit() else grp.getgrnam(group).gr_gid)
            if group
            else user.pw_gid
        )
        extra = [
            int(g) if g.isdigit() else grp.getgrnam(g).gr_gid
            for g in props.get("SupplementaryGroups") or []
        ]
    except KeyError as e:
        raise Refusal(f"the unit names a group that does not exist ({e})") from None
    return user, gid, extra


def workdir(props: dict, user) -> str:
    wd = props.get("WorkingDirectory") or ""
    wd = wd.lstrip("-!")  # "-": a missing directory is no error, as for systemd
    return user.pw_dir if wd == "~" else (wd or "/")


def fallback(name: str):
    user = pwd.getpwnam(name)
    if user.pw_uid == 0:
        raise Refusal("the fallback user is root, and the app'"'"'s code never runs as root here")
    return user, user.pw_gid, []


def main(argv: list[str]) -> int:
    try:
        unit, fallback_user, mode, command = argv[1:5]
    except ValueError:
        print(PREFIX + "usage: UNIT FALLBACK_USER strict|lenient COMMAND", file=sys.stderr)
        return REFUSED
    strict = mode == "strict"
    try:
        try:
            props = read_unit(unit)
            user, gid, extra = identity(props)
            env, notes = service_env(props, user, strict)
            cwd, umask = workdir(props, user), props.get("UMask")
        except Refusal as e:
            if strict:
                raise
            user, gid, extra = fallback(fallback_user)
            env = manager_env()
            env.update(USER=user.pw_name, LOGNAME=user.pw_name, HOME=user.pw_dir)
            notes, cwd, umask = (
                [f"{e}: run as {user.pw_name} without the unit'"'"'s environment"],
                "/",
                None,
            )
        for note in notes:
            print(PREFIX + note, file=sys.stderr)
        os.setgroups(sorted(set(os.getgrouplist(user.pw_name, gid)) | set(extra)))
        os.setgid(gid)
        os.setuid(user.pw_uid)
        if umask is not None:
            os.umask(int(umask))
        try:
            os.chdir(cwd)
        except OSError:
            os.chdir("/")
        os.execve("/bin/sh", ["sh", "-c", command], env)
    except Refusal as e:
        print(PREFIX + str(e), file=sys.stderr)
        return REFUSED
    except (OSError, KeyError) as e:
        print(PREFIX + f"cannot become the service'"'"'s user: {e}", file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
' gunicorn.service cynow lenient 'cd /home/cynow/cynow && timeout 60 /home/cynow/cynow/venv/bin/python -B -c '"'"'WSGI = '"'"'"'"'"'"'"'"'config.wsgi:application'"'"'"'"'"'"'"'"'
SETTINGS = '"'"'"'"'"'"'"'"'config.settings'"'"'"'"'"'"'"'"'
UNIT = '"'"'"'"'"'"'"'"'gunicorn.service'"'"'"'"'"'"'"'"'
# gunicorn'"'"'"'"'"'"'"'"'s command line as systemd holds it (the ExecStart property): its argv, the binds and
# the WSGI app; GUNICORN_CMD_ARGS and gunicorn'"'"'"'"'"'"'"'"'s config file, read without running either.
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
    """argv of systemd'"'"'"'"'"'"'"'"'s ExecStart property: `{ path=... ; argv[]=ARGS ; ignore_errors=no ... }`."""
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
    """A gunicorn command line (argv[0] the binary) as gunicorn'"'"'"'"'"'"'"'"'s argparse reads it: `--opt V`,
    `--opt=V` and a short option'"'"'"'"'"'"'"'"'s attached value (`-w3`), the last of a repeated option wins
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
    """GUNICORN_CMD_ARGS as gunicorn splits it (shlex), read as a command line'"'"'"'"'"'"'"'"'s options."""
    try:
        words = shlex.split(value or "")
    except ValueError:
        words = (value or "").split()
    return gunicorn_options(["gunicorn"] + words)


def unit_environment(unit_text, name):
    """The value a unit file (`systemctl cat`: the file and its drop-ins, in order) gives the
    variable `name` with Environment=, as systemd reads it: each line a list of quoted
    assignments, later ones override, an empty `Environment=` resets; None when unset.
    Environment= only: an EnvironmentFile'"'"'"'"'"'"'"'"'s values are the service'"'"'"'"'"'"'"'"'s to read (as_service)."""
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
    """gunicorn'"'"'"'"'"'"'"'"'s config file read, never executed: its top-level `NAME = LITERAL` assignments
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
            continue  # a hook'"'"'"'"'"'"'"'"'s locals are not settings
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
    """(app, None): the WSGI app the unit'"'"'"'"'"'"'"'"'s ExecStart serves, what gunicorn imports on its next
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
    # No app on the command line: gunicorn serves its config file'"'"'"'"'"'"'"'"'s wsgi_app.
    return config_app(unit, opts), None


def config_path(opts, env_opts):
    """(path, where it was named) of the config file gunicorn loads: the command line'"'"'"'"'"'"'"'"'s
    -c/--config, else GUNICORN_CMD_ARGS'"'"'"'"'"'"'"'"'s, else its default ./gunicorn.conf.py (loaded only
    when it exists). A relative path is from the directory gunicorn starts in."""
    if opts.get("config"):
        return opts["config"], "unit"
    if env_opts and env_opts.get("config"):
        return env_opts["config"], "GUNICORN_CMD_ARGS"
    return "gunicorn.conf.py", "default"


def config_app(unit, opts):
    """The config file'"'"'"'"'"'"'"'"'s wsgi_app when it is a literal (read, never run), else None."""
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

# The diagnosis'"'"'"'"'"'"'"'"'s Django probe (guide step 8), run on the server as the app user with the
# venv'"'"'"'"'"'"'"'"'s python in the project directory: `python -B -c SOURCE`, where SOURCE is the three names
# WSGI, SETTINGS and UNIT, then gunicorn_argv.py, then this file (tasks/checks/django.py builds
# it). One interpreter imports the WSGI app the unit serves as gunicorn would, runs Django'"'"'"'"'"'"'"'"'s
# checks, reads the migration plan and the database file, and prints one line
# `CYNOW-PROBE {json}`.
import importlib
import json
import os
import sys
import traceback

sys.path.insert(0, os.getcwd())
out = {"python": sys.version.split()[0], "executable": sys.executable}
# The unit'"'"'"'"'"'"'"'"'s Environment= and EnvironmentFile= are already set: tasks/service.py runs this
# program as the service runs (the unit'"'"'"'"'"'"'"'"'s user and environment).


def err(e):
    name = getattr(e, "name", None)
    top = (name or "").split(".")[0]
    return {
        "ok": False,
        "type": type(e).__name__,
        "message": str(e).splitlines()[0] if str(e) else "",
        "name": name,
        "in_project": bool(top) and (os.path.isdir(top) or os.path.isfile(top + ".py")),
        "traceback": traceback.format_exc().splitlines()[-15:],
    }


def load(app):
    """Import a WSGI app as gunicorn does: `module:attribute`, the attribute `application`
    when none is named."""
    mod, _, attr = app.partition(":")
    try:
        getattr(importlib.import_module(mod), attr or "application")
        return {"ok": True}
    except BaseException as e:
        return err(e)


# What gunicorn imports is the unit'"'"'"'"'"'"'"'"'s app; the configured one stands in only when the unit
# names none. When they differ, the configured one is tried too, so that a unit naming an app
# that does not exist is told apart from code that does not import.
served, unreadable = unit_app(UNIT)  # noqa: F821
out["wsgi_app"], out["wsgi_source"] = (served, "unit") if served else (WSGI, "config")  # noqa: F821
if unreadable:
    # Not known what gunicorn serves: the configured app is tried, and the check says so.
    out["wsgi_source"], out["wsgi_unit_error"] = "unknown", unreadable
out["wsgi"] = load(out["wsgi_app"])
if out["wsgi_app"] != WSGI:  # noqa: F821
    out["wsgi_config"] = load(WSGI)  # noqa: F821
try:
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)  # noqa: F821
    django.setup()
    out["django"] = django.get_version()
    db = settings.DATABASES["default"]
    name = str(db.get("NAME", ""))
    out["database"] = {"engine": db.get("ENGINE", ""), "name": name}
    if "sqlite" in db.get("ENGINE", ""):
        d = os.path.dirname(name) or "."
        out["database"].update(
            exists=os.path.exists(name),
            writable=os.access(name, os.W_OK),
            dir=d,
            dir_writable=os.access(d, os.W_OK),
        )
        import grp
        import pwd

        for key, path in (("file", name), ("dir", d)):
            try:
                st = os.stat(path)
                owner = pwd.getpwuid(st.st_uid).pw_name
                group = grp.getgrgid(st.st_gid).gr_name
                out["database"][key + "_stat"] = f"{owner}:{group} {st.st_mode & 0o7777:o}"
            except (OSError, KeyError):
                pass
    out["static_root"] = str(getattr(settings, "STATIC_ROOT", "") or "")
    # The URL nginx must serve STATIC_ROOT at (the layout finds nginx'"'"'"'"'"'"'"'"'s location for it). As
    # Django spells it outside a request: a relative STATIC_URL gets FORCE_SCRIPT_NAME or "/".
    out["static_url"] = str(getattr(settings, "STATIC_URL", "") or "")
    # Where the app'"'"'"'"'"'"'"'"'s own logging writes (file handlers), and the hosts it answers: the layout
    # `fab info` shows comes from the settings the service runs with.
    handlers = (getattr(settings, "LOGGING", None) or {}).get("handlers") or {}
    out["log_files"] = sorted(
        {str(h["filename"]) for h in handlers.values() if isinstance(h, dict) and h.get("filename")}
    )
    out["allowed_hosts"] = [str(h) for h in getattr(settings, "ALLOWED_HOSTS", [])]
    # What `manage.py check` runs, without loading the management machinery.
    try:
        from django.core import checks

        found = checks.run_checks()
        bad = [str(m) for m in found if m.is_serious()]
        out["check"] = (
            {
                "ok": True,
                "output": [f"System check identified {len(found)} issue(s), none serious."],
            }
            if not bad
            else {"ok": False, "type": "SystemCheckError", "message": bad[0], "traceback": bad[:6]}
        )
    except BaseException as e:
        out["check"] = err(e)
    if "sqlite" not in db.get("ENGINE", "") or out["database"]["exists"]:
        try:
            from django.db import connection
            from django.db.migrations.executor import MigrationExecutor

            ex = MigrationExecutor(connection)
            plan = ex.migration_plan(ex.loader.graph.leaf_nodes())
            out["unapplied"] = [m.app_label + "." + m.name for m, back in plan if not back]
        except BaseException as e:
            out["migrations_error"] = err(e)
except BaseException as e:
    out["setup"] = err(e)
print("CYNOW-PROBE " + json.dumps(out))
'"'"' 2>&1 | tail -n 60' 2>&1
