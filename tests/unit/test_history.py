"""tasks/history.py and its writer (tasks/remote/history_append.py), run with a real shell and
python here: one line a record whatever it holds, a torn line kept apart and skipped, a failed
write reported, rotation into gzip archives."""

from __future__ import annotations

import gzip
import json
import os
import subprocess

import pytest

from tasks import history


def append(state, line, keep=history.KEEP, raw=False):
    """The writer run for real, the record on its stdin as the runner sends it."""
    return subprocess.run(
        ["sh", "-c", history.append(str(state), keep)],
        input=line if raw else history.stdin(line),
        capture_output=True,
        text=True,
    )


def test_a_record_is_one_line_whatever_it_contains(tmp_path):
    line = '{"error": "it\'s \\"broken\\"; $(id) `id`"}'
    assert append(tmp_path, line).returncode == 0
    assert (tmp_path / "history.jsonl").read_text() == line + "\n"
    assert oct((tmp_path / "history.jsonl").stat().st_mode & 0o777) == "0o600"


def test_a_torn_last_line_stays_alone_and_is_skipped(tmp_path):
    (tmp_path / "history.jsonl").write_text('{"id": "a"}\n{"id": "b", "res')  # a crash mid-write
    assert append(tmp_path, '{"id": "c"}').returncode == 0
    records, bad = history.parse((tmp_path / "history.jsonl").read_text())
    assert [r["id"] for r in records] == ["a", "c"] and bad == 1


def test_a_record_that_cannot_be_written_says_so(tmp_path):
    (tmp_path / "history.jsonl").mkdir()  # not a file: the open fails
    out = append(tmp_path, "{}")
    assert out.returncode == 1 and "was not written" in out.stderr
    link = tmp_path / "elsewhere"
    link.mkdir()
    (link / "history.jsonl").symlink_to(tmp_path / "target")
    out = append(link, "{}")  # a symlink is never followed
    assert out.returncode == 1 and not (tmp_path / "target").exists()


def test_a_record_of_two_lines_is_refused(tmp_path):
    with pytest.raises(ValueError, match="one line"):
        history.stdin('{"a": 1}\n{"b": 2}')
    with pytest.raises(ValueError, match="one line"):
        history.stdin('{"a": 1}\r{"b": 2}')
    out = append(tmp_path, '{"a": 1}\r{"b": 2}\n', raw=True)  # the writer checks too
    assert out.returncode == 1 and not (tmp_path / "history.jsonl").exists()


@pytest.mark.parametrize("sent", ["", '{"id": "cut sh', "\n"])
def test_an_input_cut_short_or_empty_is_not_written(tmp_path, sent):
    out = append(tmp_path, sent, raw=True)
    assert out.returncode == 1 and "was not written" in out.stderr
    assert not (tmp_path / "history.jsonl").exists()


def test_the_record_is_never_in_the_command_line(tmp_path):
    """argv is world-readable in `ps` and capped (MAX_ARG_STRLEN, 128 KiB an argument): the
    record goes on stdin, so a record of any size is written and no argument holds it."""
    line = json.dumps({"id": "big", "error": "x" * 300_000, "secret_marker": "k3y"})
    command = history.append(str(tmp_path))
    assert "k3y" not in command and "big" not in command
    assert append(tmp_path, line).returncode == 0
    assert (tmp_path / "history.jsonl").read_text() == line + "\n"
    # Only the first line is read: the input under a sudo password has no end (runner.py).
    out = append(tmp_path, '{"id": "one"}\n{"id": "two"}\n', raw=True)
    assert out.returncode == 0
    assert (tmp_path / "history.jsonl").read_text().splitlines()[-1] == '{"id": "one"}'


def test_rotate_puts_the_archive_on_disk_before_the_file_drops_its_records(tmp_path, monkeypatch):
    """The writer's rotate, run here in-process: the archive's fsync comes before the
    os.replace that takes the archived records out of the file."""
    from tasks import programs

    ns = {"__name__": "history_append"}
    exec(compile(programs.source("history_append"), "history_append", "exec"), ns)
    f = tmp_path / "history.jsonl"
    f.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(5)))
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    assert ns["rotate"](str(f), 2) == 3
    (archive,) = [p for p in os.listdir(tmp_path) if p.endswith(".gz")]
    synced = [path for what, path in calls if what == "fsync"]
    assert str(tmp_path / archive) in synced
    assert calls.index(("fsync", str(tmp_path / archive))) < calls.index(("replace", str(f)))
    assert [json.loads(x)["id"] for x in gzip.open(tmp_path / archive).read().splitlines()] == [
        0,
        1,
        2,
    ]


def test_it_rotates_past_keep_records_into_a_gzip_archive(tmp_path):
    for i in range(7):
        assert append(tmp_path, json.dumps({"id": i}), keep=5).returncode == 0
    kept, bad = history.parse((tmp_path / "history.jsonl").read_text())
    assert [r["id"] for r in kept] == [2, 3, 4, 5, 6] and bad == 0
    archives = sorted(p for p in os.listdir(tmp_path) if p.endswith(".gz"))
    old = [
        json.loads(x)["id"] for a in archives for x in gzip.open(tmp_path / a).read().splitlines()
    ]
    assert sorted(old) == [0, 1]  # nothing lost: every record is in the file or an archive


def test_read_is_the_last_lines_or_nothing(tmp_path):
    assert (
        subprocess.run(["sh", "-c", history.read(str(tmp_path))], capture_output=True).stdout == b""
    )
    for i in range(3):
        append(tmp_path, json.dumps({"id": i}))
    out = subprocess.run(
        ["sh", "-c", history.read(str(tmp_path), 2)], capture_output=True, text=True
    )
    assert [json.loads(x)["id"] for x in out.stdout.splitlines()] == [1, 2]


@pytest.mark.parametrize(
    ("text", "skipped"),
    [
        ("", 0),
        ("\n\n", 0),
        ("[1, 2]\nnot json\n", 2),
        # Python's json reads these, JSON has no such values: each line is unreadable.
        ('{"steps": [["migrate", NaN]]}\n{"seconds": Infinity}\n{"x": -Infinity}\n', 3),
    ],
)
def test_parse_never_fails(text, skipped):
    records, bad = history.parse(text)
    assert records == [] and bad == skipped


def test_a_line_with_nan_is_skipped_and_the_json_stays_json():
    text = json.dumps(DEPLOYED) + '\n{"id": "nan", "steps": [["health", NaN]]}\n'
    records, bad = history.parse(text)
    assert [r["id"] for r in records] == [DEPLOYED["id"]] and bad == 1
    doc = history.document(history.merge({"h": records}, 5), [], 5)
    json.dumps(doc, allow_nan=False)  # raises on NaN/Infinity: what --json prints is JSON


# ---- `fab history`: rows, merging, the sparkline, the JSON document -----------------------

DEPLOYED = {
    "id": "20261204T010000Z-aaaaaa",
    "command": "deploy",
    "started": "2026-12-04T01:00:00+00:00",
    "ended": "2026-12-04T01:00:04+00:00",
    "by": "alice@laptop",
    "result": "deployed",
    "from": "1" * 40,
    "to": "2" * 40,
    "from_subject": "orders: list",
    "to_subject": "orders: a note on each order",
    "failed_step": "",
    "error": "",
    "plan": [{"app": "orders", "name": "0002_order_note", "kind": "safe", "ops": []}],
    "snapshot": {"id": "20261204T010001Z-130f3e", "taken": "2026-12-04T01:00:01+00:00"},
    "undoes": "",
    "steps": [["lock", 0.06], ["migrate", 0.27], ["health", 1.52], ["reload", 0.4]],
}
ROLLED_BACK = {
    **DEPLOYED,
    "id": "20261204T020000Z-bbbbbb",
    "started": "2026-12-04T02:00:00+00:00",
    "ended": "2026-12-04T02:00:09+00:00",
    "result": "rolled-back",
    "from": "2" * 40,
    "to": "3" * 40,
    "from_subject": "orders: a note on each order",
    "to_subject": "orders: a view that fails",
    "failed_step": "health",
    "error": "health: /cynow/orders/ answered 500",
    "plan": [],
    "snapshot": {},
    "steps": [["lock", 0.05], ["health", 3.0], ["undo code", 0.1], ["health", 1.0]],
}
ROLLBACK = {
    **DEPLOYED,
    "id": "20261204T030000Z-cccccc",
    "command": "rollback",
    "started": "2026-12-04T03:00:00+00:00",
    "ended": "2026-12-04T03:00:05+00:00",
    "result": "rollback",
    "undoes": DEPLOYED["id"],
    "steps": [["undo migrate", 0.9], ["undo code", 0.1], ["health", 1.1]],
}


def test_a_deploy_row_says_what_moved_how_long_and_what_it_left():
    r = history.row(DEPLOYED, "web1")
    assert r["host"] == "web1" and r["outcome"] == "deployed" and r["by"] == "alice@laptop"
    assert r["from"] == {"commit": "1" * 40, "subject": "orders: list"}
    assert r["to"]["subject"] == "orders: a note on each order"
    assert r["seconds"] == 2.25  # the steps' sum, finer than ended - started
    assert r["slowest"] == {"step": "health", "seconds": 1.52}
    assert r["migrations_applied"] == ["orders.0002_order_note"]
    assert r["migrations_reversed"] == [] and r["snapshot"] == "20261204T010001Z-130f3e"
    assert history.short(r["to"]) == "2222222 orders: a note on each order"


def test_a_rolled_back_deploy_names_its_step_and_applied_nothing():
    r = history.row(ROLLED_BACK)
    assert r["outcome"] == "rolled back at health" and r["failed_step"] == "health"
    assert r["migrations_applied"] == [] and r["snapshot"] == ""
    assert r["slowest"]["step"] == "health" and r["slowest"]["seconds"] == 3.0


def test_a_rollback_row_goes_the_way_the_server_moved():
    r = history.row(ROLLBACK)
    # Its record keeps the deploy's from/to; the server went from that deploy's `to` back.
    assert r["from"]["commit"] == "2" * 40 and r["to"]["commit"] == "1" * 40
    assert r["outcome"] == "rollback done" and r["undoes"] == DEPLOYED["id"]
    assert r["migrations_reversed"] == ["orders.0002_order_note"]
    assert r["migrations_applied"] == []


@pytest.mark.parametrize(
    ("result", "step", "said"),
    [
        ("rollback-failed", "health", "rollback-failed at health"),
        ("refused", "lock", "refused at lock"),
        ("up-to-date", "", "up-to-date"),
        ("restored", "", "restored"),
        ("", "", "?"),
    ],
)
def test_outcome_in_words(result, step, said):
    assert history.outcome({"result": result, "failed_step": step}) == said


@pytest.mark.parametrize(
    ("result", "step", "said"),
    [
        ("rollback", "", "rollback done"),
        ("rollback-failed", "health", "rollback-failed at health"),
        ("refused", "plan", "rollback refused"),
    ],
)
def test_a_rollbacks_outcome_in_words(result, step, said):
    rec = {"command": "rollback", "result": result, "failed_step": step}
    assert history.outcome(rec) == said


def test_an_old_record_without_subjects_steps_or_times_still_makes_a_row():
    r = history.row({"from": "abc", "to": "def", "result": "deployed"})
    assert r["seconds"] is None and r["slowest"] is None and r["command"] == "deploy"
    assert history.short(r["from"]) == "abc" and history.short({"commit": "", "subject": ""}) == "-"
    # Steps with a bad shape are ignored; the duration then comes from the times.
    r = history.row(
        {"steps": [["x"], "y", ["z", "1"]], **{k: DEPLOYED[k] for k in ("started", "ended")}}
    )
    assert r["seconds"] == 4.0 and r["slowest"] is None


def test_merge_interleaves_hosts_by_time_newest_first_and_keeps_n():
    web2 = [{**DEPLOYED, "id": "w2", "started": "2026-12-04T01:30:00+00:00"}]
    rows = history.merge({"web1": [DEPLOYED, ROLLED_BACK, ROLLBACK], "web2": web2}, 10)
    assert [(r["host"], r["id"]) for r in rows] == [
        ("web1", ROLLBACK["id"]),
        ("web1", ROLLED_BACK["id"]),
        ("web2", "w2"),
        ("web1", DEPLOYED["id"]),
    ]
    assert [r["id"] for r in history.merge({"web1": [DEPLOYED, ROLLED_BACK, ROLLBACK]}, 2)] == [
        ROLLBACK["id"],
        ROLLED_BACK["id"],
    ]


def test_merge_puts_records_without_a_time_last_in_file_order():
    recs = [{"id": "a"}, DEPLOYED, {"id": "b", "started": "not a time"}]
    assert [r["id"] for r in history.merge({"h": recs}, 5)] == [DEPLOYED["id"], "b", "a"]
    naive = {**DEPLOYED, "id": "naive", "started": "2026-12-04T05:00:00"}  # read as UTC
    assert history.merge({"h": [DEPLOYED, naive]}, 1)[0]["id"] == "naive"


def test_sparkline_scales_to_the_largest():
    assert history.sparkline([1, 2, 4, 8]) == "▂▃▅█"
    assert history.sparkline([5, 5]) == "██"
    assert history.sparkline([0, 0]) == "▁▁" and history.sparkline([]) == ""


def test_sparkline_draws_odd_values_low_never_raises():
    nan, inf = float("nan"), float("inf")
    assert history.sparkline([-4, 8]) == "▁█"  # a negative index would pick from the end
    assert history.sparkline([nan, 8, inf, -inf]) == "▁█▁▁"
    assert history.sparkline([nan]) == "▁"


def test_deploy_durations_are_the_deploys_oldest_first():
    rows = history.merge({"h": [DEPLOYED, ROLLED_BACK, ROLLBACK]}, 10)
    assert history.deploy_durations(rows) == [2.25, 4.15]  # the rollback is not a deploy


def test_the_json_document_has_its_schema_each_host_and_the_worst_exit():
    rows = history.merge({"web1": [DEPLOYED]}, 20)
    hosts = [
        {"host": "web1", "exit_code": 0, "records": 1, "skipped": 2},
        {"host": "web2", "exit_code": 2, "error": "cannot connect"},
    ]
    doc = history.document(rows, hosts, 20)
    assert doc["schema"] == "cynow-ops.history.v1" and doc["exit_code"] == 2 and doc["n"] == 20
    assert doc["hosts"] == hosts and doc["records"] == rows
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    assert history.document(rows, hosts[:1], 20)["exit_code"] == 0  # skipped lines: not fatal


def test_a_corrupt_line_in_the_middle_is_counted_and_the_rest_read(tmp_path):
    for rec in (DEPLOYED, ROLLED_BACK):
        assert append(tmp_path, json.dumps(rec)).returncode == 0
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"id": "torn", "res\n\x00\xff garbage\n')
    assert append(tmp_path, json.dumps(ROLLBACK)).returncode == 0
    out = subprocess.run(["sh", "-c", history.read(str(tmp_path))], capture_output=True, text=True)
    records, bad = history.parse(out.stdout)
    assert bad == 2 and [r["id"] for r in records] == [
        DEPLOYED["id"],
        ROLLED_BACK["id"],
        ROLLBACK["id"],
    ]


def test_a_restore_is_recorded_with_its_snapshots_and_read_back_as_a_row():
    from types import SimpleNamespace

    from tasks.backup import Result, restore_record

    ctx = SimpleNamespace(deploy_id="20261204T040000Z-dddddd", by="bob@laptop")
    r = Result("web1", "restore", before={"id": "20261204T040001Z-eeeeee"})
    steps = [("snapshot", 0.3), ("restore db", 0.2), ("health", 0.5)]
    rec = json.loads(
        restore_record(ctx, r, "20261204T010001Z-130f3e", "2026-12-04T04:00:00+00:00", steps)
    )
    row = history.row(rec, "web1")
    assert row["command"] == "restore" and row["outcome"] == "restored" and row["seconds"] == 1.0
    assert row["snapshot"] == "20261204T010001Z-130f3e"
    assert row["snapshot_before"] == "20261204T040001Z-eeeeee" and row["by"] == "bob@laptop"
    failed = Result("web1", "restore", ok=False, error="restored, but the health gate failed")
    rec = json.loads(restore_record(ctx, failed, "x", "2026-12-04T04:00:00+00:00", steps))
    assert history.outcome(rec) == "restore-failed at health"
    rec = json.loads(restore_record(ctx, failed, "x", "2026-12-04T04:00:00+00:00", steps[:1]))
    assert rec["failed_step"] == "restore db"


def test_widths_fit_the_terminal_narrowing_the_widest_wrapping_column_first():
    table = [["2026-12-04 01:05\nalice", "abc1234 a long subject here\n→ def5678 another", "ok"]]
    headers, fixed = ["when", "from → to", "result"], [True, False, False]
    assert history.widths(table, headers, fixed, 200, [1, 1, 1]) == [16, 27, 6]
    got = history.widths(table, headers, fixed, 40, [1, 2, 1])
    assert got[0] == 16 and sum(got) + 3 * 3 + 1 <= 40 and got[1] >= 8
    # Never below a column's longest word (at most 8) or its header: a tiny terminal is
    # left to rich, which cuts evenly.
    assert history.widths(table, headers, fixed, 10, [1, 1, 1]) == [16, 7, 6]  # "abc1234"


def test_cells_are_text_so_server_text_is_never_markup():
    r = history.row({**DEPLOYED, "by": "[red]mallory[/]", "to_subject": "[bold]x"}, "web1")
    cells = history.cells(r, several=True)
    assert cells[0].plain.endswith("[red]mallory[/]") and cells[1].plain == "web1"
    assert "[bold]x" in cells[2].plain


@pytest.mark.parametrize(
    "rec",
    [
        {"steps": 5, "plan": 7, "snapshot": "x", "from": 1, "to": None, "command": 3},
        {"steps": {"a": 1}, "plan": {"a": 1}, "started": 12, "ended": []},
        {"started": "2026-12-04T01:00:00", "ended": "2026-12-04T01:00:05+00:00"},
        {"result": ["deployed"], "failed_step": {}, "by": 0},
        # Times that are not seconds: dropped, never a negative sum or a NaN in the JSON.
        {"steps": [["a", -3.0], ["b", float("nan")], ["c", float("inf")], ["d", True]]},
        {"steps": [["a", 10**400], ["b", -1]]},
    ],
)
def test_a_record_of_another_shape_is_a_row_never_an_error(rec):
    r = history.row(rec, "h")
    assert r["slowest"] is None and r["migrations_applied"] == [] and r["snapshot"] == ""
    assert history.merge({"h": [rec, DEPLOYED]}, 5)[0]["id"] == DEPLOYED["id"]
    history.cells(r, several=True)  # renders too
    assert r["seconds"] is None or r["seconds"] >= 0
    history.sparkline(history.deploy_durations([r]))
    json.dumps(r, allow_nan=False)
