"""The guide's procedures as data: what the team types on the server after a code change. The
printed fixes (tasks/checks/django.py) are built from it; `fab repair`'s update action and the
deploy's steps run the same sequence, in this order."""

from __future__ import annotations

from tasks.settings import Settings

# After a code change: pull, requirements, migrate, collectstatic, restart.
UPDATE = ("pull", "requirements", "migrate", "collectstatic", "restart")


def update_by_hand(s: Settings, project_dir: str | None = None) -> list[str]:
    """The update sequence as a person types it, one line a step of UPDATE."""
    project_dir = project_dir or s.project_dir
    as_app = f"sudo -u {s.app_user}"
    lines = {
        "pull": f"cd {project_dir} && {as_app} git pull --ff-only {s.git_remote} {s.git_branch}",
        "requirements": f"{as_app} {s.venv}/bin/pip install -r {s.requirements}",
        "migrate": f"{as_app} {s.python} manage.py migrate --noinput",
        "collectstatic": f"{as_app} {s.python} manage.py collectstatic --noinput",
        "restart": f"sudo systemctl restart {s.gunicorn_unit}",
    }
    return [lines[step] for step in UPDATE]
