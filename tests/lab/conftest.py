"""Lab fixtures: build the image once, boot hosts, reset them to pristine between tests.

Without root/Linux/nspawn the lab tests skip with the reason, except under CI=true, where a
missing lab is a failure: CI must run them.
"""

from __future__ import annotations

import fcntl
import os

import pytest

from tests.lab import lab
from tests.lab.helpers import HARDENED, LabHost, drop_app_sudo


def _need_lab() -> None:
    reason = lab.why_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the lab is unavailable: {reason}")
        pytest.skip(f"lab unavailable: {reason}")


@pytest.fixture(scope="session")
def lab_image():
    _need_lab()
    try:
        lab.build()
    except lab.LabError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"lab build failed: {e}")
        pytest.skip(f"lab build failed: {e}")
    # One test session drives the lab at a time: two would reset each other's hosts. Another
    # session (a second terminal, a helper) waits here until the first one ends.
    gate = open(lab.ROOT / "session.lock", "w")  # noqa: SIM115 - held for the whole session
    fcntl.flock(gate, fcntl.LOCK_EX)
    already = set(lab.running())
    # Hardened mode (CYNOW_LAB_HARDENED=1): every reset host (lab_host, fresh_host, the fleet's
    # and the test modules' own fixtures, all through lab.reset) is a hardened server: cynow
    # without sudo, `fab` logging in as admin (helpers.LOGIN).
    real_reset = lab.reset
    if HARDENED:

        def hardened_reset(n: int, **kw) -> lab.Host:
            h = real_reset(n, **kw)
            drop_app_sudo(LabHost(h))
            return h

        lab.reset = hardened_reset
    yield lab.image_dir()
    lab.reset = real_reset
    # Power off what this session booted; a host the user booted (./dev demo) stays up.
    for n in set(lab.running()) - already:
        lab.down(n)
    gate.close()


@pytest.fixture(scope="session")
def lab_host(lab_image) -> LabHost:
    """Lab host 1, pristine at the start of the session. Tests only read it: the ones that
    break a host use `fresh_host`."""
    return LabHost(lab.reset(1))


@pytest.fixture
def fresh_host(lab_image) -> LabHost:
    """Lab host 2, reset to pristine for this test."""
    return LabHost(lab.reset(2))
