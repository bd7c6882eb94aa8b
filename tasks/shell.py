"""The only quoting and framing of remote commands: every value enters a command string through
`q`, and every output of several parts is framed by `batch`/`sequence` and read by `read_batch`.

Both halves of a frame live here. A frame's markers carry a nonce the script draws from the
server's /dev/urandom when it starts: it is in no command line (argv is world-readable in `ps`),
so no log line, file name or commit subject the server prints can forge or cut a frame.
Nothing in this module touches the network; tests/unit/test_shell.py runs it in a real shell.
"""

from __future__ import annotations

import re
import shlex
from typing import NamedTuple

MARK = "@@cynow-ops@@"
# The nonce: 8 random bytes in hex, in a shell variable of the script (never exported).
_NONCE = "_cynow_n=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \\n')"
_HEADER = f"printf '%s %s\\n' {MARK} \"$_cynow_n\""
_HEADER_LINE = re.compile(re.escape(MARK) + r" ([0-9a-f]{16})$")


def q(value: object) -> str:
    """Quote one value for a POSIX shell; the only way values enter a command string."""
    return shlex.quote(str(value))


def join(*argv: object) -> str:
    """A command line from separate arguments, each quoted."""
    return " ".join(q(a) for a in argv)


def say(*words: object) -> str:
    """Print words as one output line, whatever they contain (values never reach a format
    string or an unquoted echo)."""
    return f"printf '%s\\n' {q(' '.join(str(w) for w in words))}"


def as_root(command: str) -> str:
    """Run a whole shell command line under non-interactive sudo (fails instead of prompting)."""
    return f"sudo -n -- sh -c {q(command)}"


def as_user(user: str, command: str) -> str:
    """Run a whole shell command line as another user through non-interactive sudo."""
    return f"sudo -n -u {q(user)} -- sh -c {q(command)}"


def as_owner(path: str, command: str) -> str:
    """Run a whole shell command line as the owner of the checkout `path` (by uid, so an owner
    without a name works too), through sudo only when that is someone else. For commands that
    read files the owner controls and may run what they name (git and its .git/config): as
    the owner they can do nothing the owner could not do already.

    A root-owned `path` is not enough for root: its `.git` and `.git/config` (where git finds
    core.fsmonitor, gpg.program) must be root's too, and writable by no group or other, or
    whoever can write them would choose what root runs. Otherwise nothing runs: one line on
    stderr, exit 1. (`find -P` judges a symlink itself, mode 777: refused.)"""
    git_dir = path.rstrip("/") + "/.git"
    not_roots = (
        f"find {q(path)} {q(git_dir)} {q(git_dir + '/config')} -maxdepth 0 "
        "\\( ! -user 0 -o -perm /022 \\) -print 2>&1"
    )
    refusal = f"{path} is root's but its .git or .git/config is not root's alone: not run as root"
    return (
        f"_cynow_u=$(stat -c %u -- {q(path)}) && "
        f'if [ "$_cynow_u" = 0 ] && [ -n "$({not_roots})" ]; then {say(refusal)} >&2; false; '
        f'elif [ "$_cynow_u" = "$(id -u)" ]; then sh -c {q(command)}; '
        f'else sudo -n -u "#$_cynow_u" -- sh -c {q(command)}; fi'
    )


def as_user_here(user: str, command: str) -> str:
    """Run a whole shell command line as `user`: directly when the caller is that user, else
    through non-interactive sudo (a login that may not sudo gets sudo's refusal, not a run as
    itself)."""
    return (
        f'if [ "$(id -un)" = {q(user)} ]; then sh -c {q(command)}; '
        f"else sudo -n -u {q(user)} -- sh -c {q(command)}; fi"
    )


def in_dir(directory: str, command: str) -> str:
    """A command line run in a directory (and not at all when it cannot be entered)."""
    return f"cd {q(directory)} && {command}"


def _name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"not a part name: {name!r}")
    return name


def _frames(parts: dict[str, str], stop: bool) -> str:
    lines = [_NONCE, _HEADER]
    for name, command in parts.items():
        name = _name(name)
        # The end marker starts with its own newline, so output without a final newline stays
        # exactly as printed (read_batch removes that one newline again).
        lines += [
            f"printf '%s %s begin %s\\n' {MARK} \"$_cynow_n\" {name}",
            f"(\n{command}\n)",
            "_cynow_rc=$?",
            f'printf \'\\n%s %s end %s %s\\n\' {MARK} "$_cynow_n" {name} "$_cynow_rc"',
        ]
        if stop:
            lines.append('[ "$_cynow_rc" -eq 0 ] || exit "$_cynow_rc"')
    return "\n".join(lines)


def batch(parts: dict[str, str]) -> str:
    """Several commands in one shell, each in its own subshell (an `exit` or `cd` stays inside),
    each output framed with its name and exit status (read with read_batch)."""
    return _frames(parts, stop=False)


def sequence(parts: dict[str, str]) -> str:
    """Like `batch`, but the script stops at the first part that fails, with that part's exit
    status: for steps whose later commands must not run once an earlier one has failed. The
    parts that did not run are absent from the output."""
    return _frames(parts, stop=True)


class Part(NamedTuple):
    """One part's output exactly as printed, and its exit status (255: cut off, no status)."""

    text: str
    code: int


class Parts(dict):
    """Parts by name; one that did not run (an earlier part of a sequence failed, the output
    was cut off) reads as empty, with exit status 255."""

    def __missing__(self, name: str) -> Part:
        return Part("", 255)


def read_batch(text: str) -> Parts:
    """The parts of a batch/sequence output (several scripts' in a row, too). Only whole lines
    count as markers, and only with the nonce their script printed first: what a part prints
    is its output, whatever it contains."""
    out = Parts()
    nonce = None
    pos = 0
    while pos < len(text):
        nl = text.find("\n", pos)
        line_end = len(text) if nl < 0 else nl
        line = text[pos:line_end]
        after = line_end + 1
        header = _HEADER_LINE.match(line)
        if header:
            nonce = header.group(1)
        elif nonce and line.startswith(f"{MARK} {nonce} begin "):
            name = line[len(f"{MARK} {nonce} begin ") :]
            end = re.compile(
                "\n" + re.escape(f"{MARK} {nonce} end {name} ") + r"(\d+)(?:\n|$)"
            ).search(text, min(after, len(text)))
            start = min(after, len(text))
            if end is None:  # cut off (timeout, lost connection): what arrived, and no status
                out[name] = Part(text[start:], 255)
                break
            out[name] = Part(text[start : end.start()], int(end.group(1)))
            after = end.end()
        pos = after
    return out
