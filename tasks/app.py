"""manage.py and pip as the service runs them (pure builders): used by the deploy's steps, by
`fab rollback` and by `fab repair`, so each is spelled once."""

from __future__ import annotations

from tasks.shell import join, q, sequence

# manage.py's arguments for the guide's two Django steps: the deploy, repair and the printed
# fixes all pass these.
MIGRATE = ("migrate", "--noinput")
COLLECTSTATIC = ("collectstatic", "--noinput")


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


def pip_install_r(venv: str, printed: bool = False) -> list[str]:
    """`pip install -r`, the requirements file to follow: the one spelling the deploy, rollback
    and repair run and the printed fixes show (a person reads pip's progress: not quiet)."""
    quiet = [] if printed else ["-q", "--disable-pip-version-check"]
    return [f"{venv}/bin/pip", "install", *quiet, "-r"]


def pip_install(project_dir: str, venv: str, requirements: str) -> str:
    """The configured requirements file installed, in the checkout it is relative to."""
    return in_project(project_dir, *pip_install_r(venv), requirements)


def pip_install_from(venv: str, fill: str) -> str:
    """pip install -r of a private temporary file that the command `fill` writes (on stdout)."""
    return (
        "tmp=$(mktemp) || exit 1; trap 'rm -f \"$tmp\"' EXIT; "
        f'{fill} > "$tmp" && {join(*pip_install_r(venv))} "$tmp"'
    )


def venv_restore(venv: str, frozen: list[str]) -> str:
    """The recorded freeze installed again (old versions back), then the venv's freeze as it is
    now, so the caller can remove what the new requirements added. The list goes through a
    private temporary file, each line quoted."""
    lines = " ".join(q(line) for line in frozen)
    return sequence(
        {
            "install": pip_install_from(venv, f"printf '%s\\n' {lines}"),
            "freeze": pip_freeze(venv),
        }
    )


def pip_uninstall(venv: str, names: list[str]) -> str:
    return join(f"{venv}/bin/pip", "uninstall", "-y", "-q", "--disable-pip-version-check", *names)
