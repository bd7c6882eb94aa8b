"""tasks/service.py and its program (tasks/remote/as_service.py): the app's code run as the
unit runs it. The program runs for real here, as root, with busctl and systemctl replaced by
fakes that answer as systemd would for a unit (User=nobody, an EnvironmentFile only root can
read); it drops to the unit's user and the secret reaches the command's environment only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tasks import programs, service
from tasks.shell import q

ns: dict = {}
exec(compile(programs.source("as_service"), "as_service.py", "exec"), ns)  # noqa: S102


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("A=1\nB = two words  \n", {"A": "1", "B": "two words"}),
        ("# c\n; c\n\nC='it''s $HOME'\n", {"C": "its $HOME"}),
        ('D="say \\"hi\\" \\$x"\n', {"D": 'say "hi" $x'}),
        ("E=one\\\ntwo\n", {"E": "onetwo"}),
        ("export F=x\n9BAD=1\nno equals\nG-H=2\n", {"F": "x"}),
        ("URL=postgres://u:p@h/db?x=1#frag\n", {"URL": "postgres://u:p@h/db?x=1#frag"}),
    ],
)
def test_environment_files_read_as_systemd_reads_them(text, env):
    assert ns["parse_env_file"](text) == env


def test_object_path_escapes_as_systemd_does():
    assert ns["object_path"]("gunicorn.service") == (
        "/org/freedesktop/systemd1/unit/gunicorn_2eservice"
    )
    assert ns["object_path"]("my-app@1.service").endswith("/my_2dapp_401_2eservice")


def fake_bin(tmp_path, props: dict, load: str = "loaded"):
    """busctl and systemctl that answer for one unit from `props`."""
    d = tmp_path / "bin"
    d.mkdir()
    answers = {"LoadState": load, **props}
    (tmp_path / "props.json").write_text(json.dumps(answers))
    (d / "busctl").write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"props = json.load(open({str(tmp_path / 'props.json')!r}))\n"
        "if sys.argv[1] == 'call': sys.exit(0)\n"
        "for name in sys.argv[6:]:\n"
        "    print(json.dumps({'type': 's', 'data': props[name]}))\n"
    )
    (d / "systemctl").write_text("#!/bin/sh\necho PATH=/usr/bin:/bin\necho LANG=C.UTF-8\n")
    for f in d.iterdir():
        f.chmod(0o755)
    return d


UNIT = {
    "User": "nobody",
    "Group": "",
    "SupplementaryGroups": [],
    "WorkingDirectory": "",
    "UMask": 0o027,
    "Environment": ["MODE=unit", "SPACED=a b"],
    "EnvironmentFiles": [],
}


def run(tmp_path, command, props=UNIT, strict=True, load="loaded"):
    bin_dir = fake_bin(tmp_path, props, load)
    script = service.as_service("gunicorn.service", "nobody", command, strict)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges: needs root")


@needs_root
def test_the_command_runs_as_the_unit_with_its_environment_files(tmp_path, request):
    secret = tmp_path / "cynow.env"
    secret.write_text("SECRET_KEY='s3cr3t value'\nMODE=file\n")
    secret.chmod(0o600)  # root's: the unit's user could not read it itself
    wd = Path(tempfile.mkdtemp(prefix="cynow-wd-"))  # under /tmp: reachable by nobody
    wd.chmod(0o755)
    request.addfinalizer(lambda: wd.rmdir())
    props = {**UNIT, "WorkingDirectory": f"!{wd}", "EnvironmentFiles": [[str(secret), False]]}
    out = run(
        tmp_path,
        'id -un; pwd; umask; printf "%s|%s|%s\\n" "$SECRET_KEY" "$MODE" "$SPACED"; '
        "tr '\\0' ' ' < /proc/$$/cmdline",
        props,
    )
    assert out.returncode == 0, out.stderr
    user, cwd, umask, values, cmdline = out.stdout.splitlines()
    assert (user, cwd, umask) == ("nobody", str(wd), "0027")
    assert values == "s3cr3t value|file|a b"  # files override Environment=
    assert "s3cr3t" not in cmdline and "s3cr3t" not in out.stderr


@needs_root
def test_strict_refuses_what_it_cannot_know(tmp_path):
    missing = {**UNIT, "EnvironmentFiles": [[str(tmp_path / "gone.env"), False]]}
    out = run(tmp_path, "echo ran", missing)
    assert out.returncode == service.REFUSED and "ran" not in out.stdout
    assert "EnvironmentFile" in service.refusal(out.stderr)


@needs_root
@pytest.mark.parametrize(
    ("props", "load", "why"),
    [
        ({**UNIT, "User": ""}, "loaded", "no User="),
        ({**UNIT, "User": "root"}, "loaded", "runs as root"),
        ({**UNIT, "User": "0"}, "loaded", "runs as root"),
        ({**UNIT, "User": "no-such-user"}, "loaded", "does not exist"),
        (UNIT, "not-found", "not-found, not loaded"),
    ],
)
def test_never_as_root_and_never_guessed(tmp_path, props, load, why):
    out = run(tmp_path, "echo ran", props, load=load)
    assert out.returncode == service.REFUSED and out.stdout == ""
    assert why in service.refusal(out.stderr)


@needs_root
def test_lenient_runs_as_the_fallback_user_and_says_so(tmp_path):
    out = run(tmp_path, "id -un", UNIT, strict=False, load="not-found")
    assert out.returncode == 0 and out.stdout == "nobody\n"
    assert "without the unit's environment" in service.refusal(out.stderr)


@needs_root
def test_an_optional_environment_file_may_be_missing(tmp_path):
    props = {**UNIT, "EnvironmentFiles": [[str(tmp_path / "gone.env"), True]]}
    out = run(tmp_path, "echo $MODE", props)
    assert out.returncode == 0 and out.stdout == "unit\n"


def test_the_command_line_is_one_quoted_argument():
    s = service.as_service("gunicorn.service", "cynow", "echo 'a b'; $(id)")
    assert s.startswith("python3 -I -B -c ") and s.endswith(" " + q("echo 'a b'; $(id)"))
