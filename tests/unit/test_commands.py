import subprocess

import pytest

from tasks import commands

HOSTILE = [
    "with space",
    "semi;colon",
    "$(touch /tmp/pwned)",
    "`id`",
    "quote'single",
    'quote"double',
    "new\nline",
    "-leading-dash",
    "back\\slash",
    "glob*?[x]",
    "",
    "ünïcødé",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_quote_survives_a_real_shell(value, tmp_path):
    # The quoted value reaches the program as exactly one, unchanged argument.
    script = f"printf '%s' {commands.q(value)}"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == value
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", HOSTILE)
def test_nested_quoting_through_sudo_wrapper(value):
    # as_root wraps a command line in sh -c: values quoted inside must survive both levels.
    inner = f"printf '%s' {commands.q(value)}"
    wrapped = commands.as_root(inner)
    assert wrapped.startswith("sudo -n -- sh -c ")
    # Drop the sudo prefix and let the local shell do both levels of parsing.
    out = subprocess.run(
        ["sh", "-c", wrapped.removeprefix("sudo -n -- ")], capture_output=True, text=True
    )
    assert out.stdout == value


def test_exact_strings():
    assert commands.join("ls", "-l", "a b") == "ls -l 'a b'"
    assert commands.as_user("cynow", "id -u") == "sudo -n -u cynow -- sh -c 'id -u'"
    assert commands.git("/home/cynow/cynow", "rev-parse", "HEAD") == (
        "git -c safe.directory=/home/cynow/cynow -C /home/cynow/cynow rev-parse HEAD"
    )
    assert commands.systemctl_show(["gunicorn.service"], ["Id", "ActiveState"]) == (
        "systemctl show --no-pager --property=Id --property=ActiveState gunicorn.service"
    )


def test_info_script_quotes_paths():
    s = commands.info_script("/srv/my app", "/srv/my app/venv/bin/python", ["gunicorn.service"])
    assert "'/srv/my app/venv/bin/python' --version" in s
    assert "-C '/srv/my app' rev-parse HEAD" in s


def test_batch_runs_each_part_apart_and_frames_its_output(tmp_path):
    from tasks import parse

    script = commands.batch(
        {
            "a": "echo one; echo two",
            "b": "cd /; exit 3",  # neither the exit nor the cd leaks into the next part
            "c": "pwd; printf 'no newline'",
        }
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    parts = parse.batch(out.stdout)
    assert parts == {"a": ("one\ntwo\n", 0), "b": ("", 3), "c": (f"{tmp_path}\nno newline", 0)}


def test_kill_pids_refuses_anything_but_plain_pids():
    assert commands.kill_pids([540, 541]) == "kill -KILL 540 541"
    for bad in ([], [1], [0], ["540; rm -rf /"], [-1]):
        with pytest.raises((ValueError, TypeError)):
            commands.kill_pids(bad)
    with pytest.raises(ValueError):
        commands.kill_pids([540], "STOP")


def test_systemctl_verbs_are_a_closed_list():
    assert commands.systemctl("start", "gunicorn.service") == "systemctl start gunicorn.service"
    assert commands.systemctl("daemon-reload", "x") == "systemctl daemon-reload"
    assert commands.hup_main("gunicorn.service") == (
        "systemctl kill --kill-whom=main --signal=HUP gunicorn.service"
    )
    with pytest.raises(ValueError):
        commands.systemctl("mask", "gunicorn.service")


def test_since_is_quoted():
    assert commands.since_check("10 minutes ago; reboot").startswith(
        "date -d '10 minutes ago; reboot' "
    )


def test_sequence_stops_at_the_first_failing_part():
    from tasks import parse

    script = commands.sequence({"a": "echo one", "b": "echo two; exit 4", "c": "echo never"})
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert out.returncode == 4
    assert parse.batch(out.stdout) == {"a": ("one\n", 0), "b": ("two\n", 4)}


def test_deploy_scripts_quote_what_they_interpolate():
    s = commands.fetch_script("/srv/my app", "origin", "main", "abc")
    assert "-C '/srv/my app' fetch --quiet --no-tags origin +refs/heads/main:refs/remotes/" in s
    s = commands.files_in_commit_script("/p", "abc", ["a b; $(id)"])
    assert "cat-file -e 'abc:a b; $(id)'" in s and "printf '%s\\n' 'missing a b; $(id)'" in s
    s = commands.health_script("/s", ["/"], 5, "g.service", journal_after="s=1;i='2")
    assert "'--after-cursor=s=1;i='\"'\"'2'" in s
    with pytest.raises(ValueError):
        commands.wait_gone("g.service", ["41; reboot"], 1)
    assert commands.history_append("/st", "{}") == "printf '%s\\n' '{}' >> /st/history.jsonl"
