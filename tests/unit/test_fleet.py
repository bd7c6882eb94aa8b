"""Many hosts: batch planning, failure thresholds, the -H executor, the bounded fleet."""

import threading
import time

import pytest
from fabric import Config, Connection

from tasks import rolling
from tasks.errors import ConfigError, ConnectError
from tasks.executor import CLI_HOSTS_KEY, split_hosts
from tasks.fleet import Fleet, HostError, parse_parallel, worst_exit
from tasks.settings import cli_host, resolve, whole_number

H = [f"h{i}" for i in range(1, 11)]


@pytest.mark.parametrize(
    ("spec", "total", "sizes"),
    [
        ("1", 3, [1, 1, 1]),
        ("3", 8, [3, 3, 2]),
        ("25%", 8, [2, 2, 2, 2]),
        ("25%", 3, [1, 1, 1]),  # rounded down, at least one host
        ("30%", 10, [3, 3, 3, 1]),
        ("100%", 5, [5]),
        ("50", 3, [3]),
        ("1,25%,50%", 10, [1, 2, 5, 2]),  # Ansible's list: the last size repeats
        ("2, 3", 9, [2, 3, 3, 1]),
    ],
)
def test_batches_follow_ansible_serial(spec, total, sizes):
    assert rolling.batch_sizes(spec, total) == sizes
    cut = rolling.plan_batches(H[:total], spec)
    assert [len(b) for b in cut] == sizes
    assert [h for b in cut for h in b] == H[:total]  # every host once, in order


@pytest.mark.parametrize("spec", ["0", "x", "-1", "10%%", "150%", "", "1,,2", "0%"])
def test_a_bad_batch_is_one_clear_error(spec):
    with pytest.raises(ConfigError) as e:
        rolling.batch_sizes(spec, 4)
    assert "--batch" in e.value.message and "\n" not in e.value.message


@pytest.mark.parametrize(
    ("failed", "total", "spec", "stop"),
    [
        (0, 3, "0", False),
        (1, 3, "0", True),  # the default: the first failed host stops the rollout
        (1, 3, "1", False),
        (2, 3, "1", True),
        (1, 4, "25%", False),  # exactly the threshold is not past it
        (2, 4, "25%", True),
        (1, 10, "0%", True),
        (10, 10, "100%", False),
    ],
)
def test_failure_threshold(failed, total, spec, stop):
    assert rolling.passed(failed, total, spec) is stop


@pytest.mark.parametrize("spec", ["x", "1,2", "-3", "200%"])
def test_a_bad_max_fail_is_refused(spec):
    with pytest.raises(ConfigError) as e:
        rolling.check_max_fail(spec)
    assert "--max-fail" in e.value.message


def test_on_fail_values():
    assert rolling.check_on_fail("rollback-all") == "rollback-all"
    with pytest.raises(ConfigError, match="--on-fail"):
        rolling.check_on_fail("rollback")


def test_cli_hosts_are_split_and_checked():
    assert split_hosts("a@h1, h2:2222,,") == ["a@h1", "h2:2222"]
    assert cli_host("cynow@127.0.0.13:22") == "cynow@127.0.0.13:22"
    with pytest.raises(ConfigError, match="-H"):
        cli_host("bad host")
    with pytest.raises(ConfigError, match="-H"):
        cli_host("h;rm -rf /")


@pytest.mark.parametrize(("value", "out"), [(None, 10), ("3", 3), (4, 4)])
def test_parallel(value, out):
    assert parse_parallel(value) == out


@pytest.mark.parametrize("value", ["0", "x", "-2", "1.5"])
def test_bad_numbers_are_one_line_errors(value):
    with pytest.raises(ConfigError, match="--parallel must be a whole number"):
        parse_parallel(value)
    with pytest.raises(ConfigError, match="-n must"):
        whole_number("-n", value, 50)


def _fleet(n: int) -> Fleet:
    config = Config(overrides={CLI_HOSTS_KEY: [f"cynow@127.0.0.{10 + i}" for i in range(n)]})

    class C:  # what a task receives from the executor: a Context, not a Connection
        pass

    c = C()
    c.config = config
    return Fleet.of(c, resolve({}))


def test_the_fleet_comes_from_the_executor_host_list():
    f = _fleet(3)
    assert [x.host for x in f] == ["127.0.0.10", "127.0.0.11", "127.0.0.12"]
    assert all(isinstance(x, Connection) for x in f)


def test_a_host_named_twice_is_refused():
    c = type("C", (), {})()
    c.config = Config(overrides={CLI_HOSTS_KEY: ["cynow@127.0.0.10", "cynow@127.0.0.10:22"]})
    with pytest.raises(ConfigError, match="named twice"):
        Fleet.of(c, resolve({}))


def test_each_is_bounded_keeps_order_and_keeps_failures_per_host(mocker):
    mocker.patch("tasks.fleet.Remote.open")
    f = _fleet(6)
    running, peak, lock = [0], [0], threading.Lock()

    def work(remote):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        if remote.conn.host.endswith(".12"):
            raise ConnectError("no route")
        return remote.conn.host

    seen = []
    result = f.each(work, parallel=2, done=lambda r, v: seen.append(r.conn.host))
    assert peak[0] == 2  # never more than --parallel at once
    assert list(result.values())[0] == "127.0.0.10"
    assert [c.host for c in result] == [c.host for c in f]
    assert [c.host for c in result.failed] == ["127.0.0.12"]
    assert len(result.succeeded) == 5 and sorted(seen) == sorted(c.host for c in f)


def test_worst_exit_code():
    ok, bad = "ok", "bad"
    assert worst_exit([ok, ok], lambda r: r == bad) == 0
    assert worst_exit([ok, bad], lambda r: r == bad) == 1
    assert worst_exit([bad, HostError("h", "unreachable", 2)], lambda r: r == bad) == 2


def test_ctrl_c_starts_no_further_host(mocker):
    mocker.patch("tasks.fleet.Remote.open")
    started = []

    def work(remote):
        started.append(remote.conn.host)
        if remote.conn.host.endswith(".10"):
            raise KeyboardInterrupt
        time.sleep(0.2)  # the hosts under way finish
        return "done"

    with pytest.raises(KeyboardInterrupt):
        _fleet(6).each(work, parallel=2)
    assert len(started) <= 3  # the interrupted host, the one beside it, at most one more


def test_a_target_naming_several_hosts_is_a_fleet():
    cynow = {"targets": {"web": {"hosts": ["cynow@127.0.0.21", "cynow@127.0.0.22:2222"]}}}
    c = type("C", (), {})()
    c.config = Config(overrides={"cynow": cynow})
    settings = resolve(cynow, "web")
    f = Fleet.of(c, settings)
    assert [(x.host, x.port) for x in f] == [("127.0.0.21", 22), ("127.0.0.22", 2222)]
    assert f.names() == ["cynow@127.0.0.21", "cynow@127.0.0.22:2222"]
