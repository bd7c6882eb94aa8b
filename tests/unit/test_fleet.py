"""Many hosts: batch planning, failure thresholds, the -H executor, the bounded fleet."""

import signal
import threading
import time

import pytest
from fabric import Config, Connection

from tasks import batches
from tasks.errors import ConfigError, ConnectError
from tasks.executor import CLI_HOSTS_KEY, split_hosts
from tasks.fleet import Fleet, HostError, Interrupted, parse_parallel, worst_exit
from tasks.hosts import cli_host
from tasks.settings import resolve, whole_number

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
    assert batches.batch_sizes(spec, total) == sizes
    cut = batches.plan_batches(H[:total], spec)
    assert [len(b) for b in cut] == sizes
    assert [h for b in cut for h in b] == H[:total]  # every host once, in order


@pytest.mark.parametrize("spec", ["0", "x", "-1", "10%%", "150%", "", "1,,2", "0%"])
def test_a_bad_batch_is_one_clear_error(spec):
    with pytest.raises(ConfigError) as e:
        batches.batch_sizes(spec, 4)
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
    assert batches.passed(failed, total, spec) is stop


@pytest.mark.parametrize("spec", ["x", "1,2", "-3", "200%"])
def test_a_bad_max_fail_is_refused(spec):
    with pytest.raises(ConfigError) as e:
        batches.check_max_fail(spec)
    assert "--max-fail" in e.value.message


def test_on_fail_values():
    assert batches.check_on_fail("rollback-all") == "rollback-all"
    with pytest.raises(ConfigError, match="--on-fail"):
        batches.check_on_fail("rollback")


def test_cli_hosts_are_split_and_checked():
    assert split_hosts("a@h1, h2:2222,,") == ["a@h1", "h2:2222"]
    assert cli_host("cynow@127.0.0.13:22") == {"host": "127.0.0.13", "user": "cynow", "port": 22}


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("h", {"host": "h"}),
        ("Admin.x@web-1.example:2222", {"host": "web-1.example", "user": "Admin.x", "port": 2222}),
        ("2001:db8::5", {"host": "2001:db8::5"}),  # bare IPv6: every colon is the address's
        ("cynow@[2001:db8::5]:2222", {"host": "2001:db8::5", "user": "cynow", "port": 2222}),
        ("[::1]", {"host": "::1"}),
    ],
)
def test_host_specs(text, spec):
    assert cli_host(text) == spec


@pytest.mark.parametrize(
    "text",
    [
        "bad host",
        "h;rm -rf /",
        "h:99999",
        "h:0",
        "h:",
        "a@b@h",
        "[::1",
        "[::1]x",
        "[h]:22",
        "@h",
        "h:²",
        "",
        "user@",
        "2001:db8::zz",
    ],
)
def test_bad_hosts_are_one_line_errors(text):
    with pytest.raises(ConfigError, match="-H") as e:
        cli_host(text)
    assert "\n" not in e.value.message


def test_an_empty_host_list_is_refused():
    c = type("C", (), {})()
    c.config = Config(overrides={CLI_HOSTS_KEY: []})
    with pytest.raises(ConfigError, match="-H names no host"):
        Fleet.of(c, resolve({}))


@pytest.mark.parametrize(("value", "out"), [(None, 10), ("3", 3), (4, 4)])
def test_parallel(value, out):
    assert parse_parallel(value) == out


@pytest.mark.parametrize("value", ["0", "x", "-2", "1.5", "²", "99999999999"])
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


def test_ctrl_c_lets_the_hosts_under_way_finish_and_starts_no_other(mocker):
    mocker.patch("tasks.fleet.Remote.open")
    started, told = [], []

    def work(remote):
        started.append(remote.conn.host)
        if remote.conn.host.endswith(".10"):
            time.sleep(0.1)  # both workers busy
            # What Ctrl-C does: a real SIGINT, which Python handles in the main thread.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.3)  # the hosts under way finish
        return "done"

    with pytest.raises(Interrupted) as e:
        _fleet(6).each(work, parallel=2, on_interrupt=lambda: told.append(1))
    assert told == [1]
    assert len(started) == 2  # the two under way; the other four never began
    assert [c.host for c in e.value.ended] == ["127.0.0.10", "127.0.0.11"]
    assert set(e.value.ended.values()) == {"done"}


def test_a_bug_on_one_host_is_that_hosts_error(mocker):
    mocker.patch("tasks.fleet.Remote.open")

    def work(remote):
        if remote.conn.host.endswith(".11"):
            return {}["missing"]
        return "ok"

    result = _fleet(3).each(work, parallel=3)
    err = result.failed[next(iter(result.failed))]
    assert "unexpected KeyError: 'missing' (at test_fleet.py:" in err.message
    assert err.started is True and list(result.succeeded.values()) == ["ok", "ok"]


def test_a_target_naming_several_hosts_is_a_fleet():
    cynow = {"targets": {"web": {"hosts": ["cynow@127.0.0.21", "cynow@127.0.0.22:2222"]}}}
    c = type("C", (), {})()
    c.config = Config(overrides={"cynow": cynow})
    settings = resolve(cynow, "web")
    f = Fleet.of(c, settings)
    assert [(x.host, x.port) for x in f] == [("127.0.0.21", 22), ("127.0.0.22", 2222)]
    assert f.names() == ["cynow@127.0.0.21", "cynow@127.0.0.22:2222"]


def test_a_host_whose_diagnosis_broke_is_not_called_unreachable():
    from tasks.diagnose import unreachable
    from tasks.errors import OpsError

    r = unreachable("h", resolve({}), OpsError("unexpected KeyError: 'x' (at a.py:1)"), "")
    assert (r.verdict.cause, r.exit_code) == ("unknown", 1)
    r = unreachable("h", resolve({}), ConnectError("h refused the connection"), "")
    assert (r.verdict.cause, r.exit_code) == ("unreachable", 2)
