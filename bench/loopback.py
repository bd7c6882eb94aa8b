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
