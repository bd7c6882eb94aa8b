"""Benchmark: `fab diagnose` against a lab host versus the same remote commands run as one bash
script over one plain `ssh` session, measured in the same run (issue #3's target: <= 0.8x).

    sudo .venv/bin/python bench/diagnose_speed.py [--runs 7] [--host 1]

Also measures the tool with one channel at a time (CYNOW_OPS_CHANNELS=1), the naive sequential
way, to show what the concurrency buys. Run by hand, never as a test; figures go in the README.
Results: bench/results/diagnose_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from loopback import REPO, ready_lab  # noqa: E402  (first: the network guard)

from tasks import (
    diagnose,  # noqa: E402, shell
    shell,
)
from tasks.checks.base import Facts  # noqa: E402
from tasks.settings import resolve  # noqa: E402
from tests.lab import lab  # noqa: E402
from tests.lab.helpers import LabHost, fab_argv  # noqa: E402


def baseline_script(user: str) -> str:
    """Every command of one healthy diagnosis, in order, wrapped for sudo as the tool does."""
    s = resolve({})
    second = diagnose.second_round(Facts(), s)
    second.pop("manual", None)  # a healthy host needs no by-hand gunicorn run
    jobs = list(diagnose.first_round(s).values()) + list(second.values())
    parts = []
    for j in jobs:
        cmd = j["command"]
        if j.get("root"):
            cmd = shell.as_root(cmd)
        elif j.get("user") and j["user"] != user:
            cmd = shell.as_user(j["user"], cmd)
        parts.append(f"( {cmd} ) >/dev/null 2>&1")
    return "\n".join(parts) + "\n"


def timed(argv: list[str], stdin: str | None = None, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(
        argv, input=stdin, text=True, capture_output=True, env={**os.environ, **(env or {})}
    )
    elapsed = time.perf_counter() - t0
    if r.returncode not in (0,):
        raise SystemExit(f"{argv[0]} failed ({r.returncode}): {r.stderr[-500:]}")
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--host", type=int, default=1)
    args = p.parse_args()
    ready_lab()
    host = lab.reset(args.host)  # pristine and healthy: every run reads the same state
    env = {
        "CYNOW_OPS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "COLUMNS": "120",
        "PYTHONPATH": str(REPO / "tests" / "guard"),
    }
    fab = fab_argv("-H", f"cynow@{host.address}", "diagnose", "--target", "lab", "--json")
    ssh = LabHost(host).ssh_argv("cynow") + ["bash", "-s"]
    script = baseline_script("cynow")
    samples = {"ssh_script": [], "fab_diagnose": [], "fab_diagnose_1_channel": []}
    timed(fab, env=env)  # warm caches on both sides once
    for _ in range(args.runs):  # interleaved, so drift hits every variant alike
        samples["ssh_script"].append(timed(ssh, stdin=script))
        samples["fab_diagnose"].append(timed(fab, env=env))
        samples["fab_diagnose_1_channel"].append(timed(fab, env={**env, "CYNOW_OPS_CHANNELS": "1"}))
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["ssh_script"]
    print(f"{'variant':<26}{'median s':>10}{'x script':>10}   runs")
    for k, v in samples.items():
        print(f"{k:<26}{med[k]:>10.3f}{med[k] / base:>10.2f}   " + " ".join(f"{x:.2f}" for x in v))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose_speed.json").write_text(
        json.dumps(
            {
                "runs": args.runs,
                "medians": med,
                "ratio": med["fab_diagnose"] / base,
                "samples": samples,
                "commands": script.count("\n"),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
