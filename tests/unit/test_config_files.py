"""config/ is the lowest config level: the real `fab` reads it, and fabric.yaml, a -f file and
FABRIC_CYNOW_* still override it. None of these runs reaches a host: each stops at its
configuration error (exit 3) before any connection."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tasks.settings import CHECKS, DEFAULTS, TARGETS, resolve

ROOT = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"


def fab(*args, env=None):
    return subprocess.run(
        [str(FAB), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_defaults_file_holds_every_setting_and_nothing_else():
    assert set(DEFAULTS) - {"target", "targets"} == set(CHECKS) - {"hosts"}
    # One key a line, each with its comment: the file is the documentation of the defaults.
    lines = [ln for ln in (ROOT / "config/defaults.yaml").read_text().splitlines()]
    keyed = [ln for ln in lines if ln and not ln.startswith("#")]
    assert len(keyed) == len(DEFAULTS)


def test_targets_file_resolves():
    assert resolve({**DEFAULTS, "targets": TARGETS}, "lab").hosts == ["cynow@127.0.0.11"]
    assert set(TARGETS) == {"production", "lab"}


def test_config_is_data_not_a_package():
    # The deployed app's own settings module is `config`: nothing here may shadow it.
    assert not (ROOT / "config" / "__init__.py").exists()
    assert not list((ROOT / "config").glob("*.py"))


def test_fabric_yaml_keeps_only_what_invoke_reads_first():
    assert yaml.safe_load((ROOT / "fabric.yaml").read_text()) == {
        "tasks": {"executor_class": "tasks.executor.Executor"}
    }


def test_fab_reads_the_targets_and_a_runtime_file_merges_into_them(tmp_path):
    r = fab("info", "--target", "nosuch")
    assert r.returncode == 3
    assert "known: lab, production" in r.stderr + r.stdout
    extra = tmp_path / "more.yaml"
    extra.write_text("cynow:\n  targets:\n    lab7:\n      hosts: [cynow@127.0.0.17]\n")
    r = fab("-f", str(extra), "info", "--target", "nosuch")
    assert r.returncode == 3
    assert "known: lab, lab7, production" in r.stderr + r.stdout


def test_environment_and_runtime_file_override_the_defaults(tmp_path):
    r = fab("info", "--target", "lab", env={"FABRIC_CYNOW_APP_USER": "bad user"})
    assert r.returncode == 3 and "app_user" in r.stderr + r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("cynow:\n  socket: relative/path.sock\n")
    r = fab("-f", str(bad), "info", "--target", "lab")
    assert r.returncode == 3 and "socket" in r.stderr + r.stdout
