"""The deploy lock's scripts, run with a real shell on this machine: one owner, a release only by
it, liveness from the step's process and the heartbeat, a takeover only of a stale lock, and a
supervised step that ends when its client does."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from tasks import lock


def sh(script: str, stdin=None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", "-c", script], stdin=stdin, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def state(tmp_path):
    return str(tmp_path / "state dir")


OWNER = {"by": "alice@laptop", "command": "deploy", "since": "2026-12-02T10:00:00+00:00"}


def age(state: str, seconds: int) -> None:
    """Make the lock's heartbeat `seconds` old."""
    t = time.time() - seconds
    os.utime(f"{lock.path(state)}/heartbeat", (t, t))


def test_one_owner_and_the_holder_said(state):
    assert sh(lock.take(state, "t1", OWNER)).returncode == 0
    second = sh(lock.take(state, "t2", {**OWNER, "by": "bob@desk"}))
    assert second.returncode == 3
    st = lock.read_status(second.stdout)
    assert st.held and st.owner.startswith("alice@laptop deploy since")
    assert st.meta == OWNER and st.live  # just taken: the heartbeat is fresh
    assert (os.stat(lock.path(state)).st_mode & 0o777) == 0o700
    assert open(f"{lock.path(state)}/token").read().strip() == "t1"


def test_only_the_owner_releases_or_writes(state):
    sh(lock.take(state, "mine", OWNER))
    assert sh(lock.write(state, "theirs", "state", "{}")).returncode == lock.LOST_CLIENT
    sh(lock.release(state, "theirs"))
    assert os.path.isdir(lock.path(state))
    assert sh(lock.write(state, "mine", "state", '{"from": "abc"}')).returncode == 0
    st = lock.read_status(sh(lock.status(state)).stdout)
    assert st.state == {"from": "abc"}
    sh(lock.release(state, "mine"))
    assert not os.path.exists(lock.path(state))
    assert not lock.read_status(sh(lock.status(state)).stdout).held


def test_a_stale_lock_is_taken_over_and_a_live_one_is_not(state):
    sh(lock.take(state, "old", OWNER))
    assert sh(lock.take_over(state, "new", {**OWNER, "command": "rollback"})).returncode == 3
    age(state, lock.GRACE_SECONDS + 5)
    st = lock.read_status(sh(lock.status(state)).stdout)
    assert st.held and not st.live and st.age >= lock.GRACE_SECONDS
    assert sh(lock.take_over(state, "new", {**OWNER, "command": "rollback"})).returncode == 0
    assert open(f"{lock.path(state)}/token").read().strip() == "new"
    assert "rollback" in open(f"{lock.path(state)}/owner").read()


def test_a_running_step_keeps_the_lock_live_whatever_the_heartbeat(state):
    sh(lock.take(state, "t", OWNER))
    step = subprocess.Popen(["setsid", "sleep", "30"])
    try:
        with open(f"{lock.path(state)}/pid", "w") as f:
            f.write(f"{step.pid}\n")
        age(state, 3600)
        st = lock.read_status(sh(lock.status(state)).stdout)
        assert st.running_pid == step.pid and st.live
        assert sh(lock.take_over(state, "x", OWNER)).returncode == 3
        assert sh(lock.clear_stale(state)).returncode == 3
    finally:
        step.kill()
        step.wait()
    assert sh(lock.clear_stale(state)).stdout.strip() == "cleared"
    assert sh(lock.clear_stale(state)).stdout.strip() == "free"


def test_a_torn_state_is_unknown_not_empty(state):
    sh(lock.take(state, "t", OWNER))
    with open(f"{lock.path(state)}/state", "w") as f:
        f.write('{"from": "ab')
    st = lock.read_status(sh(lock.status(state)).stdout)
    assert st.state is None and st.state_error


def test_supervised_runs_the_command_and_records_its_group(state):
    sh(lock.take(state, "t", OWNER))
    r, w = os.pipe()
    try:
        out = sh(lock.supervised(state, "t", "echo out; echo err >&2; exit 7"), stdin=r)
    finally:
        os.close(r)
        os.close(w)
    assert out.returncode == 7 and out.stdout == "out\n" and "err" in out.stderr
    assert open(f"{lock.path(state)}/pid").read().strip().isdigit()


def test_supervised_refuses_a_run_that_lost_the_lock(state, tmp_path):
    sh(lock.take(state, "t", OWNER))
    marker = tmp_path / "ran"
    out = sh(lock.supervised(state, "other", f"touch '{marker}'"), stdin=subprocess.DEVNULL)
    assert out.returncode == lock.LOST_CLIENT and not marker.exists()


def test_a_step_ends_when_its_client_goes(state, tmp_path):
    """The channel's input ends (the client timed out, was killed or lost the link): the whole
    process group of the step is stopped, not left to race the undo."""
    sh(lock.take(state, "t", OWNER))
    r, w = os.pipe()
    child = tmp_path / "child.pid"
    proc = subprocess.Popen(
        ["sh", "-c", lock.supervised(state, "t", f"sleep 60 & echo $! > '{child}'; wait")],
        stdin=r,
    )
    os.close(r)
    deadline = time.monotonic() + 10
    while not child.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(child.read_text())
    os.close(w)  # the client is gone
    proc.wait(timeout=20)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def alive(pid: int) -> bool:
    """Running, not a zombie (this machine's init may leave orphans unreaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_step_stops_the_group_and_waits(state):
    sh(lock.take(state, "t", OWNER))
    step = subprocess.Popen(["setsid", "sh", "-c", "trap '' TERM; sleep 60 & wait"])
    # Reaped at once, as the supervisor reaps its step on the server (a zombie counts as alive).
    reaper = threading.Thread(target=step.wait)
    reaper.start()
    with open(f"{lock.path(state)}/pid", "w") as f:
        f.write(f"{step.pid}\n")
    out = sh(lock.stop_step(state, seconds=0.5))
    reaper.join(timeout=5)
    assert out.stdout.strip() == f"stopped {step.pid}"
    assert sh(lock.stop_step(state)).stdout.strip() == "idle"


def test_owner_json_is_json(state):
    sh(lock.take(state, "t", {**OWNER, "by": "o'neil $(id)@laptop"}))
    meta = json.loads(open(f"{lock.path(state)}/owner.json").read())
    assert meta["by"] == "o'neil $(id)@laptop"


def test_lock_is_atomic_and_tells_who_holds_it(tmp_path):
    state = str(tmp_path / "state dir")
    owner = {"by": "alice@laptop", "command": "deploy", "since": "now; $(rm -rf /)"}
    first = subprocess.run(["sh", "-c", lock.take(state, "t1", owner)], capture_output=True)
    second = subprocess.run(
        ["sh", "-c", lock.take(state, "t2", owner)], capture_output=True, text=True
    )
    assert first.returncode == 0
    assert second.returncode == 3
    assert lock.read_status(second.stdout).owner == "alice@laptop deploy since now; $(rm -rf /)"
    subprocess.run(["sh", "-c", lock.release(state, "t1")], check=True)
    assert not (tmp_path / "state dir" / "deploy.lock").exists()
