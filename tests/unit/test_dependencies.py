"""pyproject.toml and requirements*.txt name the same requirements: an install from either gets
the versions the suite was run with (pyproject.toml once kept paramiko `<4` after
requirements.txt had moved to 5.x, and lacked PyYAML, which the config loader imports)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def requirements(name: str) -> set[str]:
    """A requirements file's lines, comments, `-r` includes and spaces left out."""
    out = set()
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.add(re.sub(r"\s+", "", line))
    return out


def test_pyproject_runtime_dependencies_are_requirements_txt():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["dependencies"]) == requirements("requirements.txt")


def test_pyproject_dev_extra_is_requirements_dev_txt():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["optional-dependencies"]["dev"]) == requirements("requirements-dev.txt")
