"""Pure builders of remote shell commands. All quoting of interpolated values happens here.

Nothing in this module touches the network; `tests/unit/test_commands.py` asserts exact strings
and runs the quoting against hostile values in a real shell.
"""

from __future__ import annotations

import shlex


def q(value: object) -> str:
    """Quote one value for a POSIX shell; the only way values enter a command string."""
    return shlex.quote(str(value))


def join(*argv: object) -> str:
    """A command line from separate arguments, each quoted."""
    return " ".join(q(a) for a in argv)


def as_root(command: str) -> str:
    """Run a whole shell command line under non-interactive sudo (fails instead of prompting)."""
    return f"sudo -n -- sh -c {q(command)}"


def as_user(user: str, command: str) -> str:
    """Run a whole shell command line as another user through non-interactive sudo."""
    return f"sudo -n -u {q(user)} -- sh -c {q(command)}"


def sudo_probe() -> str:
    """Succeeds when sudo works without a password; prints sudo's own reason when not."""
    return "sudo -n true"


def git(project_dir: str, *args: str) -> str:
    """git in the checkout, readable by any user (safe.directory: reading is harmless)."""
    return join("git", "-c", f"safe.directory={project_dir}", "-C", project_dir, *args)


def systemctl_show(units: list[str], props: list[str]) -> str:
    return join("systemctl", "show", "--no-pager", *(f"--property={p}" for p in props), *units)


def info_script(project_dir: str, python: str, units: list[str]) -> str:
    """One round trip for `fab info`: key=value lines, then `systemctl show` blocks."""
    lines = [
        "printf 'hostname=%s\\n' \"$(hostname)\"",
        'printf \'os=%s\\n\' "$(. /etc/os-release && echo "$PRETTY_NAME")"',
        "printf 'kernel=%s\\n' \"$(uname -r)\"",
        "printf 'systemd=%s\\n' \"$(systemctl --version | head -n1)\"",
        f"printf 'python=%s\\n' \"$({q(python)} --version 2>&1)\"",
        f"printf 'commit=%s\\n' \"$({git(project_dir, 'rev-parse', 'HEAD')} 2>/dev/null)\"",
        f"printf 'branch=%s\\n' \"$({git(project_dir, 'rev-parse', '--abbrev-ref', 'HEAD')}"
        ' 2>/dev/null)"',
        f"printf 'subject=%s\\n' \"$({git(project_dir, 'log', '-1', '--format=%s')} 2>/dev/null)\"",
        "echo '--units--'",
        systemctl_show(units, ["Id", "LoadState", "ActiveState", "SubState", "UnitFileState"]),
    ]
    return "\n".join(lines)
