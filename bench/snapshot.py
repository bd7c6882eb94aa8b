"""Benchmark: the cost of a consistent database snapshot (tasks/remote/snapshot.py `dump`), on a
~100 MB sqlite database and on a lab-size one, against `cp` of the database file measured in
the same run (not consistent while the site writes, but the floor: one read, one write).

    .venv/bin/python bench/snapshot.py [--runs 5] [--rows 100000]

The databases are built once and cached under /var/tmp/cynow-bench-snapshot (the lab-size one
by the lab app's own `manage.py migrate`, a few orders inserted). Each run, on a warm page
cache: `cp` of the file, then the program's dump as the deploy tool runs it (`python -B -c
SOURCE dump`, cwd the project, DJANGO_SETTINGS_MODULE set) into a file. Measured: wall seconds,
bytes written, the child's max RSS. No lab, no network.

    sudo .venv/bin/python bench/snapshot.py --lab 3

adds the lab's own database on lab host 3 over real SSH: `fab backup` (the whole task's wall
time and the dump time it measured on the server) against `cp` of the database file there over
one `ssh`, interleaved. Run by hand, never as a test. Results: bench/results/snapshot.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from loopback import REPO  # noqa: E402  (first: the network guard)

from tasks import programs  # noqa: E402

CACHE = Path("/var/tmp/cynow-bench-snapshot")
MARK = "CYNOW-SNAPSHOT "
TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def build_big(rows: int) -> tuple[Path, str, Path]:
    """A project whose database is one table of `rows` rows of ~1 KB text (about 100 MB)."""
    proj = CACHE / f"big-{rows}"
    db = proj / "db.sqlite3"
    if not (proj / "ready").exists():
        shutil.rmtree(proj, ignore_errors=True)
        (proj / "cfg").mkdir(parents=True)
        (proj / "cfg" / "__init__.py").write_text("")
        (proj / "cfg" / "settings.py").write_text(
            f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
            f"'NAME': {str(db)!r}}}}}\n"
        )
        print(f"bench: building {db} ({rows} rows)", file=sys.stderr)
        with sqlite3.connect(db) as c:
            c.execute(
                "create table payloads (id integer primary key, created text, body text not null)"
            )
            for start in range(0, rows, 10_000):
                batch = range(start, min(start + 10_000, rows))
                c.executemany(
                    "insert into payloads (created, body) values (datetime('now'), ?)",
                    [(base64.b64encode(os.urandom(690)).decode(),) for _ in batch],
                )
        c.close()
        (proj / "ready").touch()
    return proj, "cfg.settings", db


def build_lab() -> tuple[Path, str, Path]:
    """The lab app, migrated by Django itself, with the few orders a lab host holds."""
    proj = CACHE / "lab" / "app"
    db = proj / "db.sqlite3"
    if not (proj.parent / "ready").exists():
        shutil.rmtree(proj.parent, ignore_errors=True)
        shutil.copytree(REPO / "tests/lab/app", proj, ignore=shutil.ignore_patterns("db.sqlite3*"))
        (proj / ".env").write_text("DJANGO_SECRET_KEY=bench-only-not-a-secret\n")
        print(f"bench: building {db} (manage.py migrate)", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-B", "manage.py", "migrate", "-v", "0"],
            cwd=proj,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "CYNOW_DJANGO_LOG": str(proj.parent / "django.log"),
            },
            check=True,
        )
        with sqlite3.connect(db) as c:
            c.executemany(
                "insert into orders_order (customer, quantity, created) "
                "values (?, ?, datetime('now'))",
                [(f"customer {i}", i) for i in range(1, 6)],
            )
        c.close()
        (proj.parent / "ready").touch()
    return proj, "config.settings", db


def measured(argv: list[str], cwd: Path, out: Path, env: dict | None = None) -> dict:
    """One run of argv, its stdout into `out`: wall seconds, bytes, its max RSS (KiB), stderr.
    The RSS comes from GNU time's %M: measured from this process (os.wait4, or the delta of
    RUSAGE_CHILDREN) it would include this Python's own ~30 MB, copied at the fork."""
    rss_file = out.with_suffix(".rss")
    timed = [TIME, "-f", "%M", "-o", str(rss_file), *argv] if TIME else argv
    with open(out, "wb") as f, open(out.with_suffix(".err"), "w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(timed, cwd=cwd, stdout=f, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read()
    out.with_suffix(".err").unlink()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {argv[0]} failed: {stderr.decode().strip()}")
    rss = usage.ru_maxrss  # an upper bound, without GNU time
    if TIME:
        rss = int(rss_file.read_text().split()[-1])
        rss_file.unlink()
    return {"seconds": seconds, "bytes": out.stat().st_size, "rss_kib": rss, "stderr": stderr}


def one_run(proj: Path, module: str, db: Path, work: Path) -> dict:
    cp = measured(["cp", str(db), str(work / "cp.sqlite3")], proj, work / "cp.out")
    cp["bytes"] = (work / "cp.sqlite3").stat().st_size
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": module}
    argv = [sys.executable, "-B", "-c", programs.source("snapshot"), "dump"]
    dump = measured(argv, proj, work / "dump.snap", env)
    lines = [ln for ln in dump.pop("stderr").decode().splitlines() if ln.startswith(MARK)]
    done = json.loads(lines[-1][len(MARK) :])
    assert done["bytes"] == dump["bytes"], (done, dump)
    dump["program_seconds"] = done["seconds"]  # inside the program: without interpreter start
    cp.pop("stderr")
    for f in work.iterdir():
        f.unlink()
    return {"cp": cp, "dump": dump}


def on_lab(runs: int, n: int) -> dict:
    from loopback import ready_lab

    from tests.lab.helpers import APP, LabHost, fab_json, lab_args

    lab = ready_lab()
    host = LabHost(lab.reset(n))
    out = {"fab_backup": [], "ssh_cp": []}
    try:
        for _ in range(runs):
            t0 = time.monotonic()
            doc, r = fab_json(*lab_args(host), "backup", "--target", "lab")
            wall = time.monotonic() - t0
            if r.returncode != 0:
                raise SystemExit(f"bench: fab backup failed: {r.stderr.strip()[-300:]}")
            snap = doc["snapshot"]
            out["fab_backup"].append(
                {"wall": wall, "dump_seconds": snap["seconds"], "bytes": snap["bytes"]}
            )
            t0 = time.monotonic()
            host.sh(f"cp {APP}/db.sqlite3 /tmp/copy.sqlite3 && rm /tmp/copy.sqlite3")
            out["ssh_cp"].append({"wall": time.monotonic() - t0})
    finally:
        lab.down(n)
    return out


def med(runs: list[dict], variant: str, key: str):
    values = [r[variant][key] for r in runs if r[variant].get(key) is not None]
    return statistics.median(values) if values else None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rows", type=int, default=100_000, help="rows of ~1 KB in the big database")
    p.add_argument("--lab", type=int, default=0, help="also `fab backup` on this lab host")
    args = p.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    databases = {"big": build_big(args.rows), "lab": build_lab()}
    results = {}
    try:
        for name, (proj, module, db) in databases.items():
            runs = [one_run(proj, module, db, work) for _ in range(args.runs)]
            results[name] = {"db": str(db), "db_bytes": db.stat().st_size, "runs": runs}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"medians of {args.runs} runs (warm page cache)")
    head = f"{'database':<10}{'db MB':>9}  {'variant':<8}{'seconds':>9}{'in program':>12}"
    print(f"{head}{'MB out':>9}{'MB/s':>8}{'max RSS MB':>12}{'x cp':>7}")
    medians = {}
    for name, res in results.items():
        medians[name] = {}
        for variant in ("cp", "dump"):
            m = {k: med(res["runs"], variant, k) for k in res["runs"][0][variant]}
            medians[name][variant] = m
            rss = f"{m['rss_kib'] / 1024:.1f}" if m["rss_kib"] else "?"
            inside = f"{m['program_seconds']:.3f}" if "program_seconds" in m else "-"
            ratio = m["seconds"] / medians[name]["cp"]["seconds"]
            print(
                f"{name:<10}{res['db_bytes'] / 1e6:>9.2f}  {variant:<8}{m['seconds']:>9.3f}"
                f"{inside:>12}{m['bytes'] / 1e6:>9.2f}{m['bytes'] / 1e6 / m['seconds']:>8.0f}"
                f"{rss:>12}{ratio:>7.1f}"
            )
    doc = {"runs_each": args.runs, "medians": medians, "databases": results}
    if args.lab:
        lab = on_lab(args.runs, args.lab)
        m = {
            "fab_backup_wall": statistics.median(x["wall"] for x in lab["fab_backup"]),
            "dump_seconds": statistics.median(x["dump_seconds"] for x in lab["fab_backup"]),
            "bytes": statistics.median(x["bytes"] for x in lab["fab_backup"]),
            "ssh_cp_wall": statistics.median(x["wall"] for x in lab["ssh_cp"]),
        }
        print(
            f"lab host {args.lab}: fab backup {m['fab_backup_wall']:.3f} s wall (dump on the "
            f"server {m['dump_seconds']:.3f} s, {m['bytes'] / 1024:.0f} KB); ssh + cp "
            f"{m['ssh_cp_wall']:.3f} s"
        )
        doc["lab"] = {"medians": m, "runs": lab}
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "snapshot.json").write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
