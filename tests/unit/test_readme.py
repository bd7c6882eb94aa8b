"""README.md against the code it describes: the cause table against tasks/causes.py, the
Layout section against the files git tracks."""

import re
import subprocess
from pathlib import Path

from tasks.causes import CAUSES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def section(heading: str) -> str:
    """The text under a heading, up to the next heading of any level."""
    start = README.index(heading + "\n") + len(heading)
    following = re.search(r"^#+ ", README[start:], re.M)
    return README[start : start + following.start()] if following else README[start:]


def layout() -> list[str]:
    """The first word of each line of the Layout section's tree."""
    block = section("## Layout").split("```")[1]
    return [line.split()[0] for line in block.splitlines() if line.strip() and line[0] != " "]


def test_the_cause_table_is_causes_py_in_its_order():
    rows = re.findall(r"^\| `([a-z_]+)` \|", section("#### Cause identifiers"), re.M)
    assert rows == [c.id for c in CAUSES]


def test_the_layout_names_every_file_of_tasks_and_config():
    tracked = subprocess.run(
        ["git", "ls-files", "tasks", "config"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked
    assert sorted(set(tracked) - set(layout())) == []


def test_the_layout_covers_every_other_tracked_file_by_name_or_folder():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    named = set(layout())
    folders = tuple(n for n in named if n.endswith("/"))
    # The README itself and git's own ignore list are not part of the tool.
    left = [
        f
        for f in tracked
        if f not in named and not f.startswith(folders) and f not in ("README.md", ".gitignore")
    ]
    assert left == []


def test_every_file_the_layout_names_exists():
    for name in layout():
        assert (ROOT / name).exists(), name
