"""The diagnosis's remote commands (pure builders). Temporary home during the layout move: each
builder moves into the check module in tasks/checks/ that reads its output."""

from __future__ import annotations

from tasks.git import git
from tasks.shell import join, q, say
from tasks.systemd import systemctl_show

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
