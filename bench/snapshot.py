"""Benchmark: what a database snapshot costs (time, size, memory), against copying the file.

    sudo .venv/bin/python bench/snapshot.py [--runs 5] [--mb 100] [--host 3]

1. A ~100 MB sqlite database on this machine (built once under /var/tmp): the snapshot program
   (tasks/remote/snapshot.py `dump`, the sqlite online backup API, as a deploy runs it) against
   `cp` of the file (not consistent while written to, but the floor), interleaved, same run.
2. The lab database, on a pristine lab host over real SSH: `fab backup` (its own measured dump
   time, and the whole task's wall time) against `cp` of the file on the host over one `ssh`.
Medians over --runs. Results: bench/results/snapshot.json. Run by hand, never as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from loopback import REPO, ready_lab  # noqa: E402  (first: the network guard)

from tasks import programs  # noqa: E402
from tests.lab.helpers import APP, LabHost, fab_json, lab_args  # noqa: E402

CACHE = Path("/var/tmp/cynow-bench-snapshot")


def big_db(mb: int) -> Path:
    proj = CACHE / "proj"
    db = CACHE / f"db-{mb}mb.sqlite3"
    (proj / "cfg").mkdir(parents=True, exist_ok=True)
    (proj / "cfg" / "__init__.py").write_text("")
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}
    (proj / "cfg" / "settings.py").write_text(f"DATABASES = {{'default': {database!r}}}\n")
    if not db.exists():
        tmp = db.with_suffix(".partial")
        tmp.unlink(missing_ok=True)
        with sqlite3.connect(tmp) as c:
            c.execute("create table orders (id integer primary key, customer text, note text)")
            row = ("customer", "n" * 1000)
            for _ in range(mb):  # ~1 MB per batch
                c.executemany("insert into orders (customer, note) values (?, ?)", [row] * 1000)
        tmp.rename(db)
    return db


def timed(argv: list[str], **kw) -> tuple[float, int, int]:
    """Wall seconds, bytes on stdout, and this child's own max RSS in KB (os.wait4: the
    children's rusage of getrusage would be the largest child so far)."""
    with open(CACHE / "stdout", "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {argv[0]} failed (exit {proc.returncode})")
    return seconds, (CACHE / "stdout").stat().st_size, usage.ru_maxrss


def local(runs: int, mb: int) -> dict:
    db = big_db(mb)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cfg.settings"}
    out = {"db_bytes": db.stat().st_size, "dump": [], "cp": []}
    for _ in range(runs):
        s, n, rss = timed(
            [sys.executable, "-B", "-c", programs.source("snapshot"), "dump"],
            cwd=CACHE / "proj",
            env=env,
        )
        out["dump"].append({"seconds": round(s, 3), "bytes": n, "max_rss_kb": rss})
        dest = CACHE / "copy.sqlite3"
        s, _, rss = timed(["cp", str(db), str(dest)])
        dest.unlink()
        out["cp"].append({"seconds": round(s, 3), "max_rss_kb": rss})
    return out


def lab_db(runs: int, n: int) -> dict:
    lab = ready_lab()
    host = LabHost(lab.reset(n))
    out = {"fab_backup": [], "ssh_cp": []}
    for _ in range(runs):
        t0 = time.monotonic()
        doc, r = fab_json(*lab_args(host), "backup", "--target", "lab")
        wall = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        snap = doc["snapshot"]
        out["fab_backup"].append(
            {"wall": round(wall, 3), "dump_seconds": snap["seconds"], "bytes": snap["bytes"]}
        )
        t0 = time.monotonic()
        host.sh(f"cp {APP}/db.sqlite3 /tmp/copy.sqlite3 && rm /tmp/copy.sqlite3")
        out["ssh_cp"].append({"wall": round(time.monotonic() - t0, 3)})
    lab.down(n)
    return out


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--mb", type=int, default=100)
    p.add_argument("--host", type=int, default=3)
    p.add_argument("--no-lab", action="store_true", help="only the local 100 MB database")
    args = p.parse_args()
    result = {"local": local(args.runs, args.mb)}
    loc = result["local"]
    print(f"sqlite {loc['db_bytes'] / 2**20:.0f} MB, {args.runs} runs (medians):")
    print(
        f"  snapshot program dump  {med(loc['dump'], 'seconds'):.3f} s, "
        f"{med(loc['dump'], 'bytes') / 2**20:.1f} MB, max RSS "
        f"{med(loc['dump'], 'max_rss_kb') / 1024:.0f} MB"
    )
    print(f"  cp of the file         {med(loc['cp'], 'seconds'):.3f} s")
    print(
        f"  ratio                  {med(loc['dump'], 'seconds') / med(loc['cp'], 'seconds'):.2f}x"
    )
    if not args.no_lab:
        result["lab"] = lab_db(args.runs, args.host)
        lab = result["lab"]
        print(f"lab database, {args.runs} runs (medians):")
        print(
            f"  fab backup             {med(lab['fab_backup'], 'wall'):.3f} s wall, dump "
            f"{med(lab['fab_backup'], 'dump_seconds'):.3f} s, "
            f"{med(lab['fab_backup'], 'bytes') / 1024:.0f} KB"
        )
        print(f"  ssh + cp of the file   {med(lab['ssh_cp'], 'wall'):.3f} s wall")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "snapshot.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
