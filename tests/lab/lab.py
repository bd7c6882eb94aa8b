"""The lab: real replicas of the CYNOW server, booted with systemd in containers.

One image is built per machine (debootstrap + provision.sh, a few minutes); each lab host is an
overlayfs over that image booted with `systemd-nspawn -b`, sharing the host's network, with sshd
and nginx on its own loopback address 127.0.0.(10+N). Resetting a host drops its overlay: the
next boot is pristine, in seconds.

    python3 tests/lab/lab.py build          # image (cached; rebuilt when its inputs change)
    python3 tests/lab/lab.py up 1 2 3       # boot hosts 1..3 (127.0.0.11-13)
    python3 tests/lab/lab.py reset 2        # back to pristine
    python3 tests/lab/lab.py down --all     # power off
    python3 tests/lab/lab.py status

Needs root, Linux, debootstrap and systemd-nspawn (`./dev lab …` installs them on Debian).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("CYNOW_LAB_ROOT", "/var/lib/cynow-lab"))
# Debian releases the lab builds: bookworm (Debian 12, the guide's) is the default image;
# trixie (Debian 13: systemd 257, nginx 1.26, Python 3.13) is built beside it and booted where a
# test asks for it (`up(n, suite="trixie")`). The value is the Python the release ships, for
# the wheels its hosts install from.
SUITES = {"bookworm": "3.11", "trixie": "3.13"}
SUITE = "bookworm"
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "nginx",
    "sudo",
    "git",
    "curl",
    "ca-certificates",
    "python3",
    "python3-venv",
    "iproute2",
    "procps",
    "less",
    "sqlite3",
    "lsof",
    "netcat-openbsd",
    # The PostgreSQL variant (tests/lab/test_postgres.py): installed in every host, started only
    # where a test asks for it.
    "postgresql",
]
MAX_HOSTS = 16
SUPERVISOR_MARK = "cynow-lab-host"
# systemd-nspawn exits with 133 when the container reboots (systemd-nspawn@.service restarts
# it on that status): this loop does the same, so `systemctl reboot` in a lab host is a real
# reboot on the same overlay. SIGTERM is passed on to nspawn, which powers the container off.
SUPERVISOR = r"""
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
while :; do
  "$@" & child=$!
  wait "$child"; rc=$?
  [ "$rc" -eq 133 ] || exit "$rc"
done
"""
BOOT_TIMEOUT = 90.0


class LabError(RuntimeError):
    """The lab cannot be built or booted here; the message says why."""


def key_path() -> Path:
    return ROOT / "keys" / "id_ed25519"


def known_hosts_path() -> Path:
    return ROOT / "known_hosts"


def address(n: int) -> str:
    return f"127.0.0.{10 + n}"


@dataclass(frozen=True)
class Host:
    """One lab host: where it lives on disk and on the network."""

    n: int

    @property
    def address(self) -> str:
        return address(self.n)

    @property
    def name(self) -> str:
        return f"lab{self.n}"

    @property
    def dir(self) -> Path:
        return ROOT / "hosts" / str(self.n)

    @property
    def root(self) -> Path:
        """The host's filesystem as seen from outside (the overlay mount)."""
        return self.dir / "root"

    @property
    def pidfile(self) -> Path:
        return self.dir / "nspawn.pid"

    def suite(self) -> str:
        """The Debian suite whose image the host was last booted on."""
        try:
            return (self.dir / "suite").read_text().strip() or SUITE
        except OSError:
            return SUITE

    def pid(self) -> int | None:
        """The PID of the supervisor we started for this host, if it is still that process."""
        try:
            pid = int(self.pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        ours = SUPERVISOR_MARK.encode() in cmdline or b"systemd-nspawn" in cmdline[0]
        if ours and str(self.root).encode() in cmdline:
            return pid
        return None


# -- preconditions ---------------------------------------------------------------------------


def why_unavailable() -> str | None:
    """None when the lab can be built and booted here, else the reason (for skips and errors)."""
    if sys.platform != "linux":
        return "the lab needs Linux"
    if os.geteuid() != 0:
        return "the lab needs root (debootstrap, overlay mounts, systemd-nspawn)"
    for tool in ("debootstrap", "systemd-nspawn", "ssh-keygen", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (`sudo ./dev lab build` installs it)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs"
    return None


def _require() -> None:
    reason = why_unavailable()
    if reason:
        raise LabError(reason)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


# -- the image -------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (never a hard-coded host)."""
    if os.environ.get("CYNOW_LAB_MIRROR"):
        return os.environ["CYNOW_LAB_MIRROR"]
    candidates: list[str] = []
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in f.read_text().splitlines():
            if line.startswith("URIs:"):
                candidates += line.split()[1:]
    lst = Path("/etc/apt/sources.list")
    if lst.exists():
        for line in lst.read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == "deb":
                candidates += [p for p in parts[1:] if "://" in p][:1]
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    raise LabError("no Debian mirror found in /etc/apt; set CYNOW_LAB_MIRROR=<debian mirror URL>")


def _inputs_digest(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(str(p.relative_to(HERE)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _image_inputs() -> list[Path]:
    app = [p for p in (HERE / "app").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return app + [
        HERE / n for n in ("provision.sh", "gunicorn.service", "nginx-site", "wheelhouse.txt")
    ]


def image_dir(suite: str = SUITE) -> Path:
    return ROOT / ("image" if suite == SUITE else f"image-{_check_suite(suite)}")


def image_is_current(suite: str = SUITE) -> bool:
    stamp = image_dir(suite) / "etc" / "cynow-lab-image"
    digest = _inputs_digest(_image_inputs(), _digest_extra(suite))
    return stamp.exists() and stamp.read_text().strip() == digest


def _ensure_client_key() -> None:
    key = key_path()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cynow-lab", "-f", str(key)])


def _check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise LabError(f"unknown Debian suite {suite!r}: the lab builds {', '.join(SUITES)}")
    return suite


def _digest_extra(suite: str) -> str:
    # bookworm's digest is what it was before there were two suites: its image stays current.
    return " ".join(PACKAGES) + ("" if suite == SUITE else f" suite={suite}")


def _bootstrap(suite: str = SUITE) -> Path:
    """debootstrap once per package list; cached apart from the image so provisioning is cheap."""
    digest = hashlib.sha256(_digest_extra(suite).encode()).hexdigest()[:12]
    target = ROOT / f"bootstrap-{digest}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    log = ROOT / "debootstrap.log"
    print(f"lab: debootstrap {suite} (about a minute; log {log})", flush=True)
    with open(log, "w") as out:
        proc = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(PACKAGES),
                suite,
                str(target),
                debian_mirror(),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise LabError(f"debootstrap failed (exit {proc.returncode}); see {log}")
    (target / ".complete").write_text("ok\n")
    return target


def _wheels(suite: str = SUITE) -> Path:
    """The app's wheels for the Python the suite ships (downloaded here: lab hosts have no
    network)."""
    wheels = ROOT / ("wheels" if suite == SUITE else f"wheels-{suite}")
    wheels.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "--python-version",
            SUITES[suite],
            "-d",
            str(wheels),
            "-r",
            str(HERE / "app" / "requirements.txt"),
            "-r",
            str(HERE / "wheelhouse.txt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError("pip could not download the app's wheels: " + proc.stderr.strip()[-300:])
    return wheels


def build(force: bool = False, suite: str = SUITE) -> None:
    """Build the suite's lab image unless the current one was built from the same inputs."""
    _require()
    _check_suite(suite)
    ROOT.mkdir(parents=True, exist_ok=True)
    if image_is_current(suite) and not force:
        print(f"lab: {suite} image is current", flush=True)
        return
    if any(Host(n).pid() and Host(n).suite() == suite for n in range(1, MAX_HOSTS + 1)):
        raise LabError(
            f"lab hosts are running on the old {suite} image; run `lab.py down --all` first"
        )
    _ensure_client_key()
    base = _bootstrap(suite)
    wheels = _wheels(suite)
    tmp = ROOT / f"image-{suite}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    print("lab: provisioning the image", flush=True)
    _run(["cp", "-a", f"{base}/.", str(tmp)])
    (tmp / ".complete").unlink(missing_ok=True)
    src = tmp / "opt" / "lab-src"
    src.mkdir(parents=True)
    shutil.copytree(HERE / "app", src / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(wheels, src / "wheels")
    for name in ("provision.sh", "gunicorn.service", "nginx-site"):
        shutil.copy(HERE / name, src / name)
    shutil.copy(key_path().with_suffix(".pub"), src / "authorized_keys")
    log = ROOT / "provision.log"
    with open(log, "w") as out:
        proc = subprocess.run(
            [
                "systemd-nspawn",
                "--register=no",
                "--keep-unit",
                "-q",
                "-D",
                str(tmp),
                "/bin/bash",
                "/opt/lab-src/provision.sh",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if proc.returncode != 0:
        raise LabError(f"provisioning failed (exit {proc.returncode}); see {log}")
    (tmp / "etc" / "cynow-lab-image").write_text(
        _inputs_digest(_image_inputs(), _digest_extra(suite)) + "\n"
    )
    old = ROOT / f"image-{suite}.old"
    shutil.rmtree(old, ignore_errors=True)
    if image_dir(suite).exists():
        image_dir(suite).rename(old)
    tmp.rename(image_dir(suite))
    shutil.rmtree(old, ignore_errors=True)
    print(f"lab: {suite} image built", flush=True)


# -- hosts -----------------------------------------------------------------------------------


def _mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target for line in f)


def _host_keys(host: Host) -> Path:
    """Each host keeps its own host key across resets, so known_hosts stays valid."""
    key = host.dir / "ssh_host_ed25519_key"
    if not key.exists():
        host.dir.mkdir(parents=True, exist_ok=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(key)])
    return key


def write_known_hosts() -> None:
    lines = []
    for n in range(1, MAX_HOSTS + 1):
        pub = Host(n).dir / "ssh_host_ed25519_key.pub"
        if pub.exists():
            kind, blob = pub.read_text().split()[:2]
            lines.append(f"{address(n)} {kind} {blob}\n")
    known_hosts_path().write_text("".join(lines))


def fabric_config_path() -> Path:
    return ROOT / "fabric.yaml"


def write_fabric_config() -> None:
    """A runtime config (`fab -f`) naming every lab host as a target (lab = lab1), with this lab
    root's key and known_hosts. The repo's fabric.yaml has `lab` for the default root only."""
    lines = [
        "# Written by tests/lab/lab.py: fab -f THIS_FILE TASK --target labN",
        "cynow:",
        "  targets:",
    ]
    # Every possible host, booted or not: `--target lab` must never fall back to the repo's
    # fabric.yaml, whose lab target names the default lab root.
    # A hardened lab (CYNOW_LAB_HARDENED=1: the app user cannot sudo) is driven by its admin.
    login = "admin" if os.environ.get("CYNOW_LAB_HARDENED") == "1" else "cynow"
    for n in range(1, MAX_HOSTS + 1):
        for name in (["lab"] if n == 1 else []) + [f"lab{n}"]:
            lines += [
                f"    {name}:",
                f"      hosts: [{login}@{address(n)}]",
                f"      key_filename: {key_path()}",
                f"      known_hosts: [{known_hosts_path()}]",
                "      allowed_networks: [127.0.0.0/8]",
                # An interrupted run's lock goes stale in 3 s, not 15: the tests wait less.
                "      lock_grace: 3",
            ]
    fabric_config_path().write_text("\n".join(lines) + "\n")


def _personalise(host: Host) -> None:
    """Write what differs between lab hosts into the host's fresh overlay."""
    key = _host_keys(host)
    etc = host.root / "etc"
    for src, mode in ((key, 0o600), (key.with_suffix(".pub"), 0o644)):
        dst = etc / "ssh" / src.name
        shutil.copy(src, dst)
        os.chmod(dst, mode)
    (etc / "ssh" / "lab-host.conf").write_text(
        f"ListenAddress {host.address}\nHostKey /etc/ssh/ssh_host_ed25519_key\n"
    )
    site = etc / "nginx" / "sites-available" / "cynow"
    site.write_text(site.read_text().replace("LAB_ADDRESS", host.address))
    (etc / "hostname").write_text(host.name + "\n")
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n{host.address} {host.name}\n")


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def _ssh_banner(addr: str) -> bool:
    try:
        with socket.create_connection((addr, 22), timeout=1) as s:
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def wait_ready(host: Host, proc: subprocess.Popen, timeout: float = BOOT_TIMEOUT) -> float:
    """Wait until sshd answers and the site serves /cynow/ with 200; return seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise LabError(f"{host.name} stopped while booting; see {host.dir / 'console.log'}")
        # Ask nginx only once gunicorn's socket exists: a request before that would leave a
        # "(2: No such file or directory)" line in the fresh host's nginx error log.
        sock = host.root / "home/cynow/cynow/gunicorn.sock"
        if (
            sock.is_socket()
            and _ssh_banner(host.address)
            and _http_status(f"http://{host.address}/cynow/") == 200
        ):
            return time.monotonic() - start
        time.sleep(0.2)
    raise LabError(f"{host.name} not ready after {timeout:.0f}s; see {host.dir / 'console.log'}")


def up(n: int, wait: bool = True, suite: str = SUITE) -> Host:
    """Boot lab host n from a pristine overlay of the suite's image (no-op when it is running
    on that image)."""
    _require()
    _check_suite(suite)
    if not 1 <= n <= MAX_HOSTS:
        raise LabError(f"lab host number must be 1..{MAX_HOSTS}, not {n}")
    if not image_is_current(suite):
        raise LabError(
            f"the {suite} lab image is missing or stale; run `python3 tests/lab/lab.py build"
            f" --suite {suite}`"
        )
    host = Host(n)
    if host.pid():
        if host.suite() == suite:
            return host
        down(n)
    _unmount(host)
    for d in ("upper", "work"):
        shutil.rmtree(host.dir / d, ignore_errors=True)
        (host.dir / d).mkdir(parents=True)
    host.root.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={image_dir(suite)},upperdir={host.dir / 'upper'}"
            f",workdir={host.dir / 'work'}",
            str(host.root),
        ]
    )
    (host.dir / "suite").write_text(suite + "\n")
    _personalise(host)
    write_known_hosts()
    write_fabric_config()
    argv = [
        "bash",
        "-c",
        SUPERVISOR,
        SUPERVISOR_MARK,
        "systemd-nspawn",
        "-b",
        "--register=no",
        "--keep-unit",
        "-q",
        "-D",
        str(host.root),
        "-M",
        f"cynow-{host.name}",
        "--console=passive",
    ]
    console = host.dir / "console.log"
    console.write_text("")
    for attempt in range(5):
        with open(console, "a") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        host.pidfile.write_text(f"{proc.pid}\n")
        if not wait:
            break
        try:
            wait_ready(host, proc)
            break
        except LabError:
            # nspawn can refuse a directory its previous instance has only just released
            # ("currently busy"): try again, waiting a little longer each time.
            if proc.poll() is None or attempt == 4:
                tail = " | ".join(console.read_text().strip().splitlines()[-3:])
                raise LabError(f"{host.name} did not boot: {tail}") from None
            time.sleep(1 + attempt)
    return host


def _unmount(host: Host) -> None:
    if _mounted(host.root):
        if subprocess.run(["umount", str(host.root)], check=False).returncode != 0:
            _run(["umount", "-l", str(host.root)])


def down(n: int, timeout: float = 30.0) -> None:
    """Power host n off (SIGTERM to our nspawn asks the container's systemd to shut down)."""
    host = Host(n)
    pid = host.pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        # The supervisor leads its own process group (start_new_session): wait for the whole
        # group, nspawn included, or the next boot finds the directory still locked ("busy").
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.1)
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)  # our group only: the supervisor and its nspawn
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _group_alive(pid):
                time.sleep(0.1)
        _reap(pid)
    for stray in _nspawns_of(host):
        # An nspawn whose supervisor was killed (an interrupted run): ours, found by the host's
        # own root directory on its command line. Left alone it keeps the directory "busy".
        os.kill(stray, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and stray in _nspawns_of(host):
            time.sleep(0.1)
        if stray in _nspawns_of(host):
            os.kill(stray, signal.SIGKILL)
    host.pidfile.unlink(missing_ok=True)
    _unmount(host)


def _nspawns_of(host: Host) -> list[int]:
    """PIDs of systemd-nspawn processes booting this host's root."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"systemd-nspawn") and str(host.root).encode() in argv:
            found.append(int(entry))
    return found


def _group_alive(pgid: int) -> bool:
    """Does any process of this process group still run (zombies aside)?"""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def reset(n: int, suite: str = SUITE) -> Host:
    """Pristine again: power off, drop the overlay, boot (on the suite's image)."""
    down(n)
    return up(n, suite=suite)


def running() -> list[int]:
    return [n for n in range(1, MAX_HOSTS + 1) if Host(n).pid()]


def trust(known_hosts: Path) -> int:
    """Put the lab's host keys into a known_hosts file (replacing older lab entries): what a user
    does with ssh-keyscan after checking fingerprints, done from the key files themselves."""
    write_known_hosts()
    ours = known_hosts_path().read_text().splitlines()
    addrs = {line.split()[0] for line in ours}
    kept = []
    if known_hosts.exists():
        kept = [
            ln
            for ln in known_hosts.read_text().splitlines()
            if ln.split()[:1] != [] and ln.split()[0] not in addrs
        ]
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    known_hosts.write_text("".join(f"{ln}\n" for ln in kept + ours))
    return len(ours)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the image (cached)")
    b.add_argument("--force", action="store_true", help="rebuild even when current")
    b.add_argument(
        "--suite",
        action="append",
        choices=sorted(SUITES),
        help=f"the Debian release to build (repeatable; default {SUITE})",
    )
    for name in ("up", "down", "reset"):
        s = sub.add_parser(name, help=f"{name} lab hosts")
        s.add_argument("hosts", nargs="*", type=int, default=[])
        s.add_argument("--all", action="store_true", help="every running host (down/reset)")
    sub.add_parser("status", help="list running hosts")
    t = sub.add_parser("trust", help="add the lab's host keys to a known_hosts file")
    t.add_argument("--file", type=Path, default=Path("~/.ssh/known_hosts").expanduser())
    args = p.parse_args(argv)
    try:
        if args.cmd == "build":
            for suite in args.suite or [SUITE]:
                build(force=args.force, suite=suite)
        elif args.cmd == "trust":
            print(f"lab: {trust(args.file)} lab host keys in {args.file}")
        elif args.cmd == "status":
            for n in running():
                h = Host(n)
                print(f"{h.name}\t{h.address}\t{h.suite()}\tpid {h.pid()}\t{h.root}")
        else:
            hosts = running() if args.all else (args.hosts or [1])
            for n in hosts:
                t0 = time.monotonic()
                {"up": up, "down": down, "reset": reset}[args.cmd](n)
                print(
                    f"lab: {args.cmd} lab{n} ({address(n)}) in {time.monotonic() - t0:.1f}s",
                    flush=True,
                )
    except (LabError, subprocess.CalledProcessError) as e:
        print(f"lab: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
