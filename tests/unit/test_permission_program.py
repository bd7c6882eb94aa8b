"""fix-permissions' commands for tasks/remote/fd_permissions.py (tasks/permission_program.py):
root's isolated system python, and apply payloads under the argument limit."""

from __future__ import annotations

import os
import shlex
from dataclasses import replace

from tasks import permission_program as pg
from tasks.remote import fd_permissions as fd
from tests.unit.test_permission_plan import SC, P, S, entry


def test_root_runs_the_system_python_isolated():
    cmd = shlex.split(pg.read_command(S, SC))
    assert cmd[:4] == ["/usr/bin/python3", "-I", "-B", "-c"] and cmd[5] == "scan"


def test_apply_commands_stay_under_the_argument_limit():
    names = [f"{P}/{os.urandom(40).hex()}" for _ in range(6000)]  # random: no compressing
    before = {p: entry(p, "f", 0o666, uid=0, gid=0) for p in names}
    after = {p: replace(e, mode=0o664) for p, e in before.items()}
    cmds = pg.apply_commands(before, after, S, SC)
    assert len(cmds) > 1 and all(len(c) < 128 * 1024 for c in cmds)
    sent = [c["path"] for cmd in cmds for c in fd.decode(shlex.split(cmd)[6])["changes"]]
    assert sent == list(before)
