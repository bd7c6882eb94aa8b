"""Benchmark: `fab history` on a history of 1,000 records (the most the file keeps) against
`cat` of the same file, measured in the same run (issue #14: the time to print, as a ratio).

    sudo .venv/bin/python bench/history_speed.py [--runs 7] [--host 6]

The lab host is reset, deployed once for real (a release with a migration and its snapshot),
and its history filled to 1,000 records made from that real record (deployed, rolled back at a
step, rollbacks; different ids, times and durations). Two comparisons, interleaved:

- whole commands: `fab history -n 1000` (the table, 120 columns, into a pipe), its `--json` and
  the everyday `fab history` (the newest 20 of the same file), against `sudo cat` of the file
  through one plain `ssh` (a new process and connection each);
- over one SSH connection opened once: `cat` of the file as the tool runs it (Remote.run, as
  root), against the task's own work on that connection: the read, parse, merge and the table
  rendered (into memory), without the process start and the handshake.

Run by hand, never as a test; figures go in the README. Results: bench/results/history_speed.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from loopback import REPO, ready_lab  # noqa: E402  (first: the network guard)

from tasks import history  # noqa: E402
from tasks.shell import q  # noqa: E402
from tests.lab import lab  # noqa: E402
from tests.lab.helpers import LabHost, deploy_notes, fab_argv  # noqa: E402

RECORDS = history.KEEP


def fill(host: LabHost, n: int) -> None:
    """The history made of n records cloned from the host's one real deploy record."""
    path = history.path("/var/lib/cynow-ops")
    real = json.loads(host.sh(f"tail -n 1 {q(path)}").stdout)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    lines = []
    for i in range(n):
        t = start + timedelta(hours=6 * i)
        rec = {**real, "id": f"bench-{i:04d}", "started": t.isoformat(), "ended": t.isoformat()}
        rec["steps"] = [[s, round(sec * (1 + (i % 7) / 10), 2)] for s, sec in real["steps"]]
        if i % 10 == 3:
            rec.update(result="rolled-back", failed_step="health", error="health gate: 500")
        if i % 10 == 4:
            rec.update(command="rollback", result="rollback", undoes=f"bench-{i - 2:04d}")
        lines.append(json.dumps(rec))
    subprocess.run(
        host.ssh_argv("root")
        + [
            f"cat > {q(path + '.new')} && chmod 600 {q(path + '.new')} && "
            f"mv {q(path + '.new')} {q(path)}"
        ],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
    )
    got = int(host.sh(f"wc -l < {q(path)}").stdout)
    assert got == n, got


def timed(argv: list[str], env: dict | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, text=True, capture_output=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({r.returncode}): {r.stderr[-500:]}")
    return elapsed, r.stdout


def one_connection(host: LabHost, n: int):
    """Remote (the tool's runner) on one connection; the two in-process measurements."""
    import yaml
    from fabric import Config
    from rich.console import Console

    from tasks.connect import make_connection
    from tasks.runner import Remote
    from tasks.settings import DEFAULTS, resolve

    targets = yaml.safe_load(lab.fabric_config_path().read_text())["cynow"]["targets"]
    s = resolve({**DEFAULTS, "targets": targets}, f"lab{host.host.n}")
    remote = Remote(make_connection(f"cynow@{host.address}", Config(), s), s)
    remote.open()
    cat = history.path(s.state_dir)
    out = io.StringIO()
    history.console = lambda: Console(file=out, width=120, highlight=False)  # into memory

    def cat_once() -> float:
        t0 = time.perf_counter()
        r = remote.run(f"cat {q(cat)}", root=True)
        assert r.ok and r.stdout.count("\n") == n
        return time.perf_counter() - t0

    def task_once() -> float:
        t0 = time.perf_counter()
        got = history.gather(remote)
        rows = history.merge({got["host"]: got["records"]}, n)
        hosts = [{"host": got["host"], "exit_code": 0, "records": n, "skipped": got["skipped"]}]
        history.render(rows, hosts, cat)
        assert len(rows) == n
        return time.perf_counter() - t0

    return remote, cat_once, task_once


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--host", type=int, default=6)
    args = p.parse_args()
    ready_lab()
    host = LabHost(lab.reset(args.host))
    deploy_notes(host)  # one real record to clone
    fill(host, RECORDS)
    env = {"COLUMNS": "120"}
    base = ["-H", f"cynow@{host.address}", "history", "--target", "lab", "-n", str(RECORDS)]
    fab_table, fab_json = fab_argv(*base), fab_argv(*base, "--json")
    fab_default = fab_argv(*base[:-2])  # the everyday run: the newest 20 of the same file
    ssh_cat = host.ssh_argv("cynow") + ["sudo", "-n", "cat", history.path("/var/lib/cynow-ops")]
    _, text = timed(fab_json, env)  # warm both sides once, and check what is printed
    assert len(json.loads(text)["records"]) == RECORDS
    remote, cat_once, task_once = one_connection(host, RECORDS)
    cat_once(), task_once()
    samples = {
        k: []
        for k in (
            "ssh_cat",
            "fab_history",
            "fab_history_json",
            "fab_history_n20",
            "cat_1_conn",
            "history_1_conn",
        )
    }
    try:
        for _ in range(args.runs):  # interleaved, so drift hits every variant alike
            samples["ssh_cat"].append(timed(ssh_cat)[0])
            samples["fab_history"].append(timed(fab_table, env)[0])
            samples["fab_history_json"].append(timed(fab_json, env)[0])
            samples["fab_history_n20"].append(timed(fab_default, env)[0])
            samples["cat_1_conn"].append(cat_once())
            samples["history_1_conn"].append(task_once())
    finally:
        remote.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    ratios = {
        "fab_history": med["fab_history"] / med["ssh_cat"],
        "fab_history_json": med["fab_history_json"] / med["ssh_cat"],
        "fab_history_n20": med["fab_history_n20"] / med["ssh_cat"],
        "history_1_conn": med["history_1_conn"] / med["cat_1_conn"],
    }
    size = int(host.sh(f"stat -c %s {history.path('/var/lib/cynow-ops')}").stdout)
    print(f"{RECORDS} records, {size / 1024:.0f} KB; {args.runs} interleaved runs")
    print(f"{'variant':<20}{'median s':>10}{'ratio':>8}   runs")
    for k, v in samples.items():
        ratio = ratios.get(k)
        print(
            f"{k:<20}{med[k]:>10.3f}{(f'{ratio:.2f}' if ratio else '1.00'):>8}   "
            + " ".join(f"{x:.3f}" for x in v)
        )
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "history_speed.json").write_text(
        json.dumps(
            {
                "runs": args.runs,
                "records": RECORDS,
                "bytes": size,
                "medians": med,
                "ratios": ratios,
                "samples": samples,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
