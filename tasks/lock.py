"""The deploy lock: a root-owned directory on the server that one run owns at a time.

    STATE_DIR/deploy.lock/
        token       the owner's random token: only the owner releases the lock or writes to it
        owner       one human line ("alice@laptop deploy since 2026-...")
        owner.json  who, from where, what, since when
        pid         the server-side process (group) of the step in progress
        heartbeat   touched while a step runs, and after each
        state       what the run recorded to undo it (tasks.steps.context.Ctx.state_json)

A lock is live while its step's process runs or its heartbeat is younger than the grace; only
then is another run refused outright. A stale one (its client gone, nothing running) is taken
over by `fab rollback`, or cleared by `fab unlock --stale`.

Every command of a run that holds the lock runs under `supervised`: in its own process group
recorded in the lock, stopped when the client's channel closes (timeout, Ctrl-C, lost
connection), so no step outlives the client and races the undo that follows.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from tasks import shell
from tasks.shell import as_user, batch, q

GRACE_SECONDS = 15  # a heartbeat older than this, with no step running: nobody is there
LOST_CLIENT = 97  # exit status of a command refused because its run no longer owns the lock


def new_token() -> str:
    return secrets.token_hex(16)


def path(state_dir: str) -> str:
    return f"{state_dir}/deploy.lock"


def take(state_dir: str, token: str, owner: dict) -> str:
    """mkdir is atomic: exactly one run gets the lock. Exit 3, with the lock's status (as
    `status` prints it), when it is held."""
    lock = path(state_dir)
    line = f"{owner.get('by', '?')} {owner.get('command', '')} since {owner.get('since', '')}"
    return (
        f"umask 077; mkdir -p {q(state_dir)} && if mkdir {q(lock)} 2>/dev/null; then "
        f"printf '%s\\n' {q(token)} > {q(lock + '/token')} && "
        f"printf '%s\\n' {q(line)} > {q(lock + '/owner')} && "
        f"printf '%s\\n' {q(json.dumps(owner))} > {q(lock + '/owner.json')} && "
        f"touch {q(lock + '/heartbeat')}; else {status(state_dir)}\nexit 3; fi"
    )


def status(state_dir: str) -> str:
    """The lock as the server has it, framed (see read_status): held or not, its owner, its
    recorded state, whether its step's process runs and how old its heartbeat is."""
    lock = path(state_dir)
    return batch(
        {
            "held": f"[ -d {q(lock)} ] && echo yes || echo no",
            "owner": f"cat {q(lock + '/owner')} 2>/dev/null; true",
            "meta": f"cat {q(lock + '/owner.json')} 2>/dev/null; true",
            "state": f"cat {q(lock + '/state')} 2>/dev/null; true",
            "live": "\n".join(
                [
                    f"pid=$(cat {q(lock + '/pid')} 2>/dev/null)",
                    'case "$pid" in ""|*[!0-9]*) ;; *) '
                    'kill -0 "-$pid" 2>/dev/null && echo "running $pid";; esac',
                    f"hb=$(stat -c %Y {q(lock + '/heartbeat')} 2>/dev/null || "
                    f"stat -c %Y {q(lock)} 2>/dev/null || echo 0)",
                    'echo "age $(( $(date +%s) - hb ))"',
                ]
            ),
        }
    )


@dataclass
class Status:
    held: bool
    owner: str = ""
    meta: dict | None = None
    state: dict | None = None
    running_pid: int = 0
    age: int = 0
    state_error: str = ""
    grace: float = GRACE_SECONDS

    @property
    def live(self) -> bool:
        return self.held and (self.running_pid > 0 or self.age < self.grace)

    def describe(self) -> str:
        who = self.owner or "an unknown owner"
        if self.running_pid:
            return f"{who}; its step runs as pid {self.running_pid}"
        return f"{who}; last heartbeat {self.age} s ago, nothing running"


def read_status(stdout: str, grace: float = GRACE_SECONDS) -> Status:
    parts = {name: text for name, (text, _code) in shell.read_batch(stdout).items()}
    held = parts.get("held", "").strip() == "yes"
    st = Status(held=held, owner=parts.get("owner", "").strip(), grace=grace)
    for name in ("meta", "state"):
        raw = parts.get(name, "").strip()
        if raw:
            try:
                setattr(st, name, json.loads(raw))
            except ValueError:
                # A state half-written (the disk filled): unknown, so never acted on.
                st.state_error = f"{name} is not valid JSON"
    for line in parts.get("live", "").splitlines():
        word, _, value = line.partition(" ")
        if word == "running" and value.isdigit():
            st.running_pid = int(value)
        elif word == "age" and value.lstrip("-").isdigit():
            st.age = max(0, int(value))
    return st


def take_over(state_dir: str, token: str, owner: dict, grace: float = GRACE_SECONDS) -> str:
    """Own a stale lock: the token replaced only if nothing ran meanwhile (still stale, checked
    on the server in the same shell), then the owner rewritten. Exit 3 when it came alive."""
    lock = path(state_dir)
    line = f"{owner.get('by', '?')} {owner.get('command', '')} since {owner.get('since', '')}"
    return "\n".join(
        [
            "umask 077",
            f"[ -d {q(lock)} ] || exit 3",
            f"pid=$(cat {q(lock + '/pid')} 2>/dev/null)",
            'case "$pid" in ""|*[!0-9]*) ;; *) kill -0 "-$pid" 2>/dev/null && exit 3;; esac',
            f"hb=$(stat -c %Y {q(lock + '/heartbeat')} 2>/dev/null || echo 0)",
            f"[ $(( $(date +%s) - hb )) -ge {int(grace)} ] || exit 3",
            f"printf '%s\\n' {q(token)} > {q(lock + '/token.new')} && "
            f"mv -f {q(lock + '/token.new')} {q(lock + '/token')}",
            f"printf '%s\\n' {q(line)} > {q(lock + '/owner')}",
            f"printf '%s\\n' {q(json.dumps(owner))} > {q(lock + '/owner.json')}",
            f"rm -f {q(lock + '/pid')}; touch {q(lock + '/heartbeat')}",
        ]
    )


def owns(state_dir: str, token: str) -> str:
    """A shell test: true when `token` owns the lock."""
    return f'[ "$(cat {q(path(state_dir) + "/token")} 2>/dev/null)" = {q(token)} ]'


def write(state_dir: str, token: str, name: str, text: str) -> str:
    """A file of the lock written by its owner only (atomic: a temp file renamed)."""
    lock = path(state_dir)
    return (
        f"{owns(state_dir, token)} || exit {LOST_CLIENT}; umask 077; "
        f"printf '%s\\n' {q(text)} > {q(f'{lock}/{name}.new')} && "
        f"mv -f {q(f'{lock}/{name}.new')} {q(f'{lock}/{name}')}"
    )


def release(state_dir: str, token: str) -> str:
    """The lock removed by its owner; anyone else's lock is left as it is (exit 0 either way:
    there is nothing more a finished run can do about it). Renamed first, so that no reader
    ever sees a half-removed lock."""
    lock = path(state_dir)
    return (
        f'if {owns(state_dir, token)}; then mv {q(lock)} {q(lock + ".released")}."$$" && '
        f'rm -rf -- {q(lock + ".released")}."$$"; fi; true'
    )


def clear_stale(state_dir: str, grace: float = GRACE_SECONDS) -> str:
    """`fab unlock --stale`: the lock removed only if it is stale on the server right now."""
    lock = path(state_dir)
    return "\n".join(
        [
            f"[ -d {q(lock)} ] || {{ echo free; exit 0; }}",
            f"pid=$(cat {q(lock + '/pid')} 2>/dev/null)",
            'case "$pid" in ""|*[!0-9]*) ;; *) kill -0 "-$pid" 2>/dev/null && exit 3;; esac',
            f"hb=$(stat -c %Y {q(lock + '/heartbeat')} 2>/dev/null || echo 0)",
            f"[ $(( $(date +%s) - hb )) -ge {int(grace)} ] || exit 3",
            f'mv {q(lock)} {q(lock)}.cleared."$$" && rm -rf -- {q(lock)}.cleared."$$"',
            "echo cleared",
        ]
    )


def supervised(state_dir: str, token: str, command: str) -> str:
    """`command` as a step of the run owning the lock, run by root: refused (exit 97) if the run
    no longer owns it; else in a process group of its own whose id goes into the lock, the
    heartbeat kept fresh while it runs, and the whole group stopped (TERM, then KILL after 5 s)
    once the channel's input ends, i.e. the client gave up or vanished. Exit status: the
    command's."""
    lock = path(state_dir)
    script = "\n".join(
        [
            f"{owns(state_dir, token)} || {{ echo 'cynow-ops: this run no longer holds the "
            f"deploy lock' >&2; exit {LOST_CLIENT}; }}",
            # The watcher below reads the channel's input: a background job's stdin would
            # otherwise be /dev/null, whose end comes at once.
            "exec 3<&0",
            f"setsid -w sh -c {q(command)} </dev/null 3<&- &",
            "pid=$!",
            f"printf '%s\\n' \"$pid\" > {q(lock + '/pid')}; touch {q(lock + '/heartbeat')}",
            "(",
            '  while kill -0 "$pid" 2>/dev/null; do',
            f"    touch {q(lock + '/heartbeat')} 2>/dev/null",
            # read returns 1 at end of input (channel closed), >128 when the 2 s are up.
            "    IFS= read -r -t 2 _; rc=$?",
            '    if [ "$rc" -ne 0 ] && [ "$rc" -le 128 ]; then',
            '      kill -TERM "-$pid" 2>/dev/null; sleep 5; kill -KILL "-$pid" 2>/dev/null',
            "      break",
            "    fi",
            "  done",
            ") <&3 >/dev/null 2>&1 &",
            "watcher=$!",
            "exec 3<&-",
            'wait "$pid"; rc=$?',
            # The watcher goes before the wrapper: nothing of it outlives the command, holding
            # the channel's input or acting on a process group that is no longer this step's.
            'kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null',
            f"touch {q(lock + '/heartbeat')}",
            'exit "$rc"',
        ]
    )
    return f"bash -c {q(script)}"


def stop_step(state_dir: str, seconds: float = 10) -> str:
    """The step recorded in the lock stopped and waited for: TERM to its group, KILL after
    `seconds`, then until no process of the group is left. Prints `stopped PID` or `idle`."""
    lock = path(state_dir)
    tenths = max(1, int(seconds * 10))
    return "\n".join(
        [
            f"pid=$(cat {q(lock + '/pid')} 2>/dev/null)",
            'case "$pid" in ""|*[!0-9]*) echo idle; exit 0;; esac',
            'kill -0 "-$pid" 2>/dev/null || { echo idle; exit 0; }',
            'kill -TERM "-$pid" 2>/dev/null',
            f'i=0; while kill -0 "-$pid" 2>/dev/null && [ $i -lt {tenths} ]; do '
            "sleep 0.1; i=$((i+1)); done",
            'kill -KILL "-$pid" 2>/dev/null',
            # Bounded: a zombie whose parent never reaps it would otherwise hold this forever.
            'i=0; while kill -0 "-$pid" 2>/dev/null && [ $i -lt 300 ]; do '
            "sleep 0.1; i=$((i+1)); done",
            'echo "stopped $pid"',
        ]
    )


class LockedRemote:
    """A Remote whose every command runs as a supervised step of the run owning the lock: as
    root, the app user's commands through sudo -u inside. The rest of Remote passes through."""

    def __init__(self, remote, state_dir: str, token: str):
        self.inner, self.state_dir, self.token = remote, state_dir, token
        self.name, self.settings = remote.name, remote.settings

    def run(self, command: str, *, root: bool = False, user: str | None = None, timeout=None):
        inner = as_user(user, command) if user else command
        return self.inner.run(
            supervised(self.state_dir, self.token, inner), root=True, timeout=timeout
        )

    def __getattr__(self, name):
        return getattr(self.inner, name)
