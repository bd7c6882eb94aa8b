"""manage.py and pip as the service runs them (pure builders): used by the deploy's steps, by
`fab rollback` and by `fab repair`, so each is spelled once."""

from __future__ import annotations

from tasks.shell import join, q, sequence


def in_project(project_dir: str, *argv: object) -> str:
    return f"cd {q(project_dir)} && {join(*argv)}"


def manage(project_dir: str, python: str, *args: object) -> str:
    """`python manage.py ARGS` in the checkout."""
    return in_project(project_dir, python, "manage.py", *args)


def migrate_to(project_dir: str, python: str, app: str, name: str) -> str:
    return manage(project_dir, python, "migrate", app, name, "--noinput")


def pip_freeze(venv: str) -> str:
    """The venv's exact state, pip and setuptools included: what a rollback restores."""
    return join(f"{venv}/bin/pip", "freeze", "--all", "--disable-pip-version-check")


def pip_install(project_dir: str, venv: str, requirements: str) -> str:
    return in_project(
        project_dir,
        f"{venv}/bin/pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "-r",
        requirements,
    )


def pip_install_file(venv: str) -> str:
    """pip install -r of the file named by "$tmp" (the caller writes it)."""
    return f'{join(f"{venv}/bin/pip", "install", "-q", "--disable-pip-version-check", "-r")} "$tmp"'


def venv_restore(venv: str, frozen: list[str]) -> str:
    """The recorded freeze installed again (old versions back), then the venv's freeze as it is
    now, so the caller can remove what the new requirements added. The list goes through a
    private temporary file, each line quoted."""
    lines = " ".join(q(line) for line in frozen)
    return sequence(
        {
            "install": "tmp=$(mktemp) || exit 1; trap 'rm -f \"$tmp\"' EXIT; "
            f"printf '%s\\n' {lines} > \"$tmp\" && " + pip_install_file(venv),
            "freeze": pip_freeze(venv),
        }
    )


def pip_uninstall(venv: str, names: list[str]) -> str:
    return join(f"{venv}/bin/pip", "uninstall", "-y", "-q", "--disable-pip-version-check", *names)
