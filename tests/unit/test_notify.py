"""tasks/notify.py: URLs as they may be shown, the config check, which event a run is, the
messages, and sending (to a receiver on 127.0.0.1, or refused before any packet leaves)."""

from __future__ import annotations

import netguard
import pytest

from tasks import notify
from tasks.checks.base import CheckResult
from tasks.diagnose import Report
from tasks.errors import ConfigError, ExitCode
from tasks.repair import Action
from tasks.repair import Outcome as RepairOutcome
from tasks.settings import resolve
from tasks.steps.context import Outcome
from tasks.verdict import Verdict
from tests.receiver import Receiver, free_port

# -- shown: scheme and host only ----------------------------------------------------------------

SHOWN = [
    ("json://user:hunter2@127.0.0.1:8080/hook/s3cr3t?token=abc123", "json://127.0.0.1:8080"),
    ("jsons://hooks.example.com/cynow-x9f2k", "jsons://hooks.example.com"),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "slack://<redacted>"),
    ("tgram://123456789:AABBccddEEff/-1001234", "tgram://<redacted>"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV", "discord://<redacted>"),
    ("ntfy://my-secret-topic", "ntfy://<redacted>"),
    ("ntfys://ntfy.example.com/my-secret-topic", "ntfys://ntfy.example.com"),
    ("mailto://ops:app-password@gmail.com?to=team@example.com", "mailto://gmail.com"),
    ("https://hooks.slack.com/services/T1/B2/XyZsecret", "https://hooks.slack.com"),
    ("msteams://acme/tokenA/tokenB/tokenC", "msteams://<redacted>"),
    ("json://[::1]:9000/x", "json://[::1]:9000"),
    ("JSON://LOCALHOST/", "json://LOCALHOST"),
    ("not a url", "<redacted>"),
    ("", "<redacted>"),
]


@pytest.mark.parametrize("url, expected", SHOWN)
def test_shown_is_scheme_and_host_only(url, expected):
    assert notify.shown(url) == expected


@pytest.mark.parametrize("url, _", SHOWN)
def test_no_secret_part_is_ever_shown(url, _):
    out = notify.shown(url)
    for secret in notify.secrets_of(url):
        assert secret not in out, (url, secret)


def test_secrets_of_names_every_hidden_part():
    parts = notify.secrets_of("json://user:hunter2@127.0.0.1:8080/hook/s3cr3t?token=abc123")
    assert {"user", "hunter2", "hook", "s3cr3t", "abc123"} <= set(parts)
    assert "127.0.0.1" not in parts
    assert "T1JJ3T3L2" in notify.secrets_of("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazk")


def test_scrub_takes_the_url_and_its_parts_out_of_text():
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    text = f"Failed to send to {url}: channel A1BRTD4JD said no (TIiajkdnlazkcOXrIdevi7FQ)"
    out = notify.scrub(text, url)
    assert "T1JJ3T3L2" not in out and "A1BRTD4JD" not in out and "TIiajk" not in out
    assert out.startswith("Failed to send to slack://<redacted>:")


# -- config ---------------------------------------------------------------------------------


def test_notify_defaults_to_nothing_and_takes_a_list():
    assert resolve({}).notify == []
    urls = ["json://127.0.0.1:9000/cynow", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrId"]
    assert resolve({"notify": urls}).notify == urls


def test_notify_per_target_overrides():
    cfg = {
        "notify": ["json://127.0.0.1:1/all"],
        "targets": {"lab": {"hosts": ["cynow@127.0.0.11"], "notify": ["json://127.0.0.1:2/lab"]}},
    }
    assert resolve(cfg, "lab").notify == ["json://127.0.0.1:2/lab"]
    cfg["targets"]["quiet"] = {"hosts": ["h"], "notify": []}
    assert resolve(cfg, "quiet").notify == []
    assert resolve(cfg).notify == ["json://127.0.0.1:1/all"]


@pytest.mark.parametrize(
    "value, words",
    [
        ("json://hooks.example.com/s3cr3t", ["must be a list of Apprise URLs, not json://hooks"]),
        (5, ["must be a list of Apprise URLs, not 5"]),
        ([5], ["cynow.notify must be a non-empty string"]),
        (["hooks.example.com/s3cr3t"], ["is not an Apprise URL (<redacted>)"]),
        (["json://hooks.example.com/a b/s3cr3t"], ["is not an Apprise URL (json://hooks.ex"]),
        (["slack://"], ["Apprise cannot use (slack://<redacted>)"]),
        (["nosuchservice://s3cr3t/x"], ["Apprise cannot use (nosuchservice://<redacted>)"]),
    ],
)
def test_bad_notify_values_are_one_line_errors_without_secrets(value, words):
    with pytest.raises(ConfigError) as e:
        resolve({"notify": value})
    msg = e.value.message
    assert e.value.code == ExitCode.CONFIG and "\n" not in msg
    assert msg.startswith("config: cynow.notify ")
    for w in words:
        assert w in msg
    assert "s3cr3t" not in msg


def test_a_bad_url_in_a_target_names_the_target():
    cfg = {"targets": {"lab": {"hosts": ["h"], "notify": ["slack://"]}}}
    with pytest.raises(ConfigError, match=r"cynow\.targets\.lab\.notify has an entry Apprise"):
        resolve(cfg, "lab")


# -- which event ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "result, event",
    [
        ("deployed", "deploy.succeeded"),
        ("rolled-back", "deploy.rolled_back"),
        ("rollback-failed", "deploy.rollback_failed"),
        ("up-to-date", None),
        ("refused", "deploy.refused"),
        ("planned", None),
    ],
)
def test_deploy_event(result, event):
    assert notify.deploy_event(result) == event


def test_a_deploy_refused_before_it_started_sends_nothing():
    assert notify.deploy_event("refused", started=False) is None
    assert notify.deploy_event("deployed", started=False) == "deploy.succeeded"


def test_rollback_repair_and_diagnose_events():
    assert notify.rollback_event("rolled-back-by-request") == "rollback.succeeded"
    assert notify.rollback_event("rollback-failed") == "rollback.failed"
    assert notify.rollback_event("refused") is None
    assert notify.repair_event(True) == "repair.succeeded"
    assert notify.repair_event(False) == "repair.failed"
    assert notify.diagnose_event("healthy") is None
    assert notify.diagnose_event("gunicorn_stopped") == "diagnose.unhealthy"
    assert notify.diagnose_event("unreachable") == "diagnose.unhealthy"
    every = {notify.deploy_event(r) for r in ("deployed", "rolled-back", "rollback-failed")} | {
        "deploy.started",
        "rollback.started",
        "repair.started",
    }
    assert every <= set(notify.EVENTS)


# -- messages ---------------------------------------------------------------------------------

OLD, NEW = "64b0005eff18a1b2c3d4", "c1675830cd83e5f6a7b8"


def rolled_back() -> Outcome:
    output = "\n".join(f"line {i}" for i in range(1, 15))
    return Outcome(
        "cynow@127.0.0.12",
        "rolled-back",
        old=OLD,
        new=NEW,
        failed_step="health",
        error="health gate: socket /cynow/orders/: 500 in 0.01s",
        output=output + "\nSECRET_KEY=abc123 \x1b[2Jfake healthy",
        steps=[{"step": "health", "ok": False, "seconds": 1.2, "detail": "500"}],
        commits=["c167583 orders: a view that fails"],
    )


def test_a_rolled_back_deploy_names_host_commits_result_step_and_last_lines():
    m = notify.outcome_message(
        "deploy.rolled_back",
        rolled_back(),
        OLD,
        NEW,
        ["c167583 orders: a view that fails"],
        target="lab",
        by="root@vm",
    )
    assert m.kind == "warning"
    assert m.title == "cynow-ops: deploy rolled back on cynow@127.0.0.12"
    lines = m.body.splitlines()
    assert lines[:7] == [
        "event: deploy.rolled_back",
        "host: cynow@127.0.0.12 (target lab)",
        "commits: 64b0005eff18 -> c1675830cd83 (1 commit(s): c167583 orders: a view that fails)",
        "result: rolled-back",
        "failed step: health",
        "error: health gate: socket /cynow/orders/: 500 in 0.01s",
        "by: root@vm",
    ]
    assert lines[7] == "last lines:"
    last = lines[8:]
    assert len(last) == notify.LAST_LINES
    assert last[0] == "  line 6" and last[-1] == "  SECRET_KEY=<redacted> fake healthy"
    assert "\x1b" not in m.body and "abc123" not in m.body


def test_started_says_where_and_what_not_a_result():
    o = Outcome("cynow@127.0.0.12", "deployed")
    m = notify.outcome_message("deploy.started", o, OLD, NEW, ["a", "b", "c", "d", "e"])
    assert m.kind == "info" and m.title == "cynow-ops: deploy started on cynow@127.0.0.12"
    assert m.body.splitlines() == [
        "event: deploy.started",
        "host: cynow@127.0.0.12",
        "commits: 64b0005eff18 -> c1675830cd83 (5 commit(s): a; b; c; +2 more)",
    ]


def test_a_succeeded_deploy_carries_no_failure():
    o = Outcome("h", "deployed", old=OLD, new=NEW, output="irrelevant")
    m = notify.outcome_message("deploy.succeeded", o, OLD, NEW)
    assert "result: deployed" in m.body and "failed step" not in m.body
    assert "last lines" not in m.body and m.kind == "success"


def test_a_failed_rollback_names_its_failing_step():
    o = Outcome(
        "h",
        "rollback-failed",
        error="health gate: 500",
        output="Traceback\nRuntimeError: boom",
        steps=[
            {"step": "undo code", "ok": True, "seconds": 0.1, "detail": ""},
            {"step": "health", "ok": False, "seconds": 3, "detail": "500"},
        ],
    )
    m = notify.outcome_message("rollback.failed", o, NEW, OLD)
    assert "failed step: health" in m.body and "  RuntimeError: boom" in m.body
    assert "commits: c1675830cd83 -> 64b0005eff18" in m.body and m.kind == "failure"


def test_a_step_failing_without_output_gives_the_step_log_from_it_on():
    o = Outcome(
        "h",
        "rolled-back",
        failed_step="health",
        error="health gate: socket /cynow/orders/: 500 in 0.00s",
        steps=[
            {"step": "reload", "ok": True, "seconds": 0.06, "detail": "HUP to the master"},
            {"step": "health", "ok": False, "seconds": 1.2, "detail": "health gate: 500"},
        ],
        undo=[
            {"step": "undo code", "ok": True, "seconds": 0.04, "detail": "back at 64b0005eff18"},
            {"step": "health", "ok": True, "seconds": 0.5, "detail": "/cynow/ 200 in 0.00s"},
        ],
    )
    m = notify.outcome_message("deploy.rolled_back", o, OLD, NEW)
    assert m.body.split("\nlast lines:\n")[1].splitlines() == [
        "  FAILED health (1.20s): health gate: 500",
        "  ok undo code (0.04s): back at 64b0005eff18",
        "  ok health (0.50s): /cynow/ 200 in 0.00s",
    ]


def test_unknown_event_is_a_bug():
    with pytest.raises(ValueError):
        notify.message("deploy.exploded", "h")


def test_long_lines_are_cut():
    (line,) = notify.last_lines("x" * 1000)
    assert len(line) == notify.LINE_WIDTH and line.endswith("…")


def test_diagnose_message():
    v = Verdict(
        "gunicorn_stopped",
        "gunicorn is not running",
        chain=["gunicorn.service inactive", "502 Bad Gateway for GET /cynow/"],
        evidence=["Active: inactive (dead)"],
        fix=["sudo systemctl start gunicorn.service"],
    )
    checks = [CheckResult("code.origin", 9, "deployed commit", "ok", "at origin/main (64b0005)")]
    m = notify.diagnose_message(Report("cynow@127.0.0.12", "lab", v, checks))
    assert m.kind == "failure"
    assert m.title == "cynow-ops: unhealthy on cynow@127.0.0.12"
    assert m.body.splitlines() == [
        "event: diagnose.unhealthy",
        "host: cynow@127.0.0.12 (target lab)",
        "commits: at origin/main (64b0005)",
        "result: gunicorn_stopped: gunicorn is not running",
        "chain: gunicorn.service inactive -> 502 Bad Gateway for GET /cynow/",
        "fix:",
        "  sudo systemctl start gunicorn.service",
        "last lines:",
        "  Active: inactive (dead)",
    ]


def test_repair_messages():
    o = RepairOutcome("h", "stale_socket", actions=[Action("gunicorn", "start gunicorn", [])])
    started = notify.repair_message("repair.started", o)
    assert "result: stale_socket" in started.body and "planned: gunicorn" in started.body
    o.actions[0].ok, o.actions[0].output = False, "Job failed\nsee journalctl"
    o.after, o.by_hand = "gunicorn_stopped", {"app_import_error": "fix the code"}
    failed = notify.repair_message("repair.failed", o, by="root@vm")
    assert "result: stale_socket -> gunicorn_stopped" in failed.body
    assert "failed step: start gunicorn" in failed.body
    assert "needs a person: app_import_error" in failed.body
    assert failed.body.endswith("last lines:\n  Job failed\n  see journalctl")


# -- sending ----------------------------------------------------------------------------------

MSG = notify.message("deploy.succeeded", "cynow@127.0.0.12", result="deployed")


def test_send_posts_the_message_to_a_json_receiver():
    with Receiver() as r:
        assert notify.send([r.url], MSG) == []
    (post,) = r.posts
    assert post["path"] == "/cynow"
    assert post["body"]["title"] == MSG.title
    assert post["body"]["message"] == MSG.body
    assert post["body"]["type"] == "success"


def test_dry_run_sends_nothing():
    with Receiver() as r:
        assert notify.send([r.url], MSG, dry_run=True) == []
    assert r.posts == []


def test_a_receiver_that_is_down_is_a_warning_without_secrets():
    port = free_port()
    url = f"json://ops:hunter2@127.0.0.1:{port}/hook/s3cr3t"
    (err,) = notify.send([url], MSG)
    assert err.startswith(f"notification deploy.succeeded to json://127.0.0.1:{port} not sent")
    assert "not sent:" in err and "hunter2" not in err and "s3cr3t" not in err


def test_one_url_down_does_not_stop_the_next():
    with Receiver() as r:
        errors = notify.send([f"json://127.0.0.1:{free_port()}/", r.url], MSG)
    assert len(errors) == 1 and len(r.posts) == 1


def test_deliver_lists_only_events_sent_and_each_url_not_reached():
    o = Outcome("h", "deployed")
    # Tried but not sent: an error, never in `notified` (the JSON's "events sent").
    notify.deliver(o, [f"json://127.0.0.1:{free_port()}/"], MSG)
    assert o.notified == [] and len(o.notify_errors) == 1
    with Receiver() as r:
        notify.deliver(o, [r.url], MSG)
    assert o.notified == ["deploy.succeeded"] and len(o.notify_errors) == 1 and len(r.posts) == 1
    notify.deliver(o, [], MSG)
    notify.deliver(o, ["json://127.0.0.1:1/"], MSG, dry_run=True)
    assert o.notified == ["deploy.succeeded"] and len(o.notify_errors) == 1


def test_a_started_event_is_sent_beside_the_run():
    o = Outcome("h", "deployed")
    with Receiver() as r:
        msg = notify.message("deploy.started", "h")
        thread = notify.deliver(o, [r.url], msg, wait=False)
        thread.join()
        assert o.notified == ["deploy.started"] and o.notify_errors == []
        # One URL of two down: not sent to every URL, so not listed; the one down is a warning.
        thread = notify.deliver(o, [r.url, f"json://127.0.0.1:{free_port()}/"], msg, wait=False)
        thread.join()
    assert len(r.posts) == 2 and len(o.notify_errors) == 1
    assert o.notified == ["deploy.started"]


def test_under_the_tests_a_url_outside_loopback_is_refused_before_apprise(monkeypatch):
    """The tool's own guard (CYNOW_OPS_ALLOWED_NETWORKS, set by tests/conftest.py): decided on
    the URL alone, no name resolved, Apprise never called."""
    import apprise

    monkeypatch.setattr(apprise.Apprise, "notify", lambda *a, **k: pytest.fail("sent"))
    errors = notify.send(
        [
            "json://192.0.2.10:8080/hook",
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazk",
            "jsons://hooks.example.com/x",
        ],
        MSG,
    )
    assert errors == [
        "notification deploy.succeeded to json://192.0.2.10:8080 not sent: outside "
        "CYNOW_OPS_ALLOWED_NETWORKS (127.0.0.0/8)",
        "notification deploy.succeeded to slack://<redacted> not sent: not an address inside "
        "CYNOW_OPS_ALLOWED_NETWORKS (127.0.0.0/8)",
        "notification deploy.succeeded to jsons://hooks.example.com not sent: not an address "
        "inside CYNOW_OPS_ALLOWED_NETWORKS (127.0.0.0/8)",
    ]


@pytest.mark.expects_guard_violation
def test_the_network_guard_stops_an_apprise_send_outside_loopback(monkeypatch, guard_log):
    """Without the tool's guard, Apprise's own send to a non-loopback address is refused by the
    suite's network guard before connect(): the real connect is a recorder here, so even a
    broken guard could send nothing. An IP address, so no name is resolved either; a
    documentation address (RFC 5737), never the production host."""
    import apprise

    sent = []
    monkeypatch.setattr(netguard, "_real_connect", lambda sock, addr: sent.append(addr))
    monkeypatch.setattr(netguard, "_real_connect_ex", lambda sock, addr: sent.append(addr))
    before = guard_log.read_text()
    ap = apprise.Apprise()
    assert ap.add("json://192.0.2.10:8080/hook")
    assert not ap.notify(body="b", title="t")
    assert sent == []
    assert "192.0.2.10" in guard_log.read_text()[len(before) :]
    # And through notify.send with the tool's own guard off: a warning, nothing sent.
    monkeypatch.delenv(notify.ALLOWED_NETWORKS_ENV)
    (err,) = notify.send(["json://192.0.2.10:8080/hook"], MSG)
    assert err.startswith("notification deploy.succeeded to json://192.0.2.10:8080 not sent")
    assert sent == []


# -- a warning, never an exit code ------------------------------------------------------------


def test_an_unsent_notification_leaves_the_exit_code_and_is_listed(capsys):
    import json

    from tasks.outcomes import finish

    o = Outcome("cynow@127.0.0.12", "deployed", notified=["deploy.started", "deploy.succeeded"])
    o.notify_errors = ["notification deploy.succeeded to json://127.0.0.1:9 not sent: refused"]
    finish([o], json=True)  # no Exit raised: exit 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["exit_code"] == 0 and doc["result"] == "deployed"
    assert doc["notified"] == ["deploy.started", "deploy.succeeded"]
    assert doc["notify_errors"] == o.notify_errors
    assert "warning: notification deploy.succeeded to json://127.0.0.1:9 not sent" in err


def test_a_failed_deploy_keeps_its_own_exit_code_whatever_was_sent():
    from invoke.exceptions import Exit

    from tasks.outcomes import finish

    o = Outcome("h", "rolled-back", notified=["deploy.rolled_back"])
    with pytest.raises(Exit) as e:
        finish([o], json=True)
    assert e.value.code == 1


def test_diagnose_notify_tells_only_unhealthy_hosts(capsys):
    from dataclasses import replace

    from tasks.diagnose import tell

    sick = Report("cynow@127.0.0.12", "lab", Verdict("gunicorn_stopped", "gunicorn is not running"))
    well = Report("cynow@127.0.0.13", "lab", Verdict("healthy", "every check passed"))
    with Receiver() as r:
        tell([sick, well], replace(resolve({}), notify=[r.url]), json=True)
    assert [p["body"]["title"] for p in r.posts] == ["cynow-ops: unhealthy on cynow@127.0.0.12"]
    assert sick.to_json()["notified"] == ["diagnose.unhealthy"]
    assert well.to_json()["notified"] == [] and well.to_json()["notify_errors"] == []
    assert "notified" not in Report("h", None, Verdict("healthy", "")).to_json()

    tell([sick], resolve({}), json=True)  # --notify without URLs: said, nothing sent
    assert "no `notify` URLs are configured: nothing sent" in capsys.readouterr().err
