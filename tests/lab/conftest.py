"""Lab fixtures: build the image once, boot hosts, reset them to pristine between tests.

Without root/Linux/nspawn the lab tests skip with the reason, except under CI=true, where a
missing lab is a failure: CI must run them.
"""

from __future__ import annotations

import os

import pytest

from tests.lab import lab
from tests.lab.helpers import LabHost


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
    already = set(lab.running())
    yield lab.image_dir()
    # Power off what this session booted; a host the user booted (./dev demo) stays up.
    for n in set(lab.running()) - already:
        lab.down(n)


@pytest.fixture(scope="session")
def lab_host(lab_image) -> LabHost:
    """Lab host 1, pristine at the start of the session. Tests only read it: the ones that
    break a host use `fresh_host`."""
    return LabHost(lab.reset(1))


@pytest.fixture
def fresh_host(lab_image) -> LabHost:
    """Lab host 2, reset to pristine for this test."""
    return LabHost(lab.reset(2))
