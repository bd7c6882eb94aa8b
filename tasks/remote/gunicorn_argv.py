# gunicorn's command line as systemd holds it (the ExecStart property): its argv, the binds and
# the WSGI app. Standalone (re and shlex only): tasks/checks/unit_file.py imports it, and the
# Django probe is sent with it (tasks/remote/django_probe.py), to import the app the unit serves.
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


def gunicorn_args(argv: list[str]) -> dict:
    """--bind values and the WSGI app from a gunicorn command line."""
    binds, app, i = [], None, 1
    while i < len(argv):
        a = argv[i]
        if a in ("-b", "--bind") and i + 1 < len(argv):
            binds.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("--bind="):
            binds.append(a.split("=", 1)[1])
        elif a in VALUE_OPTS:
            i += 1
        elif not a.startswith("-"):
            app = a
        i += 1
    return {"binary": argv[0] if argv else "", "binds": binds, "app": app}


def unit_app(unit: str):  # no `str | None`: evaluated on the server, where Python may be < 3.10
    """(app, None): the WSGI app the unit's ExecStart serves, what gunicorn imports on its next
    start, so the probes import that one; app is None when the unit names none. (None, reason)
    when the unit could not be read: then nobody knows what gunicorn serves (not a guess)."""
    try:
        r = subprocess.run(
            ["systemctl", "show", "-p", "ExecStart", "--value", unit],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except Exception as e:
        return None, f"systemctl show {unit}: {e}"
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        return None, f"systemctl show {unit}: {why}"
    return gunicorn_args(exec_argv(r.stdout)).get("app"), None
