"""tasks/systemd.py: the exact command strings, and the closed lists of verbs and PIDs."""

import pytest

from tasks import systemd


def test_exact_strings():
    assert systemd.systemctl_show(["gunicorn.service"], ["Id", "ActiveState"]) == (
        "systemctl show --no-pager --property=Id --property=ActiveState gunicorn.service"
    )


def test_kill_pids_refuses_anything_but_plain_pids():
    assert systemd.kill_pids([540, 541]) == "kill -KILL 540 541"
    for bad in ([], [1], [0], ["540; rm -rf /"], [-1]):
        with pytest.raises((ValueError, TypeError)):
            systemd.kill_pids(bad)
    with pytest.raises(ValueError):
        systemd.kill_pids([540], "STOP")


def test_systemctl_verbs_are_a_closed_list():
    assert systemd.systemctl("start", "gunicorn.service") == "systemctl start gunicorn.service"
    assert systemd.systemctl("daemon-reload", "x") == "systemctl daemon-reload"
    assert systemd.hup_main("gunicorn.service") == (
        "systemctl kill --kill-whom=main --signal=HUP gunicorn.service"
    )
    with pytest.raises(ValueError):
        systemd.systemctl("mask", "gunicorn.service")
