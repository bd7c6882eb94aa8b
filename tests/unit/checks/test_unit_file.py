import pytest

from tasks.checks import services, unit_file
from tests.unit.checks.conftest import captured


def test_exec_start_and_gunicorn_arguments():
    units = captured("healthy_lab", services.FACTS[0])
    cat, _verify = captured("healthy_lab", unit_file.FACTS[0])
    argv = unit_file.exec_argv(units["gunicorn.service"]["ExecStart"])
    assert argv[0] == "/home/cynow/cynow/venv/bin/gunicorn"
    args = unit_file.gunicorn_args(argv)
    assert args["binds"] == ["unix:/home/cynow/cynow/gunicorn.sock"]
    assert args["app"] == "config.wsgi:application"
    assert "ExecStart=/home/cynow/cynow/venv/bin/gunicorn" in cat


@pytest.mark.parametrize(
    "argv, binds, app",
    [
        (["g", "-w", "3", "-b", "unix:/a.sock", "cfg.wsgi:app"], ["unix:/a.sock"], "cfg.wsgi:app"),
        (["g", "--bind=0.0.0.0:8000", "--timeout", "60", "m:a"], ["0.0.0.0:8000"], "m:a"),
        (["g", "--chdir", "/srv", "-k", "gevent", "x.wsgi"], [], "x.wsgi"),
    ],
)
def test_gunicorn_args(argv, binds, app):
    assert unit_file.gunicorn_args(argv) == {"binary": "g", "binds": binds, "app": app}


def test_second_round_checks_only_what_the_unit_names_beyond_the_guide(s):
    from tasks.checks.base import Facts

    facts = Facts(paths={"/home/cynow/cynow/venv/bin/gunicorn": "exec", "user:cynow": "ok"})
    facts.units = {
        "gunicorn.service": {
            "LoadState": "loaded",
            "ExecStart": "{ path=/srv/app/.venv/bin/gunicorn ; "
            "argv[]=/srv/app/.venv/bin/gunicorn x.wsgi ; ignore_errors=no }",
            "WorkingDirectory": "/srv/app",
            "User": "cynow",
            "Group": "app group",
        }
    }
    cmd = unit_file.unit_paths_command(s, facts)
    assert "/srv/app/.venv/bin/gunicorn" in cmd and "'app group'" in cmd
    assert "id -u" not in cmd  # the user was checked in round one
