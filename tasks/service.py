"""Running the app's code exactly as the service runs: the unit's user, groups, working
directory, umask, Environment= and EnvironmentFile= (tasks/remote/as_service.py, run as root
with the system python; it drops to the unit's user before the command runs). The deploy's
manage.py, pip and probes, the snapshots, and diagnose's Django probe all go through here: a
settings value from an EnvironmentFile (the database path, the secret key) is the same for
them as for gunicorn."""

from __future__ import annotations

from tasks import programs
from tasks.shell import join

# The wrapper's own exit status when it refused to run the command (see the program).
REFUSED = 125
PREFIX = "cynow-ops as-service: "


def as_service(unit: str, fallback_user: str, command: str, strict: bool = True) -> str:
    """`command` (a shell command line) as the unit's process would run it; to be run as root.
    strict: a unit not loaded or an unreadable EnvironmentFile refuses (exit 125) instead of a
    run with a guessed environment; lenient (diagnose): runs as `fallback_user`, says so on
    stderr."""
    return join(
        "python3",
        "-I",
        "-B",
        "-c",
        programs.source("as_service"),
        unit,
        fallback_user,
        "strict" if strict else "lenient",
        command,
    )


def refusal(stderr: str) -> str:
    """The wrapper's one-line reason, if it refused or ran without the unit's environment."""
    return next((ln[len(PREFIX) :] for ln in stderr.splitlines() if ln.startswith(PREFIX)), "")
