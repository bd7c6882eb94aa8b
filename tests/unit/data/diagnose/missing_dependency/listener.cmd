# run as root
_cynow_n=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s %s\n' @@cynow-ops@@ "$_cynow_n"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" stat
(
stat -c 'type=%F owner=%U group=%G mode=%a' /home/cynow/cynow/gunicorn.sock 2>&1
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" stat "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" listen
(
if command -v ss >/dev/null 2>&1; then ss -xlpnH; else python3 -I -B -c '# `ss -tlnpH` and `ss -xlpnH` read from /proc, for a server without ss (iproute2): run as root
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
' unix; fi
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" listen "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" tcp
(
if command -v ss >/dev/null 2>&1; then ss -tlnpH; else python3 -I -B -c '# `ss -tlnpH` and `ss -xlpnH` read from /proc, for a server without ss (iproute2): run as root
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
' tcp; fi
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" tcp "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" namei
(
namei -l /home/cynow/cynow/gunicorn.sock 2>&1
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" namei "$_cynow_rc"
