"""Every cause `fab diagnose` can name, one row each: its id, title, the log signatures that
speak of it (tasks/catalogue.py), the cynow-ops command that fixes it and, where no command
can, what a person does. The order is the rank: when several causes hold, the first is the one
to fix first (the others are often its consequences). The README's table is this one.
`fab repair` reads the `repair` column, the verdict the `follows` and `omits` columns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    logs: tuple[str, ...] = ()  # catalogue keys whose newest lines are quoted as evidence
    fab: str = ""  # the cynow-ops command that applies the fix, shown before the shell lines
    by_hand: str = ""  # set when `fab repair` leaves it to a person: what they must do
    app: bool = False  # an error in the app (code, packages, settings): workers fail to boot
    # `fab repair`'s actions that fix it (keys of tasks/repair.py's actions_for), in any order:
    # repair applies them in its own safe order.
    repair: tuple[str, ...] = ()
    # A consequence when another cause is first: its fix (reset, start) still follows the first
    # cause's fix in the verdict, since the service stays down after the cause is gone.
    follows: bool = False
    # Links of the verdict's chain (tasks/verdict.py CHAIN_LINKS) this cause's own evidence
    # already states: "gunicorn is not running" needs no "gunicorn master exits" after it.
    omits: tuple[str, ...] = ()


CAUSES = [
    Cause(
        "unreachable",
        "the server cannot be reached or logged into over SSH",
        by_hand="make the server reachable over SSH first",
    ),
    Cause(
        "nginx_config_invalid",
        "nginx's configuration is invalid or the site is not enabled",
        by_hand="fix the nginx config error shown, then `sudo nginx -t && sudo systemctl reload "
        "nginx`",
    ),
    Cause("nginx_stopped", "nginx is not running", fab="fab repair", repair=("nginx",)),
    Cause(
        "unit_file_invalid",
        "the gunicorn unit names a user, directory or program that does not exist",
        logs=("exec_failed", "nginx_enoent"),
        by_hand="fix the gunicorn unit (`sudo systemctl edit --full gunicorn.service`)",
    ),
    Cause(
        "unit_not_reloaded",
        "the gunicorn unit changed on disk but systemd runs the old one",
        fab="fab restart",
        repair=("daemon-reload", "gunicorn"),
    ),
    Cause(
        "socket_path_mismatch",
        "nginx connects to a different socket than gunicorn binds",
        logs=("nginx_enoent",),
        by_hand="choose the right socket path and make nginx and the unit agree",
        omits=("socket gone",),
    ),
    Cause(
        "socket_permission_denied",
        "www-data cannot reach the gunicorn socket",
        logs=("nginx_eacces",),
        fab="fab fix-permissions",
        repair=("permissions",),
    ),
    Cause(
        "code_outdated",
        "the server runs older code than origin/main (the guide's current problem)",
        logs=("module_not_found", "import_error", "worker_boot", "nginx_enoent"),
        fab="fab repair",
        app=True,
        repair=("update", "gunicorn"),
    ),
    Cause(
        "missing_dependency",
        "the venv lacks a package the code imports",
        logs=("module_not_found", "worker_boot", "nginx_enoent"),
        fab="fab repair",
        app=True,
        repair=("dependencies", "gunicorn"),
    ),
    Cause(
        "settings_error",
        "Django's settings are broken or a variable is missing",
        logs=("improperly_configured", "worker_boot", "nginx_enoent"),
        by_hand="fix the setting or environment variable the message names",
        app=True,
    ),
    Cause(
        "app_import_error",
        "the app's code fails to import",
        logs=(
            "module_not_found",
            "import_error",
            "syntax_error",
            "worker_boot",
            "app_load",
            "nginx_enoent",
        ),
        by_hand="fix the code the traceback names and push it to origin/main",
        app=True,
    ),
    Cause(
        "database_unwritable",
        "the app user cannot write the sqlite database or its directory",
        logs=("readonly_db",),
        fab="fab fix-permissions",
        repair=("permissions",),
    ),
    Cause(
        "migrations_pending",
        "migrations are not applied",
        logs=("no_such_table", "unapplied"),
        fab="fab repair",
        repair=("migrate", "gunicorn"),
    ),
    Cause(
        "gunicorn_start_limit_hit",
        "gunicorn crashed repeatedly and systemd gave up",
        logs=("start_limit", "nginx_enoent"),
        fab="fab restart",
        repair=("gunicorn",),
        follows=True,
        omits=("start limit",),
    ),
    Cause(
        "gunicorn_crash_loop",
        "gunicorn keeps exiting and systemd keeps restarting it",
        logs=("gunicorn_error", "auto_restart", "exit_code"),
        by_hand="read gunicorn's error (fab logs --known) and fix what it names",
    ),
    Cause(
        "stale_socket",
        "the socket file exists but nothing listens on it",
        logs=("nginx_refused",),
        fab="fab restart --force",
        repair=("gunicorn",),
        follows=True,
        omits=("master exits",),
    ),
    Cause(
        "gunicorn_stopped",
        "gunicorn is not running",
        logs=("nginx_enoent",),
        fab="fab restart",
        repair=("gunicorn",),
        follows=True,
        omits=("service state",),
    ),
    Cause(
        "worker_timeout",
        "requests run longer than gunicorn's or nginx's timeout",
        by_hand="make the slow view faster (or raise --timeout together with nginx's "
        "proxy_read_timeout)",
    ),
    Cause(
        "static_unreadable",
        "www-data cannot read the static files",
        logs=("nginx_static_eacces",),
        fab="fab fix-permissions",
        repair=("permissions",),
    ),
    Cause(
        "tools_missing",
        "a command the checks need is missing on the server, so what it would show is not known",
        by_hand="install the package named (`sudo apt-get install …`), then diagnose again",
    ),
    Cause(
        "unknown",
        "a request through nginx or a check fails, and no known cause matched",
        by_hand="read the failing checks of fab diagnose",
    ),
    Cause("healthy", "every check passed and the health URLs answer through nginx"),
]

BY_ID = {cause.id: cause for cause in CAUSES}
TITLES = {cause.id: cause.title for cause in CAUSES}
RANK = {cause.id: i for i, cause in enumerate(CAUSES)}
# Causes `fab repair` leaves to a person, and what they must do.
BY_HAND = {cause.id: cause.by_hand for cause in CAUSES if cause.by_hand}
# What `fab repair` does for each cause it can fix.
REPAIRS = {cause.id: cause.repair for cause in CAUSES if cause.repair}
