"""The guide's procedures as data: what the team types on the server after a code change. The
printed fixes (tasks/checks/*.py) are built from it; `fab repair`'s update action and the
deploy's steps run the same sequence, in this order.

A printed fix is pasted into a root shell, so it is built like an executed command: every
value through tasks/shell.py's `q`/`join`. A path with a space, a quote or `$(...)` stays one
argument; an ordinary path prints as before (`q` leaves safe strings bare).
"""

from __future__ import annotations

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


def by_hand(s: Settings, project_dir: str | None = None) -> dict[str, str]:
    """Each step of UPDATE as a person types it (the later steps run in the pull's directory)."""
    project_dir = project_dir or s.project_dir
    return {
        "pull": in_dir(
            project_dir, sudo_as(s.app_user, "git", "pull", "--ff-only", s.git_remote, s.git_branch)
        ),
        "requirements": sudo_as(s.app_user, f"{s.venv}/bin/pip", "install", "-r", s.requirements),
        "migrate": sudo_as(s.app_user, s.python, "manage.py", "migrate", "--noinput"),
        "collectstatic": sudo_as(s.app_user, s.python, "manage.py", "collectstatic", "--noinput"),
        "restart": sudo("systemctl", "restart", s.gunicorn_unit),
    }


def update_by_hand(s: Settings, project_dir: str | None = None) -> list[str]:
    """The update sequence as a person types it, one line a step of UPDATE."""
    lines = by_hand(s, project_dir)
    return [lines[step] for step in UPDATE]
