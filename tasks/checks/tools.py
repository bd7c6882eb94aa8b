"""Before the guide's steps: the commands they run on the server (curl, ss, namei,
systemd-analyze). A Debian set up by hand may lack one; then the checks that need it say "not
read" instead of taking its empty output for an answer, and this check names the package. Its
fact is read before the task, in discovery's round trip (tasks/tools.py, tasks/discovery.py)."""

from __future__ import annotations

from tasks import tools
from tasks.checks.base import Check, Facts
from tasks.settings import Settings

STEP = 0
FACTS: list = []
# What cannot be asked without each tool.
USES = {
    "curl": "step 7's by-hand run",
    "ss": "upgrade-unit's switch",
    "namei": "step 6's evidence (each directory's mode on the way to the socket)",
    "systemd-analyze": "step 3's unit check and upgrade-unit",
}


def not_read(facts: Facts, name: str) -> str | None:
    """The summary of a check that cannot be made without `name`; None when it can."""
    if tools.lacks(facts.tools, name):
        return f"not read: {name} is missing on the server ({tools.install_hint([name])})"
    return None


def evaluate(facts: Facts, s: Settings) -> list:
    check = Check("tools", STEP, "the commands the checks run", ("units",))
    if facts.tools is None:
        return [check.skip("not read")]
    gone = tools.missing(facts.tools, tools.PACKAGES)
    if not gone:
        return [check.ok(", ".join(tools.PACKAGES) + ": present")]
    served = [n for n in gone if n in tools.FALLBACK and facts.tools.get(n) is False]
    if served == gone:
        # What they would read is read another way: said, not a cause.
        return [
            check.warn(
                f"missing: {', '.join(gone)} (fallback used)",
                [f"{n}: missing (package {tools.PACKAGES[n]}): {tools.FALLBACK[n]}" for n in gone],
            )
        ]
    evidence = [
        f"{n}: {'missing' if facts.tools.get(n) is False else 'not known'} (package "
        f"{tools.PACKAGES[n]}): {USES[n]} cannot be made"
        for n in gone
    ]
    return [
        check.failure(
            "tools_missing",
            evidence,
            [tools.install_hint(gone)],
            summary=f"missing: {', '.join(gone)}",
        )
    ]
