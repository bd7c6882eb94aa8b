"""gunicorn's own settings as the layout reads them: ExecStart's options in every spelling
argparse takes, GUNICORN_CMD_ARGS from the unit's Environment=, the config file read with `ast`
(never executed), and the reader program (tasks/remote/gunicorn_config.py) run as the server
runs it, with a stand-in `systemctl`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tasks import programs
from tasks.checks import unit_file
from tasks.remote.gunicorn_argv import (
    NOT_LITERAL,
    cmd_args,
    config_literals,
    gunicorn_options,
    unit_environment,
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            "g -c /etc/g.py --chdir /srv -w 3 -t 60 app:x",
            {"config": "/etc/g.py", "chdir": "/srv", "workers": "3", "timeout": "60"},
        ),
        (
            "g --config=/etc/g.py --workers=4 --timeout=90 --chdir=/d app:x",
            {"config": "/etc/g.py", "chdir": "/d", "workers": "4", "timeout": "90"},
        ),
        ("g -w5 -t10 -c/x.py app:x", {"config": "/x.py", "workers": "5", "timeout": "10"}),
        ("g --workers 2 --workers 6 app:x", {"workers": "6"}),  # argparse: the last one wins
        ("g --preload --reload app:x", {}),
    ],
)
def test_gunicorn_options(argv, expected):
    o = gunicorn_options(argv.split())
    assert o["app"] == "app:x"
    for key in ("config", "chdir", "workers", "timeout"):
        assert o[key] == expected.get(key), key


def test_every_bind_counts_in_every_spelling():
    o = gunicorn_options(["g", "-b", "unix:/a.sock", "--bind=127.0.0.1:8000", "-b[::1]:9", "x:y"])
    assert o["binds"] == ["unix:/a.sock", "127.0.0.1:8000", "[::1]:9"] and o["app"] == "x:y"


def test_gunicorn_cmd_args_is_split_like_a_shell():
    o = cmd_args("--bind 'unix:/run/my app.sock' -w 2 --timeout=45")
    assert (o["binds"], o["workers"], o["timeout"]) == (["unix:/run/my app.sock"], "2", "45")
    assert cmd_args("--bind 'unclosed")["binds"] == ["'unclosed"]  # read, not raised


UNIT = """# /etc/systemd/system/gunicorn.service
[Service]
Environment="GUNICORN_CMD_ARGS=--workers 2 --bind unix:/run/a.sock" DJANGO_DEBUG=0
ExecStart=/v/bin/gunicorn \\
          app.wsgi
"""


def test_gunicorn_cmd_args_from_the_units_environment():
    assert unit_environment(UNIT, "GUNICORN_CMD_ARGS") == "--workers 2 --bind unix:/run/a.sock"
    assert unit_environment(UNIT, "PATH") is None
    drop_in = UNIT + "\n# /etc/systemd/system/gunicorn.service.d/x.conf\n[Service]\n"
    assert (
        unit_environment(drop_in + 'Environment=GUNICORN_CMD_ARGS="-w 9"\n', "GUNICORN_CMD_ARGS")
        == "-w 9"
    )
    assert unit_environment(drop_in + "Environment=\n", "GUNICORN_CMD_ARGS") is None  # reset
    cont = '[Service]\nEnvironment=A=1 \\\n  "GUNICORN_CMD_ARGS=-t 5"\n'
    assert unit_environment(cont, "GUNICORN_CMD_ARGS") == "-t 5"


def test_config_literals_reads_literals_and_names_the_rest():
    text = """
import multiprocessing
bind = "unix:/tmp/old.sock"
bind = ["unix:/home/cynow/cynow/gunicorn.sock", "127.0.0.1:8001"]
workers = multiprocessing.cpu_count() * 2 + 1
timeout: int = 60
wsgi_app = "config.wsgi:application"
accesslog = "-"
if True:
    chdir = "/srv/app"

def on_starting(server):
    timeout = 5
"""
    assert config_literals(text) == {
        "bind": ["unix:/home/cynow/cynow/gunicorn.sock", "127.0.0.1:8001"],  # the last wins
        "workers": NOT_LITERAL,
        "timeout": 60,  # a hook's local is not the setting
        "wsgi_app": "config.wsgi:application",
        "chdir": NOT_LITERAL,  # under an `if`: only running the file knows
    }
    assert config_literals("bind = ('unix:/a', 'unix:/b')\nworkers += 1\n") == {
        "bind": ["unix:/a", "unix:/b"],
        "workers": NOT_LITERAL,
    }
    with pytest.raises(SyntaxError):
        config_literals("bind = ")


# -- the reader as the server runs it ------------------------------------------------------


def fake_systemctl(tmp_path, exec_start: str, wd: str, load: str = "loaded"):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f"printf 'LoadState=%s\\n' {json.dumps(load)}\n"
        f"printf 'ExecStart=%s\\n' {json.dumps(exec_start)}\n"
        f"printf 'WorkingDirectory=%s\\n' {json.dumps(wd)}\n"
    )
    script.chmod(0o755)
    return bin_dir


def exec_start(argv: str) -> str:
    return f"{{ path=/v/bin/gunicorn ; argv[]={argv} ; ignore_errors=no ; start_time=[n/a] }}"


def run_reader(tmp_path, argv: str, env_args: str | None = None, load="loaded") -> dict:
    wd = tmp_path / "app"
    wd.mkdir(exist_ok=True)
    bin_dir = fake_systemctl(tmp_path, exec_start(argv), str(wd), load)
    script = "UNIT = 'gunicorn.service'\n" + programs.source("gunicorn_argv", "gunicorn_config")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    if env_args is not None:
        env["GUNICORN_CMD_ARGS"] = env_args
    r = subprocess.run(
        [sys.executable, "-I", "-B", "-c", script],
        cwd=tmp_path,  # not the WorkingDirectory: the unit's is used for relative paths
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return unit_file.parse_gunicorn_config(r.stdout)


def test_the_default_file_in_the_working_directory_is_read(tmp_path):
    (tmp_path / "app").mkdir()
    conf = tmp_path / "app" / "gunicorn.conf.py"
    conf.write_text('bind = "unix:/run/x.sock"\nworkers = 2\n')
    doc = run_reader(tmp_path, "/v/bin/gunicorn app.wsgi")
    assert doc["named"] == "default" and doc["path"] == str(conf) and doc["exists"]
    assert doc["values"] == {"bind": "unix:/run/x.sock", "workers": 2}
    assert doc["env_args"] is None


def test_a_relative_config_is_the_working_directorys_and_the_file_never_runs(tmp_path):
    (tmp_path / "app" / "conf").mkdir(parents=True)
    marker = tmp_path / "ran"
    (tmp_path / "app" / "conf" / "g.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\ntimeout = 120\n"
    )
    doc = run_reader(tmp_path, "/v/bin/gunicorn -c conf/g.py app.wsgi")
    assert doc["named"] == "unit" and doc["path"] == str(tmp_path / "app" / "conf" / "g.py")
    assert doc["values"] == {"timeout": 120}
    assert not marker.exists()


def test_gunicorn_cmd_args_names_the_file_and_its_text_is_never_printed(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "other.py").write_text("workers = 7\n")
    r = run_reader(tmp_path, "/v/bin/gunicorn app.wsgi", "-c other.py -w 3 -e SECRET_KEY=hunter2")
    assert r["named"] == "GUNICORN_CMD_ARGS" and r["values"] == {"workers": 7}
    assert r["env_args"]["workers"] == "3" and r["env_args"]["config"] == "other.py"
    assert "hunter2" not in json.dumps(r)


def test_what_cannot_be_read_is_said(tmp_path):
    assert run_reader(tmp_path, "/v/bin/gunicorn app.wsgi") == {
        "env_args": None,
        "named": "default",
        "path": str(tmp_path / "app" / "gunicorn.conf.py"),
        "exists": False,
    }
    doc = run_reader(tmp_path, "/v/bin/gunicorn -c python:conf.gun app.wsgi")
    assert doc["error"] == "a python module: not read"
    (tmp_path / "app" / "bad.py").write_text("bind = \n")
    assert "not Python" in run_reader(tmp_path, "/v/bin/gunicorn -c bad.py x")["error"]
    assert "not-found" in run_reader(tmp_path, "/v/bin/g x", load="not-found")["error"]
    assert unit_file.parse_gunicorn_config("sudo: a password is required\n") == {
        "error": "sudo: a password is required"
    }


def test_the_reader_is_in_diagnoses_first_round_and_in_fab_info():
    from tasks import diagnose, info
    from tasks.settings import resolve

    s = resolve({})
    job = diagnose.first_round(s)["gunicorn_config"]
    # Root starts the wrapper, which drops to the unit's user; the reader is the system python.
    assert job["root"] is True and "as-service" in job["command"]
    assert "'python3' '-I' '-B' '-c'" in job["command"] or "python3 -I -B -c" in job["command"]
    assert "gunicorn_config" in {f.name for f in info.LAYOUT_FACTS}
