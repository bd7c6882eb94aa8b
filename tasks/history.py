"""The deploy history on the server (STATE_DIR/history.jsonl, root's): one JSON record a line,
written by tasks/remote/history_append.py (one write, rotated past KEEP records into gzip
archives), read back line by line with a torn line skipped, never fatal."""

from __future__ import annotations

import json as jsonlib
import math
from datetime import UTC, datetime

from fabric import task
from invoke.exceptions import Exit

from tasks import programs
from tasks.common import COMMON_HELP, PARALLEL_HELP, console, guarded, load, print_json
from tasks.connect import describe
from tasks.fleet import Fleet, parse_parallel
from tasks.settings import whole_number
from tasks.shell import q

KEEP = 1000  # records in the file; older ones are archived beside it


def path(state_dir: str) -> str:
    return state_dir.rstrip("/") + "/history.jsonl"


def append(state_dir: str, keep: int = KEEP) -> str:
    """Append the record read from stdin (one line: `stdin(line)`), as root with the system
    python; exit 1 when it was not written. The record is never in the command line: argv is
    world-readable in `ps` and capped by the kernel (a deploy's plan can be long)."""
    program = "\n".join(
        [
            f"PATH = {path(state_dir)!r}",
            f"KEEP = {int(keep)}",
            programs.source("history_append"),
        ]
    )
    return f"python3 -I -B -c {q(program)}"


def stdin(line: str) -> str:
    """A record as append's input: one line and its newline (the writer reads up to it and
    refuses a line that ends without one: an input cut short)."""
    line = line.rstrip("\n")
    if "\n" in line or "\r" in line:
        raise ValueError("a history record must be one line")
    return line + "\n"


def read(state_dir: str, n: int = KEEP) -> str:
    """The last `n` lines (none: no history yet)."""
    return f"tail -n {int(n)} {q(path(state_dir))} 2>/dev/null; true"


def _not_json(name: str):
    """Python's json reads NaN and Infinity, which are not JSON: such a line is unreadable
    (passed on, it would make `--json` print invalid JSON)."""
    raise ValueError(f"{name} is not JSON")


def parse(text: str) -> tuple[list[dict], int]:
    """The history's records, and how many lines were not readable (skipped, never fatal: one
    torn line must not make every later rollback impossible)."""
    out, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = jsonlib.loads(line, parse_constant=_not_json)
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


# ---- `fab history`: the records read back as rows, several hosts merged by time ----------

SCHEMA = "cynow-ops.history.v1"
SPARKS = "▁▂▃▄▅▆▇█"


def _when(rec: dict, key: str = "started") -> datetime | None:
    """A record's time (naive: read as UTC), or None when it is not one."""
    try:
        t = datetime.fromisoformat(str(rec.get(key) or ""))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _list(value) -> list:
    """A field that should be a list: a record of another shape is shown, never fatal."""
    return value if isinstance(value, list) else []


def _seconds(rec: dict) -> float | None:
    """The run's duration: its steps' sum (hundredths), else ended - started (whole seconds)."""
    steps = _steps(rec)
    if steps:
        return round(sum(s for _, s in steps), 2)
    start, end = _when(rec), _when(rec, "ended")
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _steps(rec: dict) -> list[tuple[str, float]]:
    """The (step, seconds) pairs; a time that is not a finite number of seconds >= 0 (a record
    parsed elsewhere, a hand edit) is left out: it would make the sums and the trend nonsense."""
    out = []
    for entry in _list(rec.get("steps")):
        if isinstance(entry, list | tuple) and len(entry) == 2:
            name, secs = entry
            if not isinstance(secs, int | float) or isinstance(secs, bool):
                continue
            try:
                secs = float(secs)
            except OverflowError:  # an integer of 400 digits
                continue
            if math.isfinite(secs) and secs >= 0:
                out.append((str(name), secs))
    return out


def outcome(rec: dict) -> str:
    """What happened, in words: deployed, rolled back at step X, rollback-failed at step X,
    refused at step X, rolled back (a `fab rollback`), restored..."""
    result, step = str(rec.get("result") or "?"), str(rec.get("failed_step") or "")
    at = f" at {step}" if step else ""
    command = str(rec.get("command") or "deploy")
    if result == "rolled-back":
        return f"rolled back{at}"
    if command == "rollback":
        return {"rollback": "rollback done", "refused": "rollback refused"}.get(
            result, f"{result}{at}"
        )
    if result in ("rollback-failed", "refused", "restore-failed"):
        return f"{result}{at}"
    return result


def _migrations(rec: dict) -> tuple[list[str], list[str]]:
    """(applied, reversed) by this run: a deployed deploy applied its plan; a deploy rolled
    back after its migrate, or a `fab rollback` that ran `undo migrate`, reversed it."""
    names = [
        f"{m.get('app')}.{m.get('name')}" for m in _list(rec.get("plan")) if isinstance(m, dict)
    ]
    ran = {name for name, _ in _steps(rec)}
    if rec.get("command", "deploy") == "deploy" and rec.get("result") == "deployed":
        return names, []
    if "undo migrate" in ran:
        return [], names
    return [], []


def row(rec: dict, host: str = "") -> dict:
    """One record as the table's row and the JSON's entry (schema cynow-ops.history.v1). A
    rollback moved the server from the deploy's `to` back to its `from`: `from`/`to` here are
    always the way the server moved."""
    frm = {"commit": str(rec.get("from") or ""), "subject": str(rec.get("from_subject") or "")}
    to = {"commit": str(rec.get("to") or ""), "subject": str(rec.get("to_subject") or "")}
    if rec.get("command") == "rollback":
        frm, to = to, frm
    steps = _steps(rec)
    slow = max(steps, key=lambda s: s[1]) if steps else None
    applied, reversed_ = _migrations(rec)
    snap = rec.get("snapshot")
    return {
        "host": host,
        "id": record_id(rec),
        "started": str(rec.get("started") or ""),
        "ended": str(rec.get("ended") or ""),
        "by": str(rec.get("by") or ""),
        "command": str(rec.get("command") or "deploy"),
        "result": str(rec.get("result") or ""),
        "outcome": outcome(rec),
        "failed_step": str(rec.get("failed_step") or ""),
        "error": str(rec.get("error") or ""),
        "from": frm,
        "to": to,
        "seconds": _seconds(rec),
        "slowest": {"step": slow[0], "seconds": slow[1]} if slow else None,
        "migrations_applied": applied,
        "migrations_reversed": reversed_,
        "snapshot": str(snap.get("id") or "") if isinstance(snap, dict) else "",
        "undoes": str(rec.get("undoes") or ""),
        "snapshot_before": str(rec.get("before") or ""),  # a restore: the one taken first
    }


def merge(per_host: dict[str, list[dict]], n: int) -> list[dict]:
    """Every host's records as rows, newest first, the first `n`. Records without a readable
    time sort last; within one host the file's order (append order) breaks ties."""
    tagged = []
    for host, records in per_host.items():
        for i, rec in enumerate(records):
            t = _when(rec)
            tagged.append((t is not None, t or datetime.min.replace(tzinfo=UTC), i, host, rec))
    tagged.sort(key=lambda x: (x[0], x[1], x[2]), reverse=True)
    return [row(rec, host) for *_, host, rec in tagged[: max(0, n)]]


def sparkline(values: list[float]) -> str:
    """One block character a value, its height relative to the largest (▁ to █). A value
    that is not a finite number >= 0 is drawn as the lowest block, never an error."""
    values = [v if math.isfinite(v) and v >= 0 else 0.0 for v in values]
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    last = len(SPARKS) - 1
    return "".join(SPARKS[max(0, min(last, int(v / top * last + 0.5)))] for v in values)


def deploy_durations(rows: list[dict]) -> list[float]:
    """The shown deploys' durations, oldest first (the sparkline's order)."""
    return [
        r["seconds"]
        for r in reversed(rows)
        if r["command"] == "deploy" and r["seconds"] is not None
    ]


def document(rows: list[dict], hosts: list[dict], n: int) -> dict:
    """The --json document: every host's read (records, skipped lines, or its error), then the
    merged rows newest first."""
    code = max((int(h.get("exit_code") or 0) for h in hosts), default=0)
    return {"schema": SCHEMA, "exit_code": code, "n": n, "hosts": hosts, "records": rows}


def short(commit: dict) -> str:
    """`abc1234 subject` (the subject cut at 32), or `-`."""
    sha, subject = commit["commit"][:7], commit["subject"]
    if not sha:
        return "-"
    return f"{sha} {subject[:31] + '…' if len(subject) > 32 else subject}".rstrip()


# ---- the task -------------------------------------------------------------------------------

DEFAULT_N = 20


def gather(remote) -> dict:
    """One host's whole history file (at most KEEP records, so a skipped line anywhere is
    counted), as root: the file is root's."""
    out = remote.run(read(remote.settings.state_dir), root=True, timeout=60)
    records, bad = parse(out.stdout)
    return {"host": remote.name, "records": records, "skipped": bad}


def read_all(c, settings, parallel: int) -> tuple[dict[str, list[dict]], list[dict]]:
    """Every target host's records, read at once; one host: its connection error is the run's
    one-line error (exit 2), several: that host's entry, the others are shown."""
    fleet = Fleet.of(c, settings)
    results = fleet.each(gather, parallel)
    per_host, hosts = {}, []
    for cxn, value in results.items():
        if isinstance(value, Exception):  # OpsError: unreachable, sudo refused, a bug
            if len(fleet) == 1:
                raise value
            hosts.append(
                {"host": describe(cxn), "exit_code": int(value.code), "error": value.message}
            )
            continue
        per_host[value["host"]] = value["records"]
        hosts.append(
            {
                "host": value["host"],
                "exit_code": 0,
                "records": len(value["records"]),
                "skipped": value["skipped"],
            }
        )
    return per_host, hosts


RESULT_COLOUR = {"deployed": "green", "rollback": "cyan", "restored": "cyan", "up-to-date": "dim"}


def cells(r: dict, several: bool) -> list:
    """One row of the table as rich Text (built, not parsed from markup: 1,000 rows print in
    a fraction of the time)."""
    from rich.text import Text

    colour = RESULT_COLOUR.get(r["result"], "red" if "fail" in r["result"] else "yellow")
    when = Text(r["started"].replace("T", " ").replace("+00:00", "")[:16])
    when.append("\n" + r["by"], "dim")
    if r["command"] == "restore":
        moved = Text("(the database only)", "dim")
    else:
        moved = Text(f"{short(r['from'])}\n→ {short(r['to'])}")
    took = Text(f"{r['seconds']:.1f} s" if r["seconds"] is not None else "")
    slow = r["slowest"]
    if slow:
        took.append(f"\n{slow['step']} {slow['seconds']:.1f}s", "dim")
    # `app name`: wraps between the two in a narrow terminal.
    migrations = Text("\n".join(m.replace(".", " ", 1) for m in r["migrations_applied"]))
    for m in r["migrations_reversed"]:
        migrations.append(("\n" if migrations else "") + "↩ " + m.replace(".", " ", 1), "yellow")
    return [
        when,
        *([Text(r["host"])] if several else []),
        moved,
        Text(r["outcome"], colour),
        took,
        migrations,
        Text(r["snapshot"]),
    ]


def widths(
    table: list[list[str]], headers: list[str], fixed: list[bool], total: int, weight: list[int]
) -> list[int]:
    """Each column's width: its longest line; while the table (borders and padding included)
    is wider than `total`, the wrapping column widest for its weight loses one cell, never
    going below its longest word (at most 8) or its header's; a fixed column keeps its width.
    Done here from the plain text, so rich need not measure every cell (twice when the table
    does not fit): 1,000 rows print faster."""
    from rich.cells import cell_len

    def longest(text: str, sep: str | None = "\n") -> int:
        return max((cell_len(part) for part in text.split(sep)), default=0)

    out, floor = [], []
    for i, h in enumerate(headers):
        column = [row[i] for row in table]
        out.append(max([longest(h)] + [longest(x) for x in column]))
        word = max([0] + [longest(x, None) for x in column])
        floor.append(max(longest(h, None), min(8, word)))
    room = total - (3 * len(headers) + 1)  # a border and two padding cells a column, one more
    while sum(out) > room:
        narrowable = [i for i, w in enumerate(out) if not fixed[i] and w > floor[i]]
        if not narrowable:
            break
        out[max(narrowable, key=lambda i: out[i] / weight[i])] -= 1
    return out


def render(rows: list[dict], hosts: list[dict], path_: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = console()
    several = len(hosts) > 1
    names = ", ".join(h["host"] for h in hosts)
    # (header, fixed, weight): the commits keep their room longest when the table must narrow.
    columns = [("when (UTC)\nwho", True, 1)] + ([("host", True, 1)] if several else [])
    columns += [
        ("from → to", False, 2),
        ("result", False, 1),
        ("time\nslowest", False, 1),
        ("migrations", False, 1),
        ("snapshot", True, 1),  # what `fab restore` takes: never cut
    ]
    body = [cells(r, several) for r in rows]
    sizes = widths(
        [[x.plain for x in row] for row in body],
        [h for h, _, _ in columns],
        [f for _, f, _ in columns],
        c.width,
        [w for _, _, w in columns],
    )
    t = Table(title=f"cynow-ops history: {escape(names)}", title_justify="left")
    for (header, fixed, _), size in zip(columns, sizes, strict=True):
        t.add_column(header, width=size, no_wrap=fixed)
    for row in body:
        t.add_row(*row)
    if rows:
        c.print(t)
    durations = deploy_durations(rows)
    if durations:
        c.print(
            f"deploy durations, oldest → newest: {sparkline(durations)}  "
            f"({min(durations):.1f}–{max(durations):.1f} s, {len(durations)} "
            f"deploy{'s' if len(durations) != 1 else ''})"
        )
    for h in hosts:
        if h.get("error"):
            said = h["error"] if h["host"] in h["error"] else f"{h['host']}: {h['error']}"
            c.print(f"[red]{escape(said)}[/]")
        elif not h["records"]:
            c.print(f"{escape(h['host'])}: no deploy recorded yet (nothing in {escape(path_)})")
        if h.get("skipped"):
            c.print(
                f"[yellow]warning: {escape(h['host'])}: {h['skipped']} unreadable line(s) in "
                f"{escape(path_)} skipped[/]"
            )


@task(
    help={
        **COMMON_HELP,
        **PARALLEL_HELP,
        "n": f"show the newest N records (default {DEFAULT_N}; several hosts: N in all)",
    }
)
@guarded
def history(c, target=None, json=False, n=None, parallel=None):
    """Show the deploy history: who deployed what when, and how it ended (newest first).

    Read-only: every deploy, rollback and restore recorded on the server, with the commits
    (from -> to), the result (deployed, rolled back at step X, rollback-failed...), the
    duration and slowest step, the migrations applied or reversed, the snapshot taken; a trend
    of deploy durations. Several hosts are merged by time, with a host column. An unreadable
    line is counted and skipped. Exit codes: 0 shown, 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    count = whole_number("-n", n, DEFAULT_N)
    per_host, hosts = read_all(c, settings, parse_parallel(parallel))
    rows = merge(per_host, count)
    doc = document(rows, hosts, count)
    if json:
        print_json(doc)
    else:
        render(rows, hosts, path(settings.state_dir))
    if doc["exit_code"]:
        raise Exit(code=doc["exit_code"])
