"""Benchmark: `fab deploy` wall time against the same remote commands run as one bash script
over one plain `ssh` session, measured in the same run (issue #4's target: <= 1.3x).

    sudo .venv/bin/python bench/deploy_overhead.py [--runs 5]

Each run deploys the same new commit (a view change and a migration) to a pristine lab host
with CYNOW_OPS_TRACE set, which records every command line the tool sent; then resets the host,
pushes the same commit and replays those command lines, in order, as one script through one
`ssh`. Each recorded command is one round trip of the tool (a step's script, a state write, a
health poll); the replay runs the same scripts, including the health gate's wait for the old
workers, which happens inside its script on the server. The tool's own pause between two health
polls (when a first poll is not yet healthy) is not replayed: the script is a lower bound.
Runs on lab host 2 (hosts 3 and up belong to other work). Results:
bench/results/deploy_overhead.json.
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
from pathlib import Path

from loopback import REPO, ready_lab  # noqa: E402  (first: the network guard)

from tests.lab import lab  # noqa: E402
from tests.lab.helpers import (  # noqa: E402
    NOTE_MIGRATION,
    NOTE_MODEL,
    LabHost,
    fab_argv,
    push_commit,
)


def new_commit(host: LabHost) -> None:
    views = (REPO / "tests/lab/app/orders/views.py").read_text() + "\n# v2\n"
    push_commit(
        host,
        {
            "orders/models.py": NOTE_MODEL,
            "orders/views.py": views,
            "orders/migrations/0002_order_note.py": NOTE_MIGRATION,
        },
        "orders: notes",
        when="2026-11-27T12:00:00+00:00",
    )


def one_run(n: int) -> tuple[float, float, int]:
    host = LabHost(lab.reset(n))
    new_commit(host)
    with tempfile.NamedTemporaryFile(suffix=".trace", delete=False) as t:
        trace = t.name
    env = {**os.environ, "CYNOW_OPS_TRACE": trace}
    t0 = time.perf_counter()
    r = subprocess.run(
        fab_argv("-H", f"cynow@{host.address}", "deploy", "--target", "lab", "--json"),
        capture_output=True,
        text=True,
        env=env,
    )
    fab_s = time.perf_counter() - t0
    assert json.loads(r.stdout)["result"] == "deployed", r.stdout[-500:]
    commands = [c for c in Path(trace).read_text().split("\0") if c]
    os.unlink(trace)

    host = LabHost(lab.reset(n))
    new_commit(host)
    script = "\n".join(f"(\n{c}\n) >/dev/null 2>&1" for c in commands) + "\n"
    # The script goes over first (not timed). It then runs with ssh's input open and silent,
    # as a channel's is: the lock's supervisor stops a step whose input ends.
    host.sh(f"cat > /tmp/replay.sh <<'CYNOW_REPLAY'\n{script}CYNOW_REPLAY\n", user="cynow")
    t0 = time.perf_counter()
    replay = subprocess.Popen(
        host.ssh_argv("cynow") + ["bash", "/tmp/replay.sh"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    code = replay.wait()
    ssh_s = time.perf_counter() - t0
    replay.stdin.close()
    if code != 0:
        raise SystemExit(f"bench: the replay failed (exit {code})")
    deployed = host.sh("sudo -u cynow git -C /home/cynow/cynow log -1 --format=%s").stdout
    assert deployed.strip() == "orders: notes", "the replay did not deploy"
    return fab_s, ssh_s, len(commands)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--host", type=int, default=2)
    args = p.parse_args()
    ready_lab()
    runs = [one_run(args.host) for _ in range(args.runs)]
    lab.down(args.host)
    fab_m = statistics.median(r[0] for r in runs)
    ssh_m = statistics.median(r[1] for r in runs)
    print(f"{'variant':<34}{'median s':>10}{'x script':>10}   runs")
    print(
        f"{'one ssh script (replayed commands)':<34}{ssh_m:>10.3f}{1:>10.2f}   "
        + " ".join(f"{r[1]:.2f}" for r in runs)
    )
    print(
        f"{'fab deploy':<34}{fab_m:>10.3f}{fab_m / ssh_m:>10.2f}   "
        + " ".join(f"{r[0]:.2f}" for r in runs)
    )
    print(f"remote commands (round trips) per deploy: {runs[0][2]}")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "deploy_overhead.json").write_text(
        json.dumps(
            {
                "runs": [{"fab_s": f, "ssh_s": s, "commands": c} for f, s, c in runs],
                "ratio": fab_m / ssh_m,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
