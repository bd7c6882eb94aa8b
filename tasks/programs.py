"""The programs sent to the server (tasks/remote/*.py): real files, linted and unit-tested here,
read once and sent as `python -B -c SOURCE` (-B: no bytecode written into the checkout)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

REMOTE = Path(__file__).resolve().parent / "remote"


@cache
def source(*names: str) -> str:
    """The files' text joined in order: a program and the helpers it calls (each standalone)."""
    return "\n".join((REMOTE / f"{name}.py").read_text() for name in names)
