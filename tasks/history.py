"""The deploy history on the server (STATE_DIR/history.jsonl, root's): one JSON record a line,
written by tasks/remote/history_append.py (one write, rotated past KEEP records into gzip
archives), read back line by line with a torn line skipped, never fatal."""

from __future__ import annotations

import json as jsonlib

from tasks import programs
from tasks.shell import q

KEEP = 1000  # records in the file; older ones are archived beside it


def path(state_dir: str) -> str:
    return state_dir.rstrip("/") + "/history.jsonl"


def append(state_dir: str, line: str, keep: int = KEEP) -> str:
    """Append one record, as root with the system python; exit 1 when it was not written."""
    program = "\n".join(
        [
            f"PATH = {path(state_dir)!r}",
            f"LINE = {line!r}",
            f"KEEP = {int(keep)}",
            programs.source("history_append"),
        ]
    )
    return f"python3 -I -B -c {q(program)}"


def read(state_dir: str, n: int = KEEP) -> str:
    """The last `n` lines (none: no history yet)."""
    return f"tail -n {int(n)} {q(path(state_dir))} 2>/dev/null; true"


def parse(text: str) -> tuple[list[dict], int]:
    """The history's records, and how many lines were not readable (skipped, never fatal: one
    torn line must not make every later rollback impossible)."""
    out, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = jsonlib.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(rec, dict):
            out.append(rec)
        else:
            bad += 1
    return out, bad


def record_id(rec: dict) -> str:
    return str(rec.get("id") or rec.get("started") or "")
