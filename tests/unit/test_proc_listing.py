"""Without ss: the listening sockets read from /proc (tasks/remote/ss_proc.py) on this machine's
real /proc, against ss's own answer; and the stale-socket removal that relies on them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from tasks import programs, restart, tools
from tasks.remote import ss_proc
from tasks.shell import Part

PROGRAM = programs.source("ss_proc")


def listening_unix(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(4)
    return s


def without_ss(tmp_path: Path) -> dict:
    """A PATH with python3 and the shell's tools but no ss."""
    bin_dir = tmp_path / "bin-no-ss"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("python3", "grep", "rm", "cat"):
        target = bin_dir / tool
        if not target.exists():
            # The system python, as on the server (not a shim of this machine's PATH).
            target.symlink_to(f"/usr/bin/{tool}" if tool == "python3" else shutil.which(tool))
    return {"PATH": str(bin_dir)}


def test_the_real_proc_net_unix_is_read_as_ss_reads_it(tmp_path):
    live = listening_unix(tmp_path / "live.sock")
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(tmp_path / "bound.sock"))  # bound, never listening: not a listener
    try:
        text = Path("/proc/net/unix").read_text()
        found = {path: (kind, inode) for kind, path, inode in ss_proc.unix_listeners(text)}
        assert found[str(tmp_path / "live.sock")][0] == "u_str"
        assert str(tmp_path / "bound.sock") not in found
        inode = found[str(tmp_path / "live.sock")][1]
        holders = ss_proc.holders()[inode]
        assert (os.getpid(), live.fileno()) in [(p, fd) for _, p, fd in holders]
        # The program's line, against ss's own for the same socket.
        out = subprocess.run(
            ["python3", "-I", "-B", "-c", PROGRAM, "unix"], capture_output=True, text=True
        ).stdout
        mine = [ln for ln in out.splitlines() if f" {tmp_path}/live.sock " in ln]
        ss = subprocess.run(["ss", "-xlpnH"], capture_output=True, text=True).stdout
        theirs = [ln for ln in ss.splitlines() if f" {tmp_path}/live.sock " in ln]
        assert len(mine) == len(theirs) == 1
        assert mine[0].split()[4:6] == theirs[0].split()[4:6]  # path and inode
        assert f"pid={os.getpid()}," in mine[0] and f"pid={os.getpid()}," in theirs[0]
        assert out.splitlines()[-1] == tools.LISTED
    finally:
        live.close()
        bound.close()


def test_the_real_proc_net_tcp_is_read_as_ss_reads_it():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        text = Path("/proc/net/tcp").read_text()
        assert f"127.0.0.1:{port}" in [a for a, _ in ss_proc.tcp_listeners(text)]
        out = subprocess.run(
            ["python3", "-I", "-B", "-c", PROGRAM, "tcp"], capture_output=True, text=True
        ).stdout
        [line] = [ln for ln in out.splitlines() if f" 127.0.0.1:{port} " in ln]
        # ss's columns: the local address is the 4th, as the readers (awk $4) take it.
        assert line.split()[3] == f"127.0.0.1:{port}" and f"pid={os.getpid()}," in line
    finally:
        srv.close()
    assert ss_proc.hex_address("0100007F:0050") == "127.0.0.1:80"
    assert ss_proc.hex_address("00000000000000000000000001000000:01BB") == "[::1]:443"


def test_the_listing_falls_back_to_proc_without_ss_and_says_so(tmp_path):
    live = listening_unix(tmp_path / "g.sock")
    try:
        env = without_ss(tmp_path)
        r = subprocess.run(
            ["/bin/sh", "-c", tools.listing("unix")], capture_output=True, text=True, env=env
        )
        assert tools.listed_by(Part(r.stdout, r.returncode)) == "/proc"
        assert any(
            f" {tmp_path}/g.sock " in ln and "users:((" in ln for ln in r.stdout.splitlines()
        )
        r = subprocess.run(["/bin/sh", "-c", tools.listing("unix")], capture_output=True, text=True)
        assert tools.listed_by(Part(r.stdout, r.returncode)) == "ss"
        # Neither: nothing listed, and said so (not "nobody listens").
        empty = tmp_path / "empty"
        empty.mkdir()
        r = subprocess.run(
            ["/bin/sh", "-c", tools.listing("unix")],
            capture_output=True,
            text=True,
            env={"PATH": str(empty)},
        )
        assert tools.listed_by(Part(r.stdout, r.returncode)) is None
    finally:
        live.close()


def test_without_ss_the_stale_socket_removal_keeps_the_live_one(tmp_path):
    live_path, stale_path = tmp_path / "live.sock", tmp_path / "stale.sock"
    live = listening_unix(live_path)
    listening_unix(stale_path).close()  # its file stays, nobody holds it: stale
    env = without_ss(tmp_path)
    try:
        for path, kept in ((live_path, True), (stale_path, False)):
            script = restart.remove_stale_socket(str(path))
            r = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env)
            assert r.returncode == 0, r.stderr
            assert path.exists() is kept and ("removed" in r.stdout) is not kept
        # No listing at all: nothing is removed.
        listening_unix(stale_path).close()
        r = subprocess.run(
            ["/bin/sh", "-c", restart.remove_stale_socket(str(stale_path))],
            capture_output=True,
            text=True,
            env={"PATH": str(tmp_path / "nothing")},
        )
        assert r.returncode == 127 and stale_path.exists()
        assert "cannot list who holds the socket" in r.stderr
    finally:
        live.close()
