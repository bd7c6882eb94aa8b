"""`./fab` (tasks/program.py): Fabric's program, refusing the bare `fab -H HOST -- COMMAND`,
which runs without cynow-ops (no host key check, no address guard), before it connects."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tasks.program import BARE_REFUSED

REPO = Path(__file__).resolve().parents[2]
FABRIC_FAB = str(Path(sys.executable).parent / "fab")


def _listener() -> socket.socket:
    """A port on loopback that counts as "connected to" once anything reaches it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    s.settimeout(0.5)
    return s


def _reached(s: socket.socket) -> bool:
    try:
        s.accept()[0].close()
        return True
    except TimeoutError:
        return False


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_the_bare_remainder_is_refused_before_connecting():
    s = _listener()
    port = s.getsockname()[1]
    r = _run(str(REPO / "fab"), "-H", f"127.0.0.1:{port}", "--", "id")
    assert r.returncode == 3, r
    assert r.stderr.strip() == BARE_REFUSED and r.stdout == ""
    assert not _reached(s)
    # What it guards against: Fabric's own program connects, with no cynow-ops code at all.
    r = _run(FABRIC_FAB, "-H", f"127.0.0.1:{port}", "--connect-timeout", "2", "--", "id")
    assert _reached(s) and r.returncode != 0


def test_tasks_and_fabrics_own_program_still_work():
    for fab in (str(REPO / "fab"), FABRIC_FAB):
        r = _run(fab, "--list")
        assert r.returncode == 0 and "diagnose" in r.stdout, r
    r = _run(str(REPO / "fab"), "-H", "127.0.0.1:1", "status", "--", "id")
    assert r.returncode == 3 and "`-- COMMAND` is Fabric's ad-hoc run" in r.stderr
