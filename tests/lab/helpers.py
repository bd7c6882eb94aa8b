"""Driving the lab from tests: run the real `fab` and shell commands on lab hosts over SSH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.lab import lab

REPO = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).parent / "fab")


@dataclass
class LabHost:
    host: lab.Host

    @property
    def address(self) -> str:
        return self.host.address

    def ssh_argv(self, user: str = "root") -> list[str]:
        return [
            "ssh",
            "-i",
            str(lab.key_path()),
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={lab.known_hosts_path()}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"{user}@{self.address}",
        ]

    def sh(
        self, script: str, user: str = "root", check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run a shell script on the lab host (the test's own hands, not the tool's)."""
        return subprocess.run(
            self.ssh_argv(user) + ["bash", "-s"],
            input=script,
            text=True,
            capture_output=True,
            check=check,
            timeout=120,
        )


def fab(
    *args: str, home: str | Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """The real `fab` of this repo, in a clean HOME (so ~/.ssh is the test's, not root's)."""
    e = dict(os.environ)
    if home is not None:
        e["HOME"] = str(home)
    e.update(env or {})
    e.setdefault("COLUMNS", "120")
    return subprocess.run(
        [FAB, "-r", str(REPO), *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def fab_json(*args: str, **kw) -> tuple[dict, subprocess.CompletedProcess]:
    r = fab(*args, "--json", **kw)
    try:
        return json.loads(r.stdout), r
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}") from None


def lab_args(host: LabHost, user: str = "cynow") -> list[str]:
    """-H/-i for a lab host, as a user would type them."""
    return ["-H", f"{user}@{host.address}", "-i", str(lab.key_path())]


def trusting_home(tmp_path: Path) -> Path:
    """A HOME whose ~/.ssh/known_hosts holds the lab's host keys (as after ssh-keyscan)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "known_hosts").write_text(lab.known_hosts_path().read_text())
    return home
