"""Suite-wide: the loopback-only network guard, and the lab fixtures for integration tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

GUARD_DIR = Path(__file__).resolve().parent / "guard"
sys.path.insert(0, str(GUARD_DIR))
import netguard  # noqa: E402

netguard.install()
# Every Python subprocess (fab, benchmarks) loads the same guard through sitecustomize.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(GUARD_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
# And the tool's own guard refuses anything else before it opens a socket.
os.environ["CYNOW_OPS_ALLOWED_NETWORKS"] = "127.0.0.0/8"


@pytest.fixture(scope="session")
def guard_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("netguard") / "violations.log"
    path.touch()
    os.environ["CYNOW_NET_GUARD_LOG"] = str(path)
    return path


@pytest.fixture(autouse=True)
def _no_connections_outside_loopback(request, guard_log):
    """Fail any test during which any process tried to leave loopback, even if it was caught."""
    before = guard_log.stat().st_size
    yield
    if "expects_guard_violation" in request.keywords:
        return
    with open(guard_log) as f:
        f.seek(before)
        new = f.read()
    if new:
        pytest.fail(f"network guard: connection outside 127.0.0.0/8 attempted:\n{new}")


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs the lab (root, Linux, systemd-nspawn)")
    config.addinivalue_line(
        "markers", "expects_guard_violation: the test trips the guard on purpose"
    )
