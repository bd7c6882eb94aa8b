import pytest

from tasks import logs, systemd
from tasks.steps.fetch import fetch_script
from tasks.steps.health import health_script, wait_gone
from tasks.steps.required_files import files_in_commit_script


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


def test_since_is_quoted():
    assert logs.since_check("10 minutes ago; reboot").startswith(
        "date -d '10 minutes ago; reboot' "
    )


def test_deploy_scripts_quote_what_they_interpolate():
    s = fetch_script("/srv/my app", "origin", "main", "abc")
    assert "-C '/srv/my app' fetch --quiet --no-tags origin +refs/heads/main:refs/remotes/" in s
    s = files_in_commit_script("/p", "abc", ["a b; $(id)"])
    assert "cat-file -e 'abc:a b; $(id)'" in s and "printf '%s\\n' 'missing a b; $(id)'" in s
    s = health_script("/s", ["/"], 5, "g.service", journal_after="s=1;i='2")
    assert "'--after-cursor=s=1;i='\"'\"'2'" in s
    with pytest.raises(ValueError):
        wait_gone("g.service", ["41; reboot"], 1)
