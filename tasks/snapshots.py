"""Database snapshots: taken before every change to the database (deploy, rollback, repair,
restore), kept root-only under STATE_DIR/snapshots, the last `snapshots_keep` of them.

    STATE_DIR/snapshots/ID.snap   the snapshot (sqlite: a database file made with sqlite's
                                  online backup API; PostgreSQL: `pg_dump -Fc`), mode 0600
    STATE_DIR/snapshots/ID.json   two JSON lines: what the client recorded (id, time, reason,
                                  deploy, commit), then what tasks/remote/snapshot.py measured
                                  (engine, bytes, seconds, row counts per table)

The database is read by tasks/remote/snapshot.py as the app user, with the app's settings, so
the snapshot is of the database the service uses; what it writes to its stdout goes straight
into a file only root can read.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tasks import programs, service, shell
from tasks.settings import Settings
from tasks.shell import batch, q

MARK = "CYNOW-SNAPSHOT "
HEADROOM = 1.2  # a snapshot may come out a little larger than the live file (sqlite pages)
MIN_FREE = 64 * 1024 * 1024


class SnapshotError(Exception):
    """A snapshot could not be taken or restored: the change it would have preceded is off."""


def new_id(now: datetime | None = None) -> str:
    """Sortable by time, unique, and safe in a file name."""
    t = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{t}-{secrets.token_hex(3)}"


def folder(s: Settings) -> str:
    return f"{s.state_dir}/snapshots"


def settings_module(s: Settings) -> str:
    return s.wsgi.split(".")[0] + ".settings"


def program(s: Settings, mode: str, timeout: int = 3600) -> str:
    """tasks/remote/snapshot.py in `mode`, in the project, as the service runs (its user and
    environment: the database an EnvironmentFile names is the one snapshotted); the settings
    module is the unit's DJANGO_SETTINGS_MODULE when it sets one. For a root script."""
    return service.as_service(
        s.gunicorn_unit,
        s.app_user,
        f"cd {q(s.project_dir)} && "
        f'DJANGO_SETTINGS_MODULE="${{DJANGO_SETTINGS_MODULE:-{settings_module(s)}}}" '
        f"timeout {int(timeout)} {q(s.python)} -B -c {q(programs.source('snapshot'))} {q(mode)}",
    )


def measure_script(s: Settings) -> str:
    """As root: the database's engine and size, and the free bytes where snapshots go."""
    d = folder(s)
    return batch(
        {
            "info": program(s, "info", timeout=120),
            "free": f"mkdir -p {q(d)} && chmod 700 {q(d)} && "
            f"df --output=avail -B1 {q(d)} | tail -n 1",
        }
    )


def dump_script(s: Settings, snap_id: str, meta: dict) -> str:
    """As root: the snapshot into ID.snap (0600, written under a temporary name and renamed
    once complete), its record into ID.json, the oldest beyond `snapshots_keep` removed. Prints
    the program's measurement; exits with the program's status when it fails."""
    d = folder(s)
    base = f"{d}/{snap_id}"
    return "\n".join(
        [
            "umask 077",
            f"mkdir -p {q(d)} && chmod 700 {q(d)} || exit 1",
            f"printf '%s\\n' {q(json.dumps(meta))} > {q(base + '.json.partial')} || exit 1",
            f"{program(s, 'dump')} > {q(base + '.snap.partial')} 2> {q(base + '.err')}",
            "rc=$?",
            'if [ "$rc" -ne 0 ]; then',
            f"  cat {q(base + '.err')} >&2",
            f"  rm -f {q(base + '.snap.partial')} {q(base + '.json.partial')} {q(base + '.err')}",
            '  exit "$rc"',
            "fi",
            f"grep '^{MARK}' {q(base + '.err')} | tail -n 1 | cut -c{len(MARK) + 1}- "
            f">> {q(base + '.json.partial')}",
            f"mv -f {q(base + '.snap.partial')} {q(base + '.snap')} && "
            f"mv -f {q(base + '.json.partial')} {q(base + '.json')} && rm -f {q(base + '.err')}",
            f"tail -n 1 {q(base + '.json')}",
            # The oldest go first; names sort by time.
            f"ls -1 {q(d)} | grep '\\.json$' | sort -r | tail -n +{int(s.snapshots_keep) + 1} | "
            "while IFS= read -r f; do "
            f'rm -f -- {q(d)}/"$f" {q(d)}/"${{f%.json}}.snap"; done',
            "true",
        ]
    )


def list_script(s: Settings) -> str:
    """Every snapshot's record, one line each: ID, a tab, its JSON lines joined by tabs."""
    d = folder(s)
    return (
        f'[ -d {q(d)} ] || exit 0; for f in {q(d)}/*.json; do [ -f "$f" ] || continue; '
        "b=${f##*/}; printf '%s\\t' \"${b%.json}\"; tr '\\n' '\\t' < \"$f\"; echo; done"
    )


def restore_script(s: Settings, snap_id: str) -> str:
    """As root: snapshot ID fed to the program's restore (exit 4 when there is no such one)."""
    path = f"{folder(s)}/{snap_id}.snap"
    return f"[ -f {q(path)} ] || exit 4\n{program(s, 'restore')} < {q(path)}"


def counts_script(s: Settings) -> str:
    return program(s, "counts", timeout=300)


@dataclass
class Snapshot:
    id: str
    taken: str = ""
    reason: str = ""
    deploy: str = ""
    commit: str = ""
    engine: str = ""
    bytes: int = 0
    seconds: float = 0.0
    tables: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def read_mark(text: str) -> dict:
    """The program's last CYNOW-SNAPSHOT line, or {}."""
    for line in reversed(text.splitlines()):
        if line.startswith(MARK):
            try:
                return json.loads(line[len(MARK) :])
            except ValueError:
                return {}
    return {}


def read_list(stdout: str) -> list[Snapshot]:
    """The records of list_script, newest first; a record that does not parse is kept with
    its id only (its file may still be restorable)."""
    out = []
    for line in stdout.splitlines():
        snap_id, _, rest = line.partition("\t")
        if not snap_id:
            continue
        record: dict = {}
        for piece in rest.split("\t"):
            try:
                value = json.loads(piece) if piece.strip() else {}
            except ValueError:
                continue
            if isinstance(value, dict):
                record.update(value)
        out.append(from_record(snap_id, record))
    return sorted(out, key=lambda x: x.id, reverse=True)


def from_record(snap_id: str, r: dict) -> Snapshot:
    return Snapshot(
        id=snap_id,
        taken=str(r.get("taken", "")),
        reason=str(r.get("reason", "")),
        deploy=str(r.get("deploy", "")),
        commit=str(r.get("commit", "")),
        engine=str(r.get("engine", "")),
        bytes=int(r.get("bytes") or 0),
        seconds=float(r.get("seconds") or 0),
        tables=r.get("tables") if isinstance(r.get("tables"), dict) else {},
    )


def room(info: dict, free_text: str) -> str:
    """Why a snapshot would not fit, or "" when it does. Unknown sizes refuse: a guess could
    fill the disk the database itself lives on."""
    size = info.get("bytes")
    free = free_text.strip()
    if not free.isdigit():
        return "cannot read the free space under the snapshot folder"
    if not isinstance(size, int):
        if info.get("engine") == "postgresql":
            return ""  # pg_dump -Fc is compressed; free space is still checked below
        return "cannot read the size of the database"
    need = int(size * HEADROOM) + MIN_FREE
    if int(free) < need:
        return f"needs about {human(need)}, {human(int(free))} free"
    return ""


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def take(remote, s: Settings, reason: str, deploy: str = "", commit: str = "") -> Snapshot:
    """A snapshot now: the size and free space first (refused when it would not fit), then the
    dump. Raises SnapshotError, having changed nothing but a failed partial file removed."""
    parts = shell.read_batch(remote.run(measure_script(s), root=True, timeout=180).stdout)
    info_text, info_code = parts.get("info", ("", 255))
    info = read_mark(info_text)
    if info_code != 0 or not info:
        last = (info_text.strip().splitlines() or ["no answer"])[-1]
        raise SnapshotError(f"cannot read the database the app uses: {last}")
    why = room(info, parts.get("free", ("", 255))[0])
    if why:
        raise SnapshotError(f"no room for a snapshot under {folder(s)}: {why}")
    snap_id = new_id()
    meta = {"taken": now(), "reason": reason, "deploy": deploy, "commit": commit}
    out = remote.run(dump_script(s, snap_id, meta), root=True, timeout=3700)
    if not out.ok:
        last = (out.stderr.strip().splitlines() or [f"exit {out.exited}"])[-1]
        raise SnapshotError(f"the snapshot failed: {last}")
    measured = {}
    try:
        measured = json.loads(out.stdout.strip().splitlines()[0])
    except (ValueError, IndexError):
        pass
    return from_record(snap_id, {**meta, **info, **measured})


def listing(remote, s: Settings) -> list[Snapshot]:
    out = remote.run(list_script(s), root=True, timeout=60)
    if not out.ok:
        raise SnapshotError(f"cannot list {folder(s)}: {out.stderr.strip()[-200:]}")
    return read_list(out.stdout)


def restore(remote, s: Settings, snap_id: str) -> dict:
    out = remote.run(restore_script(s, snap_id), root=True, timeout=3700)
    if out.exited == 4:
        raise SnapshotError(f"no snapshot {snap_id} under {folder(s)}: `fab backup --list`")
    if not out.ok:
        last = (out.stderr.strip().splitlines() or [f"exit {out.exited}"])[-1]
        raise SnapshotError(f"restoring {snap_id} failed: {last}")
    return read_mark(out.stderr)


def counts(remote, s: Settings) -> dict:
    out = remote.run(counts_script(s), root=True, timeout=360)
    return read_mark(out.stdout).get("tables", {}) if out.ok else {}


def discarded(snapshot_tables: dict, now_tables: dict) -> list[tuple[str, int, int]]:
    """Tables whose row count differs between a snapshot and now: (table, then, now). What a
    restore would take back (rows added since are lost, rows removed come back)."""
    names = sorted(set(snapshot_tables) | set(now_tables))
    return [
        (t, int(snapshot_tables.get(t, 0)), int(now_tables.get(t, 0)))
        for t in names
        if snapshot_tables.get(t, 0) != now_tables.get(t, 0)
    ]


def summary(snap: Snapshot) -> str:
    return f"{snap.id}: {human(snap.bytes)} in {snap.seconds:.2f} s ({snap.engine or '?'})"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
