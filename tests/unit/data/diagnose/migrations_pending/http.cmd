# run as root
if tcp=$(if command -v ss >/dev/null 2>&1; then ss -tlnpH; else python3 -I -B -c '# `ss -tlnpH` and `ss -xlpnH` read from /proc, for a server without ss (iproute2): run as root
# with the system python, `python3 -I -B -c SOURCE tcp|unix` (tasks/tools.py builds it). It
# prints the listening sockets in ss'"'"'s own line format, each with the processes holding it
# (`users:(("name",pid=N,fd=N))`), so that every reader of ss reads it unchanged; a socket no
# visible process holds has no `users:` (as with ss: the kernel can list a socket its master
# has just left, and on a shared network namespace another machine'"'"'s sockets). Then a last
# line `# listed from /proc` says the listing was made: an empty output is never an answer.
import ipaddress
import os
import sys

DONE = "# listed from /proc"
TCP_LISTEN = "0A"
UNIX_ACCEPTING = "00010000"  # __SO_ACCEPTCON: listen() was called
UNIX_KINDS = {"0001": "u_str", "0005": "u_seq"}


def hex_address(text):
    """/proc/net/tcp'"'"'s `0100007F:0050` -> 127.0.0.1:80; tcp6'"'"'s 32 hex digits -> [::1]:80."""
    addr, port = text.split(":")
    raw = bytes.fromhex(addr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if ip.version == 6:
        if ip.ipv4_mapped:
            return f"[::ffff:{ip.ipv4_mapped}]:{int(port, 16)}"
        return f"[{ip}]:{int(port, 16)}"
    return f"{ip}:{int(port, 16)}"


def tcp_listeners(text):
    """(local address, inode) of each listening socket of /proc/net/tcp or tcp6."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) > 9 and f[3] == TCP_LISTEN:
            out.append((hex_address(f[1]), f[9]))
    return out


def unix_listeners(text):
    """(kind, path, inode) of each listening unix socket with a path in /proc/net/unix."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split(None, 7)
        if len(f) == 8 and f[3] == UNIX_ACCEPTING and f[4] in UNIX_KINDS:
            out.append((UNIX_KINDS[f[4]], f[7], f[6]))
    return out


def holders(proc="/proc"):
    """socket inode -> [(name, pid, fd)] of every process this root sees."""
    found = {}
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            with open(f"{proc}/{pid}/comm") as f:
                name = f.read().strip()
            fds = os.listdir(f"{proc}/{pid}/fd")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        for fd in fds:
            try:
                link = os.readlink(f"{proc}/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                found.setdefault(link[8:-1], []).append((name, int(pid), int(fd)))
    return found


def users(held):
    if not held:
        return ""
    return " users:(" + ",".join(f'"'"'("{n}",pid={p},fd={d})'"'"' for n, p, d in sorted(held)) + ")"


def lines(kind, proc="/proc"):
    """ss'"'"'s lines for `kind` (tcp or unix) read from `proc`."""
    held = holders(proc)
    if kind == "tcp":
        out = []
        for name, wildcard in (("tcp", "0.0.0.0:*"), ("tcp6", "[::]:*")):
            try:
                with open(f"{proc}/net/{name}") as f:
                    text = f.read()
            except FileNotFoundError:
                continue  # no IPv6 on this kernel
            for addr, inode in tcp_listeners(text):
                out.append(f"LISTEN 0 0 {addr} {wildcard}{users(held.get(inode))}")
        return out
    with open(f"{proc}/net/unix") as f:
        text = f.read()
    return [
        f"{k} LISTEN 0 0 {path} {inode} * 0{users(held.get(inode))}"
        for k, path, inode in unix_listeners(text)
    ]


if __name__ == "__main__":
    print("\n".join(lines(sys.argv[1]) + [DONE]))
' tcp; fi); then
  nginx=$(printf '%s\n' "$tcp" | awk '/"nginx"/ {print $4}')
  addr=$(printf '%s\n' "$nginx" | grep -E ':80$' | head -n1)
  [ -n "$addr" ] || addr=$(printf '%s\n' "$nginx" | head -n1)
  case "$addr" in 0.0.0.0:*|\*:*|\[::\]:*) addr=127.0.0.1:${addr##*:};; esac
  echo "nginx_addr=$addr"
else addr=; echo nginx_unlisted; fi
if command -v curl >/dev/null 2>&1; then
sites=''
ask() {
  via=$1 url=$2 base=$3; shift 3; path=$url; hops=0
  while :; do
    r=$(curl -sS -o /dev/null -w ' %{http_code} %{time_total} loc=%{redirect_url}' --max-time 10 "$@" "$base$path" 2>&1 | tr '\n' ' ')
    loc=${r##*loc=}; loc=${loc%% *}; next=
    case "$r" in *" 3"[0-9][0-9]" "[0-9]*" loc="?*) ;; *) break;; esac
    for site in "$base" $sites; do
      case "$loc" in "$site"/*) next=${loc#"$site"};; esac
    done
    [ -n "$next" ] && [ "$hops" -lt 3 ] || break
    path=$next; hops=$((hops+1))
  done
  printf '%s %s %s hops=%s\n' "$via" "$url" "$r" "$hops"
}
ask socket /cynow/ http://localhost --unix-socket /home/cynow/cynow/gunicorn.sock
if [ -n "$addr" ]; then ask nginx /cynow/ "http://$addr"; else printf '%s\n' 'nginx /cynow/ none no-listener'; fi
ask socket /cynow/orders/ http://localhost --unix-socket /home/cynow/cynow/gunicorn.sock
if [ -n "$addr" ]; then ask nginx /cynow/orders/ "http://$addr"; else printf '%s\n' 'nginx /cynow/orders/ none no-listener'; fi
else
printf '%s\n' "$addr" | python3 -I -B -c '# Runs one shell command line exactly as systemd runs the service'"'"'s process, run on the server
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
' gunicorn.service cynow lenient '/home/cynow/cynow/venv/bin/python -I -B -c '"'"'# The health requests without curl: run as the service runs (tasks/service.py: its user, never
# root) with the venv'"'"'"'"'"'"'"'"'s python, `python -I -B -c SOURCE SPEC`; SPEC is JSON from
# tasks/checks/http.py (socket, urls, timeout, host, scheme, sites, hops), and stdin'"'"'"'"'"'"'"'"'s one line
# is nginx'"'"'"'"'"'"'"'"'s address (found as root, possibly empty). The standard library only. Each answer is
# printed as curl'"'"'"'"'"'"'"'"'s `ask` prints it, `VIA URL CODE SECONDS loc=LOCATION hops=N`, so one parser
# reads both: asked as a browser asks, a redirect followed only within the site, HTTPS without
# checking the certificate against a public CA (as curl -k).
import http.client
import json
import socket
import ssl
import sys
import time
from urllib.parse import urljoin, urlsplit


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def connection(target, scheme, timeout):
    """target: a unix socket'"'"'"'"'"'"'"'"'s path, or HOST:PORT."""
    if target.startswith("/"):
        return UnixConnection(target, timeout)
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # as curl -k: the page is judged, not the certificate
        return http.client.HTTPSConnection(target, timeout=timeout, context=context)
    return http.client.HTTPConnection(target, timeout=timeout)


def get_once(target, scheme, path, headers, timeout):
    """(code, seconds, Location) of one GET."""
    t0 = time.monotonic()
    conn = connection(target, scheme, timeout)
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status, time.monotonic() - t0, r.getheader("Location") or ""
    finally:
        conn.close()


def ask(via, url, target, base, scheme, headers, spec):
    """One URL as curl'"'"'"'"'"'"'"'"'s `ask`: the last answer, a redirect within the site followed."""
    path, hops = url, 0
    while True:
        try:
            code, seconds, loc = get_once(target, scheme, path, headers, spec["timeout"])
        except Exception as e:  # the reply a parser reads, not a traceback
            return f"{via} {url} python: {type(e).__name__}: {e} 000 0.000000 loc= hops={hops}"
        loc = urljoin(base + path, loc) if loc and 300 <= code < 400 else ""
        nxt = next(
            (loc[len(site) :] for site in [base] + spec["sites"] if loc.startswith(site + "/")),
            "",
        )
        if not nxt or hops >= spec["hops"]:
            return f"{via} {url} {code:03d} {seconds:.6f} loc={loc} hops={hops}"
        path, hops = nxt, hops + 1


def main(spec, nginx_addr):
    host, scheme = spec.get("host"), spec["scheme"]
    sock = spec["socket"]
    direct = {"Host": host or "localhost"}
    if scheme == "https":
        direct["X-Forwarded-Proto"] = "https"  # as nginx would say it
    base = "http://localhost" if sock.startswith("/") else "http://" + sock
    out = []
    for url in spec["urls"]:
        out.append(ask("socket", url, sock, base, "http", direct, spec))
        if nginx_addr:
            headers = {"Host": host or nginx_addr}
            out.append(
                ask("nginx", url, nginx_addr, f"{scheme}://{nginx_addr}", scheme, headers, spec)
            )
        else:
            out.append(f"nginx {url} none no-listener")
    return out


def address(text):
    """The address root found (ss or /proc): HOST:PORT or [V6]:PORT, else ""."""
    try:
        return text if text and urlsplit("//" + text).port else ""
    except ValueError:
        return ""


if __name__ == "__main__":
    addr = address(sys.stdin.readline().strip())
    print("\n".join(main(json.loads(sys.argv[1]), addr)))
'"'"' '"'"'{"socket": "/home/cynow/cynow/gunicorn.sock", "urls": ["/cynow/", "/cynow/orders/"], "timeout": 10, "host": null, "scheme": "http", "sites": [], "hops": 3}'"'"''
fi
