"""`fab TASK -- COMMAND` is refused before anything connects: Fabric would run COMMAND with its
own client, which verifies no host key and knows no address guard."""

from tasks.executor import split_hosts
from tests.unit.test_config_files import fab


def test_a_remainder_after_a_task_is_refused_in_one_line():
    for argv in (
        ["-H", "cynow@127.0.0.1:1", "status", "--", "id"],
        ["status", "--target", "lab", "--", "id"],
        ["-H", "cynow@127.0.0.1:1,cynow@127.0.0.2:1", "deploy", "--", "touch", "/tmp/x"],
    ):
        r = fab(*argv)
        assert r.returncode == 3, (argv, r.stdout, r.stderr)
        assert r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert lines == [lines[0]] and "`-- COMMAND` is Fabric's ad-hoc run" in lines[0]


def test_without_a_remainder_the_host_list_reaches_the_task():
    # Port 1 on the loopback refuses at once: the task ran, with the -H host (exit 2: unreachable).
    r = fab("-H", "cynow@127.0.0.1:1", "status")
    assert r.returncode == 2, r.stderr
    assert "127.0.0.1" in r.stdout + r.stderr


def test_split_hosts():
    assert split_hosts(" a, b,,c ") == ["a", "b", "c"]
    assert split_hosts(",") == []
