"""Imported first by every benchmark: the repo on sys.path, and the tests' loopback-only network
guard in this process and (through PYTHONPATH) in every Python process it starts."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GUARD = REPO / "tests" / "guard"
sys.path[:0] = [str(REPO), str(GUARD)]

import netguard  # noqa: E402

netguard.install()
os.environ.setdefault("CYNOW_OPS_ALLOWED_NETWORKS", "127.0.0.0/8")
os.environ["PYTHONPATH"] = str(GUARD)


def ready_lab():
    """The lab module, its image built; or exit with the reason it cannot run here."""
    from tests.lab import lab

    reason = lab.why_unavailable()
    if reason:
        raise SystemExit(f"bench: {reason}")
    lab.build()
    return lab


def failed_requests_runs(name: str, one_run, variants: list[str], default_host: int) -> list[dict]:
    """The load benchmarks' driver: `--runs` runs of `one_run(host, clients)` on a lab host,
    then each variant's failed/requests per run and the median failed, saved as
    bench/results/NAME.json. Returns the runs (each variant -> (ok, failed), and extras)."""
    import argparse
    import json
    import statistics

    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--host", type=int, default=default_host)
    args = p.parse_args()
    lab = ready_lab()
    runs = [one_run(args.host, args.clients) for _ in range(args.runs)]
    lab.down(args.host)
    width = max(len(k) for k in variants) + 2
    print(f"{'variant':<{width}}{'failed / requests (each run)':<44}median failed")
    for key in variants:
        cells = [f"{f}/{o + f}" for o, f in (r[key] for r in runs)]
        print(f"{key:<{width}}{'  '.join(cells):<44}{statistics.median(r[key][1] for r in runs)}")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"runs": runs}, indent=2))
    return runs
