from __future__ import annotations

import subprocess

import pytest

from tasks import systemd
from tasks.steps.context import StepFailed
from tasks.steps.reload import reload


def test_fake_control_group_is_what_unit_pids_reads(fakes):
    out = subprocess.run(["sh", "-c", systemd.unit_pids("gunicorn.service")], capture_output=True)
    assert out.stdout.split() == [b"30", b"41", b"42"]


def test_reload_hups_the_running_master_in_one_round_trip(server, fakes):
    ctx, remote, dev, app = server
    assert reload(ctx).startswith("HUP to the master (pid 30)")
    assert ctx.reload_workers == [41, 42] and ctx.reload_master == 30
    assert ctx.journal_cursor == "s=abc;i=1'2"
    assert len(remote.sent) == 1 and remote.sent[0][1] is True
    acts = [c for c in fakes.calls() if " show" not in c and "cursor" not in c]
    assert acts == ["systemctl kill --kill-whom=main --signal=HUP gunicorn.service"]


@pytest.mark.parametrize(
    "env, full, first",
    [
        ({"FAKE_NEED": "yes"}, False, ["systemctl daemon-reload"]),
        ({"FAKE_ACTIVE": "failed"}, False, []),
        ({}, True, []),
    ],
)
def test_reload_restarts_when_a_hup_cannot_do(server, fakes, monkeypatch, env, full, first):
    ctx, remote, dev, app = server
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ctx.full_restart = full
    assert reload(ctx) == "full restart"
    assert ctx.reload_workers == [] and ctx.reload_master == 0 and ctx.journal_cursor
    acts = [c for c in fakes.calls() if " show" not in c and "cursor" not in c]
    assert acts == first + [
        "systemctl reset-failed gunicorn.service",
        "systemctl restart gunicorn.service",
    ]
    assert len(remote.sent) == 1


def test_reload_fails_when_the_signal_does(server, fakes, monkeypatch):
    ctx, remote, dev, app = server
    monkeypatch.setenv("FAKE_HUP_EXIT", "1")
    with pytest.raises(StepFailed, match=r"reloading gunicorn failed \(exit 1\)"):
        reload(ctx)
