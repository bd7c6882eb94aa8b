"""Benchmark: requests that fail during a restart, before and after `fab upgrade-unit`.

    sudo .venv/bin/python bench/restart_unit.py [--runs 3] [--clients 4] [--host 14]

Each run, on a pristine lab host with 4 clients hitting /cynow/ through nginx (loopback only,
bounded in count and time), in this order:
  - the guide's `systemctl restart gunicorn` on the guide's unit (the baseline);
  - `fab upgrade-unit` itself;
  - the same `systemctl restart gunicorn` on the upgraded unit;
  - `fab upgrade-unit --undo`.
Results: bench/results/restart_unit.json. Run by hand, never as a test.
"""

from __future__ import annotations

import statistics
import sys

from loopback import failed_requests_runs  # noqa: E402  (first: the network guard)

from tests.lab import lab  # noqa: E402
from tests.lab.helpers import LabHost, Load, fab_json  # noqa: E402

RESTART = "systemctl restart gunicorn.service && sleep 1"
VARIANTS = ("guide_restart", "upgrade_unit", "restart_after_upgrade", "undo")


def fab(host: LabHost, *args: str) -> dict:
    doc, r = fab_json("-H", f"cynow@{host.address}", "upgrade-unit", *args, "--target", "lab")
    assert r.returncode == 0, (doc, r.stderr)
    return doc


def one_run(n: int, clients: int) -> dict:
    host = LabHost(lab.reset(n))
    # The lab cannot kill a user manager's control group: a login's user@.service stopping (10 s
    # after the last session) then holds the next login for 90 s. Lingering keeps them running.
    host.sh("loginctl enable-linger root cynow")
    url = f"http://{host.address}/cynow/"
    out = {}
    with Load(url, clients) as load:
        host.sh(RESTART)
    out["guide_restart"] = (load.ok, load.failed)
    with Load(url, clients) as load:
        doc = fab(host)
    assert doc["result"] == "upgraded", doc
    out["upgrade_unit"] = (load.ok, load.failed)
    out["switch_seconds"] = next(s["seconds"] for s in doc["steps"] if s["name"] == "switch")
    with Load(url, clients) as load:
        host.sh(RESTART)
    out["restart_after_upgrade"] = (load.ok, load.failed)
    with Load(url, clients) as load:
        doc = fab(host, "--undo")
    assert doc["result"] == "restored", doc
    out["undo"] = (load.ok, load.failed)
    return out


def main() -> int:
    runs = failed_requests_runs("restart_unit", one_run, list(VARIANTS), default_host=14)
    sw = [round(r["switch_seconds"], 2) for r in runs]
    print(f"upgrade-unit's switch step, s: {sw}, median {statistics.median(sw):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
