from __future__ import annotations

import subprocess

import pytest

from tasks import tools
from tasks.errors import OpsError
from tasks.shell import q


def test_command_says_each_tool_on_sudos_path(tmp_path):
    out = subprocess.run(["sh", "-c", tools.command()], capture_output=True, text=True).stdout
    said = tools.parse(out)
    assert set(said) == set(tools.PACKAGES)
    assert all(isinstance(v, bool) for v in said.values())
    # The login's PATH does not matter: sudo's secure_path is the one the root commands get.
    out = subprocess.run(
        ["sh", "-c", f"PATH=/nonexistent; {tools.command()}"], capture_output=True, text=True
    ).stdout
    assert tools.parse(out) == said


def test_parse_keeps_only_what_it_knows():
    assert tools.parse("curl=yes\nss=no\nrm=yes\nnamei=maybe\n") == {"curl": True, "ss": False}


def test_missing_and_lacks():
    assert tools.missing(None, ["curl"]) == []  # never read: a Remote that was not opened
    assert tools.missing({"curl": True}, ["curl", "ss"]) == ["ss"]  # not said: not known
    assert tools.lacks({"ss": False}, "ss") and not tools.lacks({}, "ss")
    assert not tools.lacks(None, "ss")


class Remote:
    name = "cynow@h"

    def __init__(self, has):
        self.tools = has


def test_require_names_the_package_and_changes_nothing():
    # curl and ss have fallbacks (the venv's python, /proc): the health gate needs neither.
    for task in ("deploy", "restart", "repair", "rollback", "restore"):
        tools.require(Remote({"curl": False, "ss": False}), task)
    tools.require(Remote({n: True for n in tools.PACKAGES}), "upgrade-unit")
    with pytest.raises(OpsError) as e:
        tools.require(Remote({"curl": True, "ss": False, "systemd-analyze": True}), "upgrade-unit")
    assert e.value.message == (
        "cynow@h lacks ss, which `fab upgrade-unit` needs: install it "
        "(`sudo apt-get install iproute2`) and retry; nothing was changed"
    )
    with pytest.raises(OpsError) as e:
        tools.require(Remote({}), "upgrade-unit")
    assert "could not tell whether it has ss, systemd-analyze" in e.value.message


def test_guard_stops_a_script_before_it_acts_on_nothing(tmp_path):
    victim = tmp_path / "live.sock"
    victim.write_text("")
    script = f"{tools.guard('no-such-tool-here')}\nrm -f {q(str(victim))}"
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert r.returncode == 127 and victim.exists()
    assert "no-such-tool-here is missing" in r.stderr
    r = subprocess.run(
        ["sh", "-c", f"{tools.guard('sh')}\necho went on"], capture_output=True, text=True
    )
    assert r.stdout == "went on\n"
