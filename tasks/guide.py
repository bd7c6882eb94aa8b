"""The guide's procedures as data: what the team types on the server after a code change. The
printed fixes (tasks/checks/*.py) are built from it; `fab repair`'s update action and the
deploy's steps run the same sequence, in this order.

A printed fix is pasted into a root shell, so it is built like an executed command: every
value through tasks/shell.py's `q`/`join`. A path with a space, a quote or `$(...)` stays one
argument; an ordinary path prints as before (`q` leaves safe strings bare).
"""

from __future__ import annotations

from tasks import app
from tasks.settings import Settings
from tasks.shell import in_dir, join
from tasks.text import clean

# After a code change: pull, requirements, migrate, collectstatic, restart.
UPDATE = ("pull", "requirements", "migrate", "collectstatic", "restart")


def sudo(*argv: object) -> str:
    """A printed root command, each argument quoted."""
    return join("sudo", *argv)


def sudo_as(user: str, *argv: object) -> str:
    """A printed command run as another user, each argument quoted."""
    return join("sudo", "-u", user, *argv)


def operand(path: str) -> str:
    """A path from the server as a command's operand: one starting with '-' would be read as
    an option; `./` names the same file."""
    return f"./{path}" if path.startswith("-") else path


def comment(text: str) -> str:
    """A note after a printed command, on its line: server text may hold a newline, which
    would start a command of its own in what the operator pastes."""
    return "  # " + clean(text, newlines=False)


def _pull(s: Settings) -> tuple[str, ...]:
    return ("git", "pull", "--ff-only", s.git_remote, s.git_branch)


# manage.py's arguments for the two Django steps of UPDATE.
MANAGE = {"migrate": app.MIGRATE, "collectstatic": app.COLLECTSTATIC}


def by_hand(s: Settings, project_dir: str | None = None) -> dict[str, str]:
    """Each step of UPDATE as a person types it (the later steps run in the pull's directory)."""
    project_dir = project_dir or s.project_dir
    return {
        "pull": in_dir(project_dir, sudo_as(s.app_user, *_pull(s))),
        "requirements": sudo_as(
            s.app_user, *app.pip_install_r(s.venv, printed=True), s.requirements
        ),
        **{
            step: sudo_as(s.app_user, s.python, "manage.py", *args) for step, args in MANAGE.items()
        },
        "restart": sudo("systemctl", "restart", s.gunicorn_unit),
    }


def as_app(s: Settings) -> list[str]:
    """The steps of UPDATE that run as the app user, as `fab repair` runs them, built by the
    deploy's own builders (tasks/app.py). The restart is left to the caller: repair's gunicorn
    action also resets a failed unit and removes a stale socket."""
    run = {
        "pull": app.in_project(s.project_dir, *_pull(s)),
        "requirements": app.pip_install(s.project_dir, s.venv, s.requirements),
        **{step: app.manage(s.project_dir, s.python, *args) for step, args in MANAGE.items()},
    }
    return [run[step] for step in UPDATE if step in run]


def update_by_hand(s: Settings, project_dir: str | None = None) -> list[str]:
    """The update sequence as a person types it, one line a step of UPDATE."""
    lines = by_hand(s, project_dir)
    return [lines[step] for step in UPDATE]
