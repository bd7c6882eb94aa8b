"""The commands cynow-ops runs on the server that a Debian set up by hand may lack, each with
the package that brings it. Read before every task, in discovery's first round trip (so it
costs none of its own): a check never reads an absent tool's empty output as an answer (no
`ss`: "nobody listens", and the stale-socket repair would delete the live socket), and a task
that changes the server refuses before its first change, naming the package to install.

    command()               -> `NAME=yes|no` per tool, on sudo's PATH (tools under /usr/sbin)
    parse(stdout)           -> {name: True | False}; a tool not in the output is not known
    require(remote, names)  -> OpsError before any change when one is missing or not known
    guard(name)             -> a shell line that stops a root script when the tool is missing
    listing(kind)           -> ss's listening sockets, or the same read from /proc without ss
"""

from __future__ import annotations

from tasks import programs
from tasks.errors import OpsError
from tasks.shell import join, q

PACKAGES = {
    "curl": "curl",  # step 7 and the health gate: every page asked for
    "ss": "iproute2",  # step 5 and the stale-socket test: who listens
    "namei": "util-linux",  # step 6: each directory on the way to the socket
    "systemd-analyze": "systemd",  # step 3 and upgrade-unit: a unit file checked
}
# sudo's secure_path on Debian: the PATH the root commands will run with.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Tools with a fallback that serves as well: without curl the pages are asked by the venv's
# python as the service (tasks/remote/http_get.py); without ss the listening sockets are read
# from /proc (tasks/remote/ss_proc.py). Their absence is said, never taken for an answer.
FALLBACK = {
    "curl": "the pages asked by the venv's python, as the service",
    "ss": "the listening sockets read from /proc/net/unix and /proc/net/tcp",
}
# What each changing task needs before its first change (the health gate's curl and ss have
# their fallbacks; upgrade-unit's switch counts the socket's holders with ss itself).
HEALTH: tuple[str, ...] = ()
NEEDS = {
    "deploy": HEALTH,
    "rollback": HEALTH,
    "restore": HEALTH,
    "restart": HEALTH,
    "repair": HEALTH,
    "upgrade-unit": ("ss", "systemd-analyze"),
}
LISTED = "# listed from /proc"  # tasks/remote/ss_proc.py's last line


def listing(kind: str) -> str:
    """Every listening socket with its processes, as `ss -tlnpH` (kind tcp) or `ss -xlpnH`
    (unix) prints them; without ss, the same lines read from /proc by the system python as
    root (tasks/remote/ss_proc.py), ending with LISTED. Nothing, and a non-zero status, when
    neither could list: not "nobody listens"."""
    ss = "ss -tlnpH" if kind == "tcp" else "ss -xlpnH"
    proc = join("python3", "-I", "-B", "-c", programs.source("ss_proc"), kind)
    return f"if command -v ss >/dev/null 2>&1; then {ss}; else {proc}; fi"


def listed_by(part) -> str | None:
    """Who made a listing (a shell Part of `listing`): "ss", "/proc", or None when none was
    made (ss missing and the fallback failed)."""
    if part is None or part.code != 0:
        return None
    return "/proc" if LISTED in part.text else "ss"


def command() -> str:
    names = " ".join(PACKAGES)
    return (
        f'for t in {names}; do if PATH={q(PATH)} command -v "$t" >/dev/null 2>&1; '
        'then echo "$t=yes"; else echo "$t=no"; fi; done'
    )


def parse(stdout: str) -> dict[str, bool]:
    out = {}
    for line in stdout.splitlines():
        name, _, said = line.strip().partition("=")
        if name in PACKAGES and said in ("yes", "no"):
            out[name] = said == "yes"
    return out


def install_hint(names) -> str:
    return "sudo apt-get install " + " ".join(sorted({PACKAGES[n] for n in names}))


def missing(tools: dict | None, names) -> list[str]:
    """The tools of `names` the server lacks or did not say it has; [] when tools were never
    read (a Remote not opened: the unit tests' fakes)."""
    if tools is None:
        return []
    return [n for n in names if tools.get(n) is not True]


def lacks(tools: dict | None, name: str) -> bool:
    """The server said it has no `name` (not: it did not say)."""
    return tools is not None and tools.get(name) is False


def require(remote, task: str) -> None:
    """Refuse `task` on this host before any change when a tool it needs is missing."""
    gone = missing(getattr(remote, "tools", None), NEEDS[task])
    if not gone:
        return
    unknown = [n for n in gone if n not in (remote.tools or {})]
    said = "could not tell whether it has" if unknown == gone else "lacks"
    raise OpsError(
        f"{remote.name} {said} {', '.join(gone)}, which `fab {task}` needs: "
        f"install it (`{install_hint(gone)}`) and retry; nothing was changed"
    )


def guard(name: str) -> str:
    """A shell line for a root script: stop (exit 127) when `name` is missing, so that its
    empty output is never taken for an answer."""
    why = f"cynow-ops: {name} is missing ({install_hint([name]) if name in PACKAGES else name})"
    return f"command -v {q(name)} >/dev/null 2>&1 || {{ echo {q(why)} >&2; exit 127; }}"
