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


def append(state, line, keep=history.KEEP):
    return subprocess.run(
        ["sh", "-c", history.append(str(state), line, keep)], capture_output=True, text=True
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
    out = append(tmp_path, '{"a": 1}\n{"b": 2}')
    assert out.returncode == 1 and not (tmp_path / "history.jsonl").exists()


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


@pytest.mark.parametrize("text", ["", "\n\n", "[1, 2]\nnot json\n"])
def test_parse_never_fails(text):
    records, bad = history.parse(text)
    assert records == [] and bad == (2 if "json" in text else 0)
