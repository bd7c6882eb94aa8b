from __future__ import annotations

import subprocess
import sys

import pytest

from tasks.runner import Output
from tasks.steps.context import Parts, StepFailed
from tasks.steps.migrate import unmigrate_script


def test_unmigrate_script_stops_at_the_first_failing_app(tmp_path):
    manage = tmp_path / "manage.py"
    manage.write_text(
        "import sys\nopen('calls', 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "sys.exit(1 if sys.argv[2] == 'orders' else 0)\n"
    )
    script = unmigrate_script(
        str(tmp_path), sys.executable, [("shop", "0003_x"), ("orders", "zero"), ("auth", "zero")]
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    parts = Parts(Output("", out.stdout, out.stderr, out.returncode, 0))
    assert out.returncode == 1
    assert parts.get("0").ok and parts.get("1").exited == 1 and "2" not in parts.parts
    assert (tmp_path / "calls").read_text().splitlines() == [
        "migrate shop 0003_x --noinput",
        "migrate orders zero --noinput",
    ]
    with pytest.raises(StepFailed, match=r"did not run"):
        parts.need("2", "manage.py migrate auth zero")
