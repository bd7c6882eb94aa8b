# run as root
python3 -I -B -c '# Runs one shell command line exactly as systemd runs the service'"'"'s process, run on the server
# as root with the system python: `python3 -I -B -c SOURCE UNIT FALLBACK_USER MODE COMMAND`
# (tasks/service.py builds it). Everything the app'"'"'s code does (manage.py, the probes, pip,
# the snapshot program, gunicorn by hand) goes through here, so it sees the database, secret
# and settings the service sees, not the ones a login shell happens to have.
#
# From the unit, read over D-Bus (busctl'"'"'s JSON: `systemctl show` prints a value holding a
# space as "[unprintable]"): User=, Group=, SupplementaryGroups=, WorkingDirectory=, UMask=,
# Environment= and EnvironmentFile=. The environment is built as systemd builds it: the
# manager'"'"'s (PATH, LANG...), then USER, LOGNAME, HOME and SHELL of the user, then Environment=,
# then each EnvironmentFile= in order (files override Environment=, later files earlier ones).
# Root reads the files (systemd does; they are often root'"'"'s own, mode 0600) and hands their
# values to the command in its environment only: never in argv, on stdout or stderr.
#
# Then groups, gid and uid are dropped to the unit'"'"'s (never root: a unit without User= is
# refused, the app'"'"'s code never runs as root here) and the command is executed with `sh -c`.
# MODE `strict`: a unit that is not loaded, an environment file missing or unreadable, refuses
# (exit 125, one line on stderr) rather than run with a guessed environment; `lenient` (the
# diagnosis, which must look at a broken server too) runs as FALLBACK_USER without the unit'"'"'s
# environment and says so on stderr, once, in a line starting `cynow-ops as-service:`.
import grp
import json
import os
import pwd
import subprocess
import sys

REFUSED = 125  # tasks/service.py knows this number too
PREFIX = "cynow-ops as-service: "
PROPS = [
    "User",
    "Group",
    "SupplementaryGroups",
    "WorkingDirectory",
    "UMask",
    "Environment",
    "EnvironmentFiles",
]


class Refusal(Exception):
    pass


def object_path(unit: str) -> str:
    """systemd'"'"'s D-Bus object path of a unit: every byte but [A-Za-z0-9] as _XX."""
    return "/org/freedesktop/systemd1/unit/" + "".join(
        chr(b) if chr(b).isascii() and chr(b).isalnum() else f"_{b:02x}" for b in unit.encode()
    )


def busctl(path: str, iface: str, props: list[str]) -> list:
    out = subprocess.run(
        ["busctl", "--json=short", "get-property", "org.freedesktop.systemd1", path, iface] + props,
        capture_output=True,
        text=True,
        timeout=20,
    )
    if out.returncode != 0:
        raise Refusal("cannot read the unit over D-Bus: " + (out.stderr.strip() or "busctl failed"))
    return [json.loads(line)["data"] for line in out.stdout.splitlines() if line.strip()]


def read_unit(unit: str) -> dict:
    path = object_path(unit)
    # Loading the unit first (as `systemctl show` does): a unit no one started has no object.
    subprocess.run(
        [
            "busctl",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "LoadUnit",
            "s",
            unit,
        ],
        capture_output=True,
        timeout=20,
    )
    (load,) = busctl(path, "org.freedesktop.systemd1.Unit", ["LoadState"])
    if load != "loaded":
        raise Refusal(f"the unit {unit} is {load or '"'"'unknown'"'"'}, not loaded")
    return dict(zip(PROPS, busctl(path, "org.freedesktop.systemd1.Service", PROPS), strict=True))


def parse_env_file(text: str) -> dict:
    """KEY=VALUE lines as systemd reads an EnvironmentFile: comments (# ;) and blank lines
    skipped, single quotes literal, double quotes with backslash escapes, a backslash at the
    end of a line continues it, unquoted trailing blanks dropped; invalid names ignored (systemd
    ignores them too, with a warning)."""
    env, i, n = {}, 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] in "#;":
            while i < n and text[i] != "\n":
                i += 1
            continue
        key_start = i
        while i < n and text[i] not in "=\n":
            i += 1
        if i >= n or text[i] != "=":
            continue  # a line without '"'"'='"'"': ignored
        key = text[key_start:i].strip()
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        value, quoted = [], False
        while i < n and text[i] != "\n":
            c = text[i]
            if c == "'"'"'":
                quoted, end = True, text.find("'"'"'", i + 1)
                end = n if end < 0 else end
                value.append(text[i + 1 : end])
                i = end + 1
            elif c == '"'"'"'"'"':
                quoted, i = True, i + 1
                while i < n and text[i] != '"'"'"'"'"':
                    if text[i] == "\\" and i + 1 < n:
                        if text[i + 1] == "\n":
                            i += 2
                            continue
                        if text[i + 1] in '"'"'"\\`$'"'"':
                            i += 1
                    value.append(text[i])
                    i += 1
                i += 1
            elif c == "\\" and i + 1 < n:
                if text[i + 1] != "\n":
                    value.append(text[i + 1])
                i += 2
            else:
                value.append(c)
                i += 1
        v = "".join(value)
        if not quoted:
            v = v.rstrip(" \t\r")
        if key.startswith("export "):  # not systemd'"'"'s syntax, but a common .env habit
            key = key[len("export ") :].strip()
        if (
            key
            and (key[0].isalpha() or key[0] == "_")
            and all(ch.isalnum() or ch == "_" for ch in key)
        ):
            env[key] = v
    return env


def manager_env() -> dict:
    """The manager'"'"'s environment (PATH, LANG...), which every service starts from."""
    out = subprocess.run(
        ["systemctl", "show-environment"], capture_output=True, text=True, timeout=20
    )
    env = {}
    for line in out.stdout.splitlines():
        k, eq, v = line.partition("=")
        if eq and not v.startswith("$'"'"'"):  # a value systemd had to escape: left out
            env[k] = v
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def service_env(props: dict, user: pwd.struct_passwd, strict: bool) -> tuple[dict, list]:
    env = manager_env()
    env.update(USER=user.pw_name, LOGNAME=user.pw_name, HOME=user.pw_dir, SHELL=user.pw_shell)
    for pair in props.get("Environment") or []:
        k, eq, v = pair.partition("=")
        if eq:
            env[k] = v
    notes = []
    for path, ignore_errors in props.get("EnvironmentFiles") or []:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                env.update(parse_env_file(f.read()))
        except OSError as e:
            if ignore_errors:
                continue
            why = f"the unit'"'"'s EnvironmentFile {path} cannot be read ({e.strerror})"
            if strict:
                raise Refusal(why) from None
            notes.append(why)
    return env, notes


def identity(props: dict):
    name = props.get("User") or ""
    if not name:
        raise Refusal("the unit has no User=: it runs as root, and the app'"'"'s code never does here")
    try:
        user = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise Refusal(f"the unit'"'"'s User={name} does not exist") from None
    if user.pw_uid == 0:
        raise Refusal("the unit runs as root, and the app'"'"'s code never does here")
    group = props.get("Group") or ""
    try:
        gid = (
            (int(group) if group.isdigit() else grp.getgrnam(group).gr_gid)
            if group
            else user.pw_gid
        )
        extra = [
            int(g) if g.isdigit() else grp.getgrnam(g).gr_gid
            for g in props.get("SupplementaryGroups") or []
        ]
    except KeyError as e:
        raise Refusal(f"the unit names a group that does not exist ({e})") from None
    return user, gid, extra


def workdir(props: dict, user) -> str:
    wd = props.get("WorkingDirectory") or ""
    wd = wd.lstrip("-!")  # "-": a missing directory is no error, as for systemd
    return user.pw_dir if wd == "~" else (wd or "/")


def fallback(name: str):
    user = pwd.getpwnam(name)
    if user.pw_uid == 0:
        raise Refusal("the fallback user is root, and the app'"'"'s code never runs as root here")
    return user, user.pw_gid, []


def main(argv: list[str]) -> int:
    try:
        unit, fallback_user, mode, command = argv[1:5]
    except ValueError:
        print(PREFIX + "usage: UNIT FALLBACK_USER strict|lenient COMMAND", file=sys.stderr)
        return REFUSED
    strict = mode == "strict"
    try:
        try:
            props = read_unit(unit)
            user, gid, extra = identity(props)
            env, notes = service_env(props, user, strict)
            cwd, umask = workdir(props, user), props.get("UMask")
        except Refusal as e:
            if strict:
                raise
            user, gid, extra = fallback(fallback_user)
            env = manager_env()
            env.update(USER=user.pw_name, LOGNAME=user.pw_name, HOME=user.pw_dir)
            notes, cwd, umask = (
                [f"{e}: run as {user.pw_name} without the unit'"'"'s environment"],
                "/",
                None,
            )
        for note in notes:
            print(PREFIX + note, file=sys.stderr)
        os.setgroups(sorted(set(os.getgrouplist(user.pw_name, gid)) | set(extra)))
        os.setgid(gid)
        os.setuid(user.pw_uid)
        if umask is not None:
            os.umask(int(umask))
        try:
            os.chdir(cwd)
        except OSError:
            os.chdir("/")
        os.execve("/bin/sh", ["sh", "-c", command], env)
    except Refusal as e:
        print(PREFIX + str(e), file=sys.stderr)
        return REFUSED
    except (OSError, KeyError) as e:
        print(PREFIX + f"cannot become the service'"'"'s user: {e}", file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
' gunicorn.service cynow lenient 'cd /home/cynow/cynow || exit 90
tmp=$(mktemp -d /tmp/cynow-diagnose.XXXXXX)
: >"$tmp/none.py"
PYTHONDONTWRITEBYTECODE=1 timeout 15 /home/cynow/cynow/venv/bin/gunicorn --config "$tmp/none.py" --workers 1 --graceful-timeout 1 --bind "unix:$tmp/g.sock" config.wsgi:app >"$tmp/log" 2>&1 &
pid=$!
i=0; while [ $i -lt 100 ] && [ ! -S "$tmp/g.sock" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; i=$((i+1)); done
if [ -S "$tmp/g.sock" ]; then
  http=$(curl -sS -o /dev/null -w '"'"'%{http_code}'"'"' --max-time 10 --unix-socket "$tmp/g.sock" http://localhost/cynow/ 2>&1)
  kill -TERM $pid 2>/dev/null
else http=none; fi
wait $pid; code=$?
_cynow_n=$(od -An -N8 -tx1 /dev/urandom | tr -d '"'"' \n'"'"')
printf '"'"'%s %s\n'"'"' @@cynow-ops@@ "$_cynow_n"
printf '"'"'%s %s begin %s\n'"'"' @@cynow-ops@@ "$_cynow_n" result
(
printf '"'"'manual_http=%s\nmanual_exit=%s\n'"'"' "$http" "$code"
)
_cynow_rc=$?
printf '"'"'\n%s %s end %s %s\n'"'"' @@cynow-ops@@ "$_cynow_n" result "$_cynow_rc"
printf '"'"'%s %s begin %s\n'"'"' @@cynow-ops@@ "$_cynow_n" log
(
tail -n 40 "$tmp/log"
)
_cynow_rc=$?
printf '"'"'\n%s %s end %s %s\n'"'"' @@cynow-ops@@ "$_cynow_n" log "$_cynow_rc"
rm -rf "$tmp"'
