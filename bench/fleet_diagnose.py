"""Benchmark: `fab diagnose` on 1, 2, 4 and 8 lab hosts at once, against the same remote
commands sent to the same hosts as concurrent plain `ssh` scripts, measured in the same run
(issue #6's target: at most 1.2x that baseline at every size; client memory growing at most
linearly with the hosts).

    .venv/bin/python bench/fleet_diagnose.py [--runs 5] [--sizes 1,2,4,8] [--first 1]

The lab's hosts share this machine's cores with the client, so one host's time is no baseline
for eight: both variants load the hosts alike. Per run and variant: wall time, client CPU
(user+sys of the client processes, from wait4) and peak client memory (fab: its max RSS; ssh:
the sum of the concurrent ssh processes' max RSS). Run by hand as root, never as a test;
results: bench/results/fleet_diagnose.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from loopback import REPO, ready_lab  # noqa: E402  (first: the network guard)

# isort: split
from diagnose_speed import baseline_script  # noqa: E402

from tests.lab.helpers import LabHost, fab_argv  # noqa: E402

TIME = "/usr/bin/time"  # GNU time: a small parent, so its child's max RSS is the child's own


def run_all(argvs: list[list[str]], stdin: str | None, env: dict) -> tuple[float, float, int]:
    """Start every process at once; (wall s, their CPU s, sum of their max RSS in KB).

    Each runs under GNU time, which reports its child's CPU and max RSS: measured from this
    Python process instead, a child's max RSS would include the Python it was forked from."""
    reports = [tempfile.NamedTemporaryFile("r", prefix="cynow-bench-", delete=False) for _ in argvs]
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [TIME, "-f", "%U %S %M", "-o", rep.name, *argv],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for argv, rep in zip(argvs, reports, strict=True)
    ]
    for p in procs:
        if stdin:
            p.stdin.write(stdin)
            p.stdin.close()
    for p in procs:
        p.wait()
    wall = time.perf_counter() - t0
    cpu, rss = 0.0, 0
    for p, rep, argv in zip(procs, reports, argvs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"{argv[0]} failed ({p.returncode}): {p.stderr.read()[-500:]}")
        user, sys_, maxrss = rep.read().split()[-3:]
        rep.close()
        os.unlink(rep.name)
        cpu += float(user) + float(sys_)
        rss += int(maxrss)
    return wall, cpu, rss


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--sizes", default="1,2,4,8")
    p.add_argument("--first", type=int, default=1, help="lab host number of the first host")
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    if not os.access(TIME, os.X_OK):
        raise SystemExit(f"bench: needs GNU time at {TIME}: apt-get install time")
    lab = ready_lab()
    hosts = [LabHost(lab.reset(n)) for n in range(args.first, args.first + max(sizes))]
    env = {**os.environ, "COLUMNS": "120"}
    script = baseline_script("cynow")
    results = {}
    for size in sizes:
        group = hosts[:size]
        fab = [
            fab_argv(
                "-H",
                ",".join(f"cynow@{h.address}" for h in group),
                "diagnose",
                "--target",
                "lab",
                "--json",
            )
        ]
        ssh = [h.ssh_argv("cynow") + ["bash", "-s"] for h in group]
        run_all(fab, None, env)  # warm both sides once
        samples = {"ssh": [], "fab": []}
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            samples["ssh"].append(run_all(ssh, script, env))
            samples["fab"].append(run_all(fab, None, env))
        med = {
            k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in samples.items()
        }
        results[size] = {"medians": med, "samples": samples}
        (sw, sc, sm), (fw, fc, fm) = med["ssh"], med["fab"]
        print(
            f"{size} host(s): wall ssh {sw:.3f}s fab {fw:.3f}s = {fw / sw:.2f}x | "
            f"client CPU ssh {sc:.2f}s fab {fc:.2f}s | client memory ssh {sm / 1024:.0f} MB "
            f"fab {fm / 1024:.0f} MB",
            flush=True,
        )
    print(
        "\n| hosts | ssh scripts (s) | fab diagnose (s) | ratio | client CPU ssh / fab (s) "
        "| client memory ssh / fab (MB) |"
    )
    print("|---|---|---|---|---|---|")
    for size, r in results.items():
        (sw, sc, sm), (fw, fc, fm) = r["medians"]["ssh"], r["medians"]["fab"]
        print(
            f"| {size} | {sw:.3f} | {fw:.3f} | {fw / sw:.2f}x | {sc:.2f} / {fc:.2f} "
            f"| {sm / 1024:.0f} / {fm / 1024:.0f} |"
        )
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet_diagnose.json").write_text(
        json.dumps({"runs": args.runs, "commands": script.count("\n"), "sizes": results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
