"""Shared by the check modules' tests: the captured lab scenarios, read through each Fact."""

from pathlib import Path

import pytest

from tasks import shell
from tasks.settings import resolve

DATA = Path(__file__).parents[1] / "data" / "diagnose"


def captured(scenario: str, fact):
    """A fact's captured output from the lab, parsed by the fact's own parser."""
    raw = (DATA / scenario / f"{fact.name}.out").read_text()
    return fact.parse(shell.read_batch(raw) if fact.framed else raw, resolve({}))


def parts(**texts) -> shell.Parts:
    """Framed output as read_batch gives it: each part's text, exit status 0."""
    return shell.Parts({k: shell.Part(v, 0) for k, v in texts.items()})


@pytest.fixture
def s():
    return resolve({})
