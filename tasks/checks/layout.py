"""After the guide's steps: the config against the server's own layout (tasks/layout.py).
A setting the server contradicts is an expectation that does not hold: a warning naming both
values and the one the service really uses; and where the server contradicts itself (nginx's
static directory against Django's STATIC_ROOT). No facts of its own: it reads steps 1, 3, 4
and 8's."""

from __future__ import annotations

# A module, not its names: tasks.layout imports tasks.checks, which imports this.
from tasks import layout as server
from tasks.checks.base import Check, Facts
from tasks.settings import Settings

STEP = 10
FACTS: list = []
NAMES = {
    "unit": "the unit",
    "socket unit": "its socket unit",
    "gunicorn config": "gunicorn's config file",
    "nginx": "nginx",
    "django": "Django",
}


def describe(v) -> str:
    """One disagreement: both values, and the one in force on the server."""
    where = v.used or f"the {v.source}"
    return (
        f"{v.key}: expected {v.configured} ({v.config_source}); {where} says {v.value}, "
        "and that is what the server uses"
    )


def evaluate(facts: Facts, s: Settings) -> list:
    reads = ("units", "nginx", "probe", "gunicorn_config")
    check = Check("layout.config", STEP, "the config against the server's layout", reads)
    values = server.discover(facts, s)
    read = [v for v in values if v.value is not None and v.configured is not None]
    wrong = server.disagreements(values)
    conflicts = server.conflicts(values)
    if conflicts:
        return [
            check.warn(
                "the server contradicts itself: "
                + "; ".join(c.split(":", 1)[0] for c in conflicts)
                + (f"; and the config on {', '.join(v.key for v in wrong)}" if wrong else ""),
                conflicts + [describe(v) for v in wrong],
            )
        ]
    if not read:
        return [check.skip("the server said nothing to compare (unit not loaded, no probe)")]
    if not wrong:
        said = [NAMES[s] for s in NAMES if any(v.source == s for v in read)]
        return [check.ok(f"{len(read)} settings agree with {', '.join(said)}")]
    return [
        check.warn(
            f"{len(wrong)} setting(s) the server contradicts: "
            + ", ".join(v.key for v in wrong)
            + " (fab info shows the layout; fab info --write-config FILE writes it down)",
            [describe(v) for v in wrong],
        )
    ]
