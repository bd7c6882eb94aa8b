"""Benchmark: requests that fail while the site is updated, under a steady bounded load.

    sudo .venv/bin/python bench/deploy_load.py [--runs 3] [--clients 4]

Each run, on a pristine lab host with 4 clients hitting /cynow/ through nginx (loopback only,
bounded in count and time):
  - baseline: the guide's way, `git pull` + `systemctl restart gunicorn`;
  - `fab deploy` of a new commit (graceful HUP reload);
  - `fab deploy` of a commit whose health gate fails, i.e. an automatic rollback;
and the time from the failed step to a healthy site (the rollback's recovery_seconds).
Results: bench/results/deploy_load.json. Run by hand, never as a test.
"""

from __future__ import annotations

import statistics
import sys

from loopback import REPO, failed_requests_runs  # noqa: E402  (first: the network guard)

from tests.lab import lab  # noqa: E402
from tests.lab.helpers import APP, LabHost, Load, fab_json, push_commit  # noqa: E402


def fab(host: LabHost, *args: str) -> dict:
    doc, _ = fab_json("-H", f"cynow@{host.address}", *args, "--target", "lab")
    return doc


def one_run(n: int, clients: int) -> dict:
    host = LabHost(lab.reset(n))
    url = f"http://{host.address}/cynow/"
    out = {}
    views = (REPO / "tests/lab/app/orders/views.py").read_text()

    push_commit(host, {"orders/views.py": views + "\n# v2\n"}, "v2")
    with Load(url, clients) as load:
        host.sh(
            f"cd {APP} && sudo -u cynow git pull -q --ff-only origin main && "
            "systemctl restart gunicorn.service && sleep 1"
        )
    out["guide_restart"] = (load.ok, load.failed)

    push_commit(host, {"orders/views.py": views + "\n# v3\n"}, "v3")
    with Load(url, clients) as load:
        doc = fab(host, "deploy")
    assert doc["result"] == "deployed", doc
    out["fab_deploy"] = (load.ok, load.failed)

    broken = views.replace("    lines = [", '    raise RuntimeError("boom")\n    lines = [')
    push_commit(host, {"orders/views.py": broken}, "v4 broken")
    with Load(url, clients) as load:
        doc = fab(host, "deploy")
    assert doc["result"] == "rolled-back", doc
    out["fab_deploy_rolled_back"] = (load.ok, load.failed)
    out["recovery_seconds"] = doc["recovery_seconds"]
    return out


def main() -> int:
    runs = failed_requests_runs(
        "deploy_load",
        one_run,
        ["guide_restart", "fab_deploy", "fab_deploy_rolled_back"],
        default_host=3,
    )
    rec = [r["recovery_seconds"] for r in runs]
    print(f"recovery (failed step -> healthy), s: {rec}, median {statistics.median(rec):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
