"""The deploy's remote scripts (pure builders). Temporary home during the layout move: each
builder moves into the step in tasks/steps/ that sends it."""

from __future__ import annotations

from collections.abc import Sequence

from tasks import programs
from tasks.checks_commands import http_script
from tasks.git import git
from tasks.shell import batch, join, q, say, sequence
from tasks.systemd import hup_main, journal_cursor, systemctl, systemctl_show, unit_pids


def history_append(state_dir: str, line: str) -> str:
    return f"printf '%s\\n' {q(line)} >> {q(state_dir + '/history.jsonl')}"


def history_read(state_dir: str, n: int = 200) -> str:
    return f"tail -n {int(n)} {q(state_dir + '/history.jsonl')} 2>/dev/null; true"


def in_project(project_dir: str, *argv: object) -> str:
    return f"cd {q(project_dir)} && {join(*argv)}"


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


def venv_restore(venv: str, frozen: list[str]) -> str:
    """The recorded freeze installed again (old versions back), then the venv's freeze as it is
    now, so the caller can remove what the new requirements added. The list goes through a
    private temporary file, each line quoted."""
    pip = f"{venv}/bin/pip"
    lines = " ".join(q(line) for line in frozen)
    return sequence(
        {
            "install": "tmp=$(mktemp) || exit 1; trap 'rm -f \"$tmp\"' EXIT; "
            f"printf '%s\\n' {lines} > \"$tmp\" && "
            f'{join(pip, "install", "-q", "--disable-pip-version-check", "-r")} "$tmp"',
            "freeze": pip_freeze(venv),
        }
    )


def pip_uninstall(venv: str, names: list[str]) -> str:
    return join(f"{venv}/bin/pip", "uninstall", "-y", "-q", "--disable-pip-version-check", *names)


def deploy_probe(project_dir: str, python: str, wsgi: str) -> str:
    """The deploy's Django probe (tasks/remote/deploy_probe.py) as the app user: migration state
    from the migration table, the WSGI import and checks, the classified plan."""
    settings_module = wsgi.split(".")[0] + ".settings"
    script = "\n".join(
        [
            programs.source("migration_risk"),
            f"WSGI = {wsgi!r}",
            f"SETTINGS = {settings_module!r}",
            programs.source("deploy_probe"),
        ]
    )
    return f"cd {q(project_dir)} && timeout 120 {q(python)} -B -c {q(script)} 2>&1 | tail -n 40"


def migrate_to(project_dir: str, python: str, app: str, name: str) -> str:
    return in_project(project_dir, python, "manage.py", "migrate", app, name, "--noinput")


def preflight_script(project_dir: str, python: str, wsgi: str) -> str:
    """The deploy's preflight in one round trip, as the app user: the deployed commit, changes
    not committed, the free space under the checkout, and the Django probe (the migration state
    to record)."""
    return sequence(
        {
            "head": git(project_dir, "rev-parse", "HEAD"),
            "dirty": git(
                project_dir, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"
            ),
            "free": f"df --output=avail -k {q(project_dir)} | tail -n 1",
            "probe": deploy_probe(project_dir, python, wsgi),
        }
    )


def fetch_script(project_dir: str, remote: str, branch: str, old: str) -> str:
    """The deploy's fetch in one round trip, as the app user: the branch into its remote-tracking
    ref, that ref's commit, whether it descends from the deployed commit `old`, and the commits
    and files between them. Stops at the first part that fails (a failed fetch: nothing else)."""
    tracking = f"refs/remotes/{remote}/{branch}"
    fetch = git(
        project_dir, "fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{tracking}"
    )
    return "\n".join(
        [
            sequence({"fetch": fetch}),
            # Read once: every later part uses this commit, even if the ref moved meanwhile.
            f"new=$({git(project_dir, 'rev-parse', '--verify', tracking + '^{commit}')})",
            sequence(
                {
                    "new": 'test -n "$new" && printf \'%s\\n\' "$new"',
                    "ancestor": f'{git(project_dir, "merge-base", "--is-ancestor", old)} "$new"',
                    "log": f'{git(project_dir, "log", "--format=%h %s")} {q(old + "..")}"$new"',
                    "diff": f'{git(project_dir, "diff", "--name-only", old)} "$new"',
                }
            ),
        ]
    )


def files_in_commit_script(project_dir: str, commit: str, files: list[str]) -> str:
    """`present FILE` or `missing FILE` for each file, as a commit has it (one `git cat-file -e`
    each, in one shell)."""
    return (
        "\n".join(
            f"if {git(project_dir, 'cat-file', '-e', f'{commit}:{f}')} 2>/dev/null; "
            f"then {say('present', f)}; else {say('missing', f)}; fi"
            for f in files
        )
        or "true"
    )


def reload_script(unit: str, graceful: bool) -> str:
    """The deploy's reload in one round trip, as root: the unit's state and processes before it,
    then a daemon-reload when systemd asks for one, the journal's position, and HUP to the
    master when `graceful` and the unit runs with its file unchanged (`mode=hup`), else
    reset-failed and a full restart (`mode=restart`). The `reload` part fails when they do."""
    u = q(unit)
    hup_allowed = '[ "$need" != yes ] && [ "$active" = active ]' if graceful else "false"
    act = "\n".join(
        [
            f"need=$(systemctl show -p NeedDaemonReload --value {u})",
            f"active=$(systemctl show -p ActiveState --value {u})",
            # HUP cannot apply a changed unit file; systemd must read it first.
            f'[ "$need" != yes ] || {systemctl("daemon-reload", unit)} || exit',
            f"if {hup_allowed}; then",
            f"  {journal_cursor(unit)}",
            f"  {hup_main(unit)} && echo mode=hup",
            "else",
            f"  {systemctl('reset-failed', unit)} 2>/dev/null",
            f"  {journal_cursor(unit)}",
            f"  {systemctl('restart', unit)} && echo mode=restart",
            "fi",
        ]
    )
    return batch(
        {
            "show": systemctl_show(
                [unit], ["ActiveState", "SubState", "MainPID", "NeedDaemonReload"]
            ),
            "pids": unit_pids(unit),
            "reload": act,
        }
    )


def wait_gone(unit: str, pids: Sequence[int], seconds: float) -> str:
    """Wait (on the server: no round trip per poll) up to `seconds` until none of `pids` is left
    in the unit's control group."""
    old = " ".join(str(int(p)) for p in pids)
    return "\n".join(
        [
            f"old=' {old} '",
            f"end=$(( $(date +%s%3N) + {max(0, int(seconds * 1000))} ))",
            "while :; do",
            "  left=",
            f"  for p in $( {unit_pids(unit)} ); do",
            '    case "$old" in *" $p "*) left="$left $p";; esac',
            "  done",
            '  [ -n "$left" ] && [ "$(date +%s%3N)" -lt "$end" ] || break',
            "  sleep 0.05",
            "done",
        ]
    )


def health_script(
    socket: str,
    urls: list[str],
    http_timeout: float,
    unit: str,
    old_pids: Sequence[int] = (),
    wait: float = 0.0,
    journal_after: str = "",
) -> str:
    """One poll of the health gate in one round trip, as root: first (up to `wait` seconds) until
    the old workers `old_pids` have left, so that the new ones answer; then every URL through
    the socket and through nginx, the unit's processes and main PID, and with a journal cursor
    the number of tracebacks the unit logged after it."""
    parts = {}
    if old_pids:
        parts["wait"] = wait_gone(unit, old_pids, wait)
    parts["http"] = http_script(socket, urls, http_timeout)
    parts["pids"] = unit_pids(unit)
    parts["main"] = join("systemctl", "show", "-p", "MainPID", "--value", unit)
    if journal_after:
        parts["tracebacks"] = (
            # --sync returns once journald has processed what was sent to it before: a
            # traceback a worker has just printed is counted, not missed by a few milliseconds.
            "journalctl --sync 2>/dev/null; "
            + join("journalctl", "--no-pager", "-u", unit, f"--after-cursor={journal_after}")
            + " | grep -c Traceback; true"
        )
    return batch(parts)


def unmigrate_script(project_dir: str, python: str, targets: list[tuple[str, str]]) -> str:
    """`manage.py migrate APP TARGET` for each (app, target) in order, in one round trip; stops
    at the first that fails. Parts are named by position ("0", "1", …)."""
    return sequence(
        {
            str(i): migrate_to(project_dir, python, app, name)
            for i, (app, name) in enumerate(targets)
        }
    )


def plan_heads(project_dir: str, remote: str, branch: str) -> str:
    """--dry-run, first round trip: the deployed commit and the remote branch's."""
    return sequence(
        {
            "head": git(project_dir, "rev-parse", "HEAD"),
            "remote": git(project_dir, "ls-remote", remote, f"refs/heads/{branch}"),
        }
    )


def plan_script(project_dir: str, remote: str, branch: str, old: str, new: str) -> str:
    """--dry-run, second round trip: the new objects (no ref, no FETCH_HEAD), whether `new`
    descends from `old`, the commits, the files changed and the files added between them."""
    return batch(
        {
            "fetch": git(
                project_dir,
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--refmap=",
                remote,
                f"refs/heads/{branch}",
            ),
            "ancestor": git(project_dir, "merge-base", "--is-ancestor", old, new),
            "log": git(project_dir, "log", "--format=%h %s", f"{old}..{new}"),
            "diff": git(project_dir, "diff", "--name-only", old, new),
            "added": git(project_dir, "diff", "--name-only", "--diff-filter=A", old, new),
        }
    )
