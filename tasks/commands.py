"""Pure builders of remote shell commands. All quoting of interpolated values happens here.

Nothing in this module touches the network; `tests/unit/test_commands.py` asserts exact strings
and runs the quoting against hostile values in a real shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from tasks import programs


def q(value: object) -> str:
    """Quote one value for a POSIX shell; the only way values enter a command string."""
    return shlex.quote(str(value))


def join(*argv: object) -> str:
    """A command line from separate arguments, each quoted."""
    return " ".join(q(a) for a in argv)


def say(*words: object) -> str:
    """Print words as one output line, whatever they contain (values never reach a format
    string or an unquoted echo)."""
    return f"printf '%s\\n' {q(' '.join(str(w) for w in words))}"


def as_root(command: str) -> str:
    """Run a whole shell command line under non-interactive sudo (fails instead of prompting)."""
    return f"sudo -n -- sh -c {q(command)}"


def as_user(user: str, command: str) -> str:
    """Run a whole shell command line as another user through non-interactive sudo."""
    return f"sudo -n -u {q(user)} -- sh -c {q(command)}"


BATCH_MARK = "@@cynow-ops@@"


def batch(parts: dict[str, str]) -> str:
    """Several commands in one shell, each in its own subshell (an `exit` or `cd` stays inside),
    each output framed by marker lines carrying its name and exit status (see parse.batch)."""
    lines = []
    for name, command in parts.items():
        # The end marker starts with its own newline, so output without a final newline stays
        # exactly as printed (parse.batch removes that one newline again).
        lines += [
            f"echo {q(BATCH_MARK + ' begin ' + name)}",
            f"(\n{command}\n)",
            f"printf '\\n%s\\n' \"{BATCH_MARK} end {name} $?\"",
        ]
    return "\n".join(lines)


def sequence(parts: dict[str, str]) -> str:
    """Like `batch` (same frames, read by parse.batch), but the script stops at the first part
    that fails, with that part's exit status: for steps whose later commands must not run once
    an earlier one has failed. The parts that did not run are absent from the output."""
    lines = []
    for name, command in parts.items():
        lines += [
            f"echo {q(BATCH_MARK + ' begin ' + name)}",
            f"(\n{command}\n)",
            "rc=$?",
            f"printf '\\n%s\\n' \"{BATCH_MARK} end {name} $rc\"",
            '[ "$rc" -eq 0 ] || exit "$rc"',
        ]
    return "\n".join(lines)


def sudo_probe() -> str:
    """Succeeds when sudo works without a password; prints sudo's own reason when not."""
    return "sudo -n true"


def git(project_dir: str, *args: str) -> str:
    """git in the checkout, readable by any user (safe.directory: reading is harmless)."""
    return join("git", "-c", f"safe.directory={project_dir}", "-C", project_dir, *args)


def systemctl_show(units: list[str], props: list[str]) -> str:
    return join("systemctl", "show", "--no-pager", *(f"--property={p}" for p in props), *units)


def info_script(project_dir: str, python: str, units: list[str]) -> str:
    """One round trip for `fab info`: key=value lines, then `systemctl show` blocks."""
    lines = [
        "printf 'hostname=%s\\n' \"$(hostname)\"",
        'printf \'os=%s\\n\' "$(. /etc/os-release && echo "$PRETTY_NAME")"',
        "printf 'kernel=%s\\n' \"$(uname -r)\"",
        "printf 'systemd=%s\\n' \"$(systemctl --version | head -n1)\"",
        f"printf 'python=%s\\n' \"$({q(python)} --version 2>&1)\"",
        f"printf 'commit=%s\\n' \"$({git(project_dir, 'rev-parse', 'HEAD')} 2>/dev/null)\"",
        f"printf 'branch=%s\\n' \"$({git(project_dir, 'rev-parse', '--abbrev-ref', 'HEAD')}"
        ' 2>/dev/null)"',
        f"printf 'subject=%s\\n' \"$({git(project_dir, 'log', '-1', '--format=%s')} 2>/dev/null)\"",
        "echo '--units--'",
        systemctl_show(units, ["Id", "LoadState", "ActiveState", "SubState", "UnitFileState"]),
    ]
    return "\n".join(lines)


# -- diagnose: what each guide step reads (all read-only) ------------------------------------

UNIT_PROPS = [
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "Result",
    "NRestarts",
    "NeedDaemonReload",
    "ExecMainStatus",
    "ExecMainCode",
    "MainPID",
    "FragmentPath",
    "User",
    "Group",
    "WorkingDirectory",
    "ExecStart",
    "Restart",
    "ActiveEnterTimestamp",
]


def parents(path: str) -> list[str]:
    """Every directory above a path, from the root down: what www-data must traverse."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def units_script(gunicorn_unit: str, socket_unit: str, nginx_unit: str) -> str:
    """Step 1 and 4: unit states and properties, the unit file as systemd has it on disk, and
    systemd's own verification of it."""
    return "\n".join(
        [
            systemctl_show([gunicorn_unit, socket_unit, nginx_unit], UNIT_PROPS),
            "echo '--cat--'",
            f"systemctl cat --no-pager {q(gunicorn_unit)} 2>&1",
            "echo '--verify--'",
            f"systemd-analyze verify {q(gunicorn_unit)} 2>&1 "
            f"| grep -F -- {q(gunicorn_unit)} | head -n 20",
        ]
    )


def journal(unit: str, socket_unit: str, since_minutes: int, lines: int = 400) -> str:
    """Step 2: the gunicorn unit's journal (gunicorn's output and systemd's words about it)."""
    # Not `-n`: combined with --since, journalctl counts lines from the start of the window.
    return (
        join(
            "journalctl",
            "--no-pager",
            "-o",
            "short-iso",
            "-u",
            unit,
            "-u",
            socket_unit,
            "--since",
            f"{since_minutes} min ago",
        )
        + f" | tail -n {int(lines)}"
    )


def log_tail(path: str, clock_format: str, lines: int) -> str:
    """Step 2: the server's clock (to cut the window) and the end of a log file."""
    return f"date {q('+' + clock_format)}; echo '--log--'; tail -n {int(lines)} {q(path)} 2>&1"


def listener_script(socket: str) -> str:
    """Step 5: the socket file, who listens on it, and the guide's port 8000."""
    return "\n".join(
        [
            f"stat -c 'type=%F owner=%U group=%G mode=%a' {q(socket)} 2>&1",
            "echo '--listen--'",
            f"ss -xlpnH | grep -F -- {q(' ' + socket + ' ')}",
            "echo '--port8000--'",
            "ss -tlnpH 'sport = :8000'",
            "echo '--namei--'",
            f"namei -l {q(socket)} 2>&1",
        ]
    )


def nginx_script(site: str, sites_enabled: str = "/etc/nginx/sites-enabled") -> str:
    """Step 4: `nginx -T` (the test and the whole effective config), the site file, and which
    sites are enabled."""
    return "\n".join(
        [
            'nginx -T 2>&1; echo "--nginx-exit=$?"',
            "echo '--site--'",
            f"cat {q(site)} 2>&1",
            "echo '--enabled--'",
            f'for f in {q(sites_enabled)}/*; do [ -e "$f" ] || [ -L "$f" ] || continue; '
            'printf \'%s -> %s\\n\' "$f" "$(readlink -f "$f")"; done',
        ]
    )


def permissions_script(socket: str, static_root: str) -> str:
    """Step 6: what the web server's user can reach; run *as that user* (modes alone can lie:
    ACLs, supplementary groups)."""
    dirs = sorted(set(parents(socket)) | set(parents(static_root + "/x")))
    checks = [
        f"if test -x {q(d)}; then {say('traverse ok', d)}; else {say('traverse denied', d)}; fi"
        for d in dirs
    ]
    checks.append(
        f"if test -w {q(socket)}; then echo 'socket writable'; else echo 'socket not-writable'; fi"
    )
    checks.append(
        f"find {q(static_root)} \\( -type d \\( ! -executable -o ! -readable \\) -o "
        "-type f ! -readable \\) -printf 'unreadable %M %u:%g %p\\n' 2>&1 | head -n 20"
    )
    checks.append(f'echo "static_files=$(find {q(static_root)} -type f 2>/dev/null | wc -l)"')
    return "\n".join(checks)


def http_script(socket: str, urls: list[str], timeout: float) -> str:
    """Step 7: each health URL through the socket directly, and through nginx on the address
    nginx listens on (found with ss, since production binds 0.0.0.0 and the lab 127.0.0.x)."""
    fmt = "%{http_code} %{time_total}"
    lines = [
        "addr=$(ss -tlnpH | awk '/\"nginx\"/ {print $4}' | grep -E ':80$' | head -n1)",
        '[ -n "$addr" ] || addr=$(ss -tlnpH | awk \'/"nginx"/ {print $4; exit}\')',
        'case "$addr" in 0.0.0.0:*|\\*:*|\\[::\\]:*) addr=127.0.0.1:${addr##*:};; esac',
        'echo "nginx_addr=$addr"',
    ]
    for url in urls:
        lines.append(
            f"printf 'socket %s %s\\n' {q(url)} \"$(curl -sS -o /dev/null -w {q(fmt)} "
            f"--max-time {timeout:g} --unix-socket {q(socket)} "
            f"{q('http://localhost' + url)} 2>&1 | tr '\\n' ' ')\""
        )
        lines.append(
            f'if [ -n "$addr" ]; then printf \'nginx %s %s\\n\' {q(url)} "$(curl -sS '
            f"-o /dev/null -w {q(fmt)} --max-time {timeout:g} "
            f"\"http://$addr\"{q(url)} 2>&1 | tr '\\n' ' ')\"; "
            f"else {say('nginx', url, 'none no-listener')}; fi"
        )
    return "\n".join(lines)


def code_script(project_dir: str, remote: str, branch: str, timeout: float = 30) -> str:
    """Step 9: deployed commit against the remote branch. The fetch stores objects only (no ref,
    no FETCH_HEAD, no file in the checkout changes)."""
    g = lambda *a: git(project_dir, *a)  # noqa: E731
    ref = f"refs/heads/{branch}"
    return "\n".join(
        [
            f'echo "head=$({g("rev-parse", "HEAD")} 2>&1)"',
            f'echo "branch=$({g("rev-parse", "--abbrev-ref", "HEAD")} 2>&1)"',
            f"remote_line=$(timeout {timeout:g} {g('ls-remote', remote, ref)} 2>&1)",
            'echo "ls_remote_exit=$?"',
            "remote_sha=$(printf '%s' \"$remote_line\" | awk 'NF==2 {print $1; exit}')",
            'echo "remote_sha=$remote_sha"',
            '[ -n "$remote_sha" ] || '
            'echo "remote_error=$(printf \'%s\' "$remote_line" | tail -n1)"',
            'if [ -n "$remote_sha" ]; then',
            # Fetch only when the remote commit is not here yet: even a no-op fetch touches
            # .git/objects.
            f'  {g("cat-file", "-e")} "$remote_sha^{{commit}}" 2>/dev/null || '
            f"timeout {timeout:g} "
            + g("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", remote, ref)
            + " >/dev/null 2>&1",
            f'  echo "behind=$({g("rev-list", "--count")} "HEAD..$remote_sha" 2>/dev/null)"',
            f'  echo "ahead=$({g("rev-list", "--count")} "$remote_sha..HEAD" 2>/dev/null)"',
            "  echo '--new-commits--'",
            f'  {g("log", "--format=%h %s", "-n", "10")} "HEAD..$remote_sha" 2>/dev/null',
            "fi",
            "echo '--status--'",
            # --no-optional-locks: a plain `git status` rewrites .git/index to refresh it.
            f"{g('--no-optional-locks', 'status', '--porcelain=v1')} 2>&1 | head -n 50",
        ]
    )


def required_files_script(project_dir: str, files: list[str]) -> str:
    return (
        "\n".join(
            f"if test -f {q(project_dir + '/' + f)}; then {say('present', f)}; "
            f"else {say('missing', f)}; fi"
            for f in files
        )
        or "true"
    )


# The Django probe: one interpreter does the guide's step 8 (import the WSGI app as gunicorn
# would, `check`, the migration plan, the database file) and prints one JSON line.
DJANGO_PROBE = r"""
import importlib, json, os, shlex, subprocess, sys, traceback
sys.path.insert(0, os.getcwd())
out = {"python": sys.version.split()[0], "executable": sys.executable, "env_unreadable": []}
# The unit's Environment= and EnvironmentFile=, as gunicorn gets them from systemd: without
# them a secret passed that way would look like a settings error.
try:
    show = subprocess.run(["systemctl", "show", "-p", "Environment", "-p", "EnvironmentFiles",
                           UNIT], capture_output=True, text=True, timeout=10).stdout
except Exception:
    show = ""
for line in show.splitlines():
    key, _, value = line.partition("=")
    if key == "Environment":
        for pair in shlex.split(value):
            k, _, v = pair.partition("=")
            os.environ[k] = v
    elif key == "EnvironmentFiles" and value:
        path = value.split(" (")[0]
        try:
            for raw in open(path).read().splitlines():
                raw = raw.strip()
                if raw and not raw.startswith("#") and "=" in raw:
                    k, _, v = raw.partition("=")
                    os.environ[k.strip()] = v.strip().strip("\"'")
        except OSError:
            out["env_unreadable"].append(path)
def err(e):
    name = getattr(e, "name", None)
    top = (name or "").split(".")[0]
    return {"ok": False, "type": type(e).__name__,
            "message": str(e).splitlines()[0] if str(e) else "", "name": name,
            "in_project": bool(top) and (os.path.isdir(top) or os.path.isfile(top + ".py")),
            "traceback": traceback.format_exc().splitlines()[-15:]}
mod, _, attr = WSGI.partition(":")
try:
    getattr(importlib.import_module(mod), attr)
    out["wsgi"] = {"ok": True}
except BaseException as e:
    out["wsgi"] = err(e)
try:
    import django
    from django.conf import settings
    if not settings.configured:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    django.setup()
    out["django"] = django.get_version()
    db = settings.DATABASES["default"]
    name = str(db.get("NAME", ""))
    out["database"] = {"engine": db.get("ENGINE", ""), "name": name}
    if "sqlite" in db.get("ENGINE", ""):
        d = os.path.dirname(name) or "."
        out["database"].update(exists=os.path.exists(name), writable=os.access(name, os.W_OK),
                               dir=d, dir_writable=os.access(d, os.W_OK))
        import grp, pwd
        for key, path in (("file", name), ("dir", d)):
            try:
                st = os.stat(path)
                out["database"][key + "_stat"] = "%s:%s %o" % (
                    pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                    st.st_mode & 0o7777)
            except (OSError, KeyError):
                pass
    out["static_root"] = str(getattr(settings, "STATIC_ROOT", "") or "")
    # What `manage.py check` runs, without loading the management machinery.
    try:
        from django.core import checks
        found = checks.run_checks()
        bad = [str(m) for m in found if m.is_serious()]
        out["check"] = ({"ok": True, "output": ["System check identified %d issue(s), none "
                                                "serious." % len(found)]} if not bad else
                        {"ok": False, "type": "SystemCheckError", "message": bad[0],
                         "traceback": bad[:6]})
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
"""


def django_probe(project_dir: str, python: str, wsgi: str, unit: str, timeout: float = 60) -> str:
    settings_module = wsgi.split(".")[0] + ".settings"
    script = f"WSGI = {wsgi!r}\nSETTINGS = {settings_module!r}\nUNIT = {unit!r}\n" + DJANGO_PROBE
    return (
        # -B: importing the app must not write __pycache__ into the checkout (read-only).
        f"cd {q(project_dir)} && timeout {timeout:g} {q(python)} -B -c {q(script)} 2>&1 "
        "| tail -n 60"
    )


def manual_run(project_dir: str, venv: str, wsgi: str, url: str, seconds: float = 15) -> str:
    """Step 7 when gunicorn is down: start it by hand on a temporary socket for a few seconds,
    ask it for a page, stop it (by its PID) and remove the socket. Tells a broken app from a
    broken service setup."""
    return "\n".join(
        [
            f"cd {q(project_dir)} || exit 90",
            "tmp=$(mktemp -d /tmp/cynow-diagnose.XXXXXX)",
            f"PYTHONDONTWRITEBYTECODE=1 timeout {seconds:g} {q(venv + '/bin/gunicorn')} "
            "--workers 1 --graceful-timeout 1 "
            f'--bind "unix:$tmp/g.sock" {q(wsgi)} >"$tmp/log" 2>&1 &',
            "pid=$!",
            'i=0; while [ $i -lt 100 ] && [ ! -S "$tmp/g.sock" ] && kill -0 $pid 2>/dev/null; do '
            "sleep 0.05; i=$((i+1)); done",
            'if [ -S "$tmp/g.sock" ]; then',
            f"  echo \"manual_http=$(curl -sS -o /dev/null -w '%{{http_code}}' --max-time 10 "
            f'--unix-socket "$tmp/g.sock" {q("http://localhost" + url)} 2>&1)"',
            "  kill -TERM $pid 2>/dev/null",
            "else echo 'manual_http=none'; fi",
            'wait $pid; echo "manual_exit=$?"',
            "echo '--log--'; tail -n 40 \"$tmp/log\"",
            'rm -rf "$tmp"',
        ]
    )


def path_facts(paths: list[str], users: list[str], groups: list[str]) -> str:
    """Existence of the unit's binaries and directories, and of its user and group."""
    lines = [
        f"if test -d {q(p)}; then {say('dir', p)}; elif test -x {q(p)}; then {say('exec', p)}; "
        f"elif test -e {q(p)}; then {say('file', p)}; else {say('missing', p)}; fi"
        for p in paths
    ]
    lines += [
        f"if id -u {q(u)} >/dev/null 2>&1; then {say('user', u)}; else {say('nouser', u)}; fi"
        for u in users
    ]
    lines += [
        f"if getent group {q(g)} >/dev/null; then {say('group', g)}; else {say('nogroup', g)}; fi"
        for g in groups
    ]
    return "\n".join(lines) or "true"


# -- the guide's last-resort commands -----------------------------------------------------------


def unit_pids(unit: str) -> str:
    """PIDs in a unit's own control group (cgroup v1 named hierarchy, v2, or hybrid), one a
    line: what the unit really runs, unlike `pgrep gunicorn`, which matches anyone's process."""
    return (
        f"cg=$(systemctl show -p ControlGroup --value {q(unit)}); "
        # A stopped unit has no ControlGroup property, but leftovers still sit in its group.
        f'[ -n "$cg" ] || cg="/$(systemctl show -p Slice --value {q(unit)})/"{q(unit)}; '
        'for f in "/sys/fs/cgroup/systemd$cg/cgroup.procs" '
        '"/sys/fs/cgroup/unified$cg/cgroup.procs" "/sys/fs/cgroup$cg/cgroup.procs"; '
        'do [ -r "$f" ] && { cat "$f"; exit 0; }; done'
    )


def processes(unit: str) -> str:
    """`ps` of a unit's processes (the guide's `ps aux | grep gunicorn`, without strangers)."""
    return (
        f"pids=$( ( {unit_pids(unit)} ) | paste -sd, -); "
        '[ -z "$pids" ] || ps -o pid=,ppid=,user=,rss=,etime=,args= -p "$pids"'
    )


def status_script(units: list[str], gunicorn_unit: str, socket: str, project_dir: str) -> str:
    return batch(
        {
            "units": systemctl_show(
                units,
                [
                    "Id",
                    "LoadState",
                    "ActiveState",
                    "SubState",
                    "UnitFileState",
                    "MainPID",
                    "NRestarts",
                    "Result",
                ],
            ),
            "processes": processes(gunicorn_unit),
            "listener": listener_script(socket),
            "commit": "\n".join(
                [
                    f'echo "commit=$({git(project_dir, "rev-parse", "HEAD")} 2>/dev/null)"',
                    f'echo "branch=$({git(project_dir, "rev-parse", "--abbrev-ref", "HEAD")} '
                    '2>/dev/null)"',
                    f'echo "subject=$({git(project_dir, "log", "-1", "--format=%s")} 2>/dev/null)"',
                ]
            ),
        }
    )


def systemctl(verb: str, unit: str) -> str:
    if verb not in ("start", "stop", "restart", "reset-failed", "daemon-reload", "enable"):
        raise ValueError(f"not a systemctl verb this tool uses: {verb}")
    return join("systemctl", verb) if verb == "daemon-reload" else join("systemctl", verb, unit)


def hup_main(unit: str) -> str:
    """Graceful reload of gunicorn: HUP to the master only (new workers start, old ones drain,
    the socket stays). The guide's unit has no ExecReload, so `systemctl reload` would fail."""
    return join("systemctl", "kill", "--kill-whom=main", "--signal=HUP", unit)


def kill_pids(pids: list[int], signal: str = "KILL") -> str:
    """Signal exactly these processes, by PID (never by name)."""
    if signal not in ("KILL", "TERM", "HUP"):
        raise ValueError(f"unexpected signal {signal}")
    clean = [int(p) for p in pids]
    if not clean or any(p <= 1 for p in clean):
        raise ValueError(f"refusing to signal PIDs {pids}")
    return join("kill", f"-{signal}", *clean)


def remove_stale_socket(socket: str) -> str:
    """Remove the socket file only when no process holds it (a live gunicorn's is kept)."""
    return (
        f"if [ -S {q(socket)} ] && ! ss -xlpnH | grep -F -- {q(' ' + socket + ' ')} "
        f"| grep -q 'users:(('; then rm -f -- {q(socket)} && echo removed; fi"
    )


LOG_SOURCES = ("gunicorn", "nginx", "django")


def since_check(since: str) -> str:
    """The cut-off in both log clocks, or date's own complaint (the user's --since, quoted)."""
    return f"date -d {q(since)} '+nginx=%Y/%m/%d %H:%M:%S%ndjango=%Y-%m-%d %H:%M:%S%nepoch=%s'"


def logs_script(unit: str, nginx_log: str, django_log: str, lines: int, since: str | None) -> str:
    """The three logs of the guide's step 2. With --since, the files are read further back and
    cut locally by their timestamps; the journal is cut by journalctl itself."""
    if since:
        journal = (
            join("journalctl", "--no-pager", "-o", "short-iso", "-u", unit, "--since", since)
            + f" | tail -n {int(lines)}"
        )
        span = max(int(lines) * 20, 2000)
    else:
        journal = join(
            "journalctl", "--no-pager", "-o", "short-iso", "-u", unit, "-n", str(int(lines))
        )
        span = int(lines)
    return batch(
        {
            "gunicorn": journal,
            "nginx": f"tail -n {span} {q(nginx_log)}",
            "django": f"tail -n {span} {q(django_log)}",
        }
    )


def follow_script(unit: str, nginx_log: str, django_log: str) -> str:
    """Every new line of the three logs, each prefixed with its source, until the channel
    closes (run on a pty: closing it hangs up all three readers)."""
    return (
        " & ".join(
            [
                join("journalctl", "--no-pager", "-o", "short-iso", "-f", "-n", "0", "-u", unit)
                + " | sed -u 's/^/gunicorn| /'",
                f"tail -F -n 0 {q(nginx_log)} 2>/dev/null | sed -u 's/^/nginx| /'",
                f"tail -F -n 0 {q(django_log)} 2>/dev/null | sed -u 's/^/django| /'",
            ]
        )
        + " & wait"
    )


# -- deploy ------------------------------------------------------------------------------------


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


# -- deploy: one remote script per step (each command a part framed as in `batch`) -----------


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


def journal_cursor(unit: str) -> str:
    """The journal's current position (`-- cursor: …`), to read only what is logged after it."""
    return join("journalctl", "-u", unit, "-n", "0", "--show-cursor", "--no-pager")


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
