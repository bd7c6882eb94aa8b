"""Pure parsers of remote command output, shared by checks and tasks."""

from __future__ import annotations

import re


def key_values(text: str) -> dict[str, str]:
    """`key=value` lines (the first `=` splits; later ones belong to the value)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            out[key] = value
    return out


def systemctl_show(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show` output for several units (blank-line separated blocks), keyed by Id.

    systemctl prints the blocks in the order the units were named; a unit that does not exist
    still gets a block, with LoadState=not-found.
    """
    units: dict[str, dict[str, str]] = {}
    for block in text.strip().split("\n\n"):
        props = key_values(block)
        if props.get("Id"):
            units[props["Id"]] = props
    return units


def frozen_names(lines: list[str]) -> dict[str, str]:
    """`pip freeze` lines by normalised project name (PEP 503: case, runs of -_. alike);
    comments and options are left out."""
    out = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        name = re.split(r"[=<>!~ @;\[]", line, maxsplit=1)[0]
        out[re.sub(r"[-_.]+", "-", name).lower()] = line
    return out


def added_packages(before: list[str], now: list[str]) -> list[str]:
    """Projects in the venv now that were not there before: what a restore removes."""
    old = frozen_names(before)
    return sorted(name for name in frozen_names(now) if name not in old)
