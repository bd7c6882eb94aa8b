"""Rolling deploys over several hosts: batches as Ansible's `serial` cuts them, a failure
threshold, and what to do once it is passed.

    plan_batches(hosts, "25%")  -> [[h1], [h2], [h3], [h4]] for 4 hosts
    passed(failed=1, total=4, "0") -> True: stop, leave later batches untouched

Each batch deploys concurrently; every host runs the whole deploy (with its health gate and
its own rollback on failure), and the next batch starts only when every host of this one has
ended. The planning here is pure; tasks/deploy.py runs it.
"""

from __future__ import annotations

import math
import re

from tasks.errors import ConfigError

_ENTRY = re.compile(r"^(\d+)(%?)$")
ON_FAIL = ("stop", "rollback-all")


def _entry(flag: str, text: str) -> tuple[int, bool]:
    m = _ENTRY.match(text.strip())
    if not m:
        raise ConfigError(
            f"{flag}: {text.strip()!r} is neither a number of hosts nor a percentage; "
            "write e.g. 1, 3 or 25%"
        )
    value, pct = int(m.group(1)), bool(m.group(2))
    if pct and value > 100:
        raise ConfigError(f"{flag}: {text.strip()} is more than 100%")
    return value, pct


def batch_sizes(spec: str, total: int) -> list[int]:
    """Ansible's `serial`: "3" hosts per batch, "25%" of all hosts (rounded down, at least 1),
    or a list "1,25%,50%" whose sizes apply in turn, the last repeating until no host is left."""
    entries = [_entry("--batch", part) for part in str(spec).split(",")]
    if any(value == 0 for value, _ in entries):
        raise ConfigError("--batch: a batch of 0 hosts would never finish; use 1 or more")
    sizes, left, i = [], total, 0
    while left > 0:
        value, pct = entries[min(i, len(entries) - 1)]
        size = max(1, math.floor(total * value / 100)) if pct else value
        sizes.append(min(size, left))
        left -= sizes[-1]
        i += 1
    return sizes


def plan_batches(hosts: list, spec: str) -> list[list]:
    """The hosts, in order, cut into batches."""
    out, start = [], 0
    for size in batch_sizes(spec, len(hosts)):
        out.append(hosts[start : start + size])
        start += size
    return out


def check_max_fail(spec: str) -> None:
    """--max-fail is one number or one percentage; refused before anything is contacted."""
    if "," in str(spec):
        raise ConfigError("--max-fail takes one value, e.g. 0, 2 or 10%")
    _entry("--max-fail", str(spec))


def passed(failed: int, total: int, spec: str) -> bool:
    """Is the failure threshold passed? "N": more than N hosts failed; "P%": more than P% of
    all hosts failed. The default 0 stops at the first failed host."""
    value, pct = _entry("--max-fail", str(spec))
    return failed * 100 > value * total if pct else failed > value


def check_on_fail(value: str) -> str:
    if value not in ON_FAIL:
        raise ConfigError(
            f"--on-fail must be {' or '.join(ON_FAIL)}, not {value!r}: stop leaves the hosts "
            "already deployed on the new commit, rollback-all returns them too"
        )
    return value
