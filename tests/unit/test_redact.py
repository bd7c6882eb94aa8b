"""Secrets in command lines and unit lines are shown redacted, names and the rest unchanged."""

import pytest

from tasks.redact import REDACTED, redact_argv, redact_text, secret_name


@pytest.mark.parametrize(
    "text, shown",
    [
        ("gunicorn -e SECRET_KEY=abc app", "gunicorn -e SECRET_KEY=<redacted> app"),
        ("gunicorn --env X=1 app", "gunicorn --env X=<redacted> app"),
        ("gunicorn --env=X=1 -eY=2 app", "gunicorn --env=X=<redacted> -eY=<redacted> app"),
        ("env DJANGO_SECRET_KEY=zz gunicorn", "env DJANGO_SECRET_KEY=<redacted> gunicorn"),
        (
            "PASSWORD=pw DB_PASS=x API_TOKEN=t",
            "PASSWORD=<redacted> DB_PASS=<redacted> API_TOKEN=<redacted>",
        ),
        (
            "SENTRY_DSN=https://k@s.io/1 AWS_CREDENTIALS=c",
            "SENTRY_DSN=<redacted> AWS_CREDENTIALS=<redacted>",
        ),
        ("DATABASE_URL=postgres://a:b@c/d", "DATABASE_URL=<redacted>"),
        ("--password=hunter2 --password hunter3", "--password=<redacted> --password <redacted>"),
        ("--db-token t --api-key=k", "--db-token <redacted> --api-key=<redacted>"),
        ("postgres://user:pass@host/db", "postgres://user:<redacted>@host/db"),
        ("--url=redis://:pw@cache:6379/0", "--url=redis://:<redacted>@cache:6379/0"),
        ("Environment=SECRET_KEY=abc DEBUG=0", "Environment=SECRET_KEY=<redacted> DEBUG=0"),
        (
            "Environment=\"DB_PASSWORD=a b\" 'TOKEN=c d'",
            "Environment=\"DB_PASSWORD=<redacted>\" 'TOKEN=<redacted>'",
        ),
        ('Environment="A=1 SECRET_KEY=x"', 'Environment="A=1 SECRET_KEY=<redacted>"'),
    ],
)
def test_secret_values_are_redacted_and_names_kept(text, shown):
    assert redact_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "/home/cynow/cynow/venv/bin/python /home/cynow/cynow/venv/bin/gunicorn --workers 3 "
        "--bind unix:/home/cynow/cynow/gunicorn.sock config.wsgi:application",
        "gunicorn --no-password config.wsgi:application --keyfile /etc/ssl/k.pem",
        "DJANGO_SETTINGS_MODULE=config.settings  PYTHONPATH=/srv  DEBUG=0",
        "https://github.com/org/repo ssh://git@github.com/x http://127.0.0.1:8000/a@b",
        "  two  spaces\tand a tab ",
        "",
    ],
)
def test_ordinary_lines_are_unchanged(text):
    assert redact_text(text) == text


def test_an_argument_list_keeps_its_shape():
    argv = ["gunicorn", "-e", "SECRET_KEY=a b", "--token", "t", "A=1 PASSWORD=x", "app"]
    assert redact_argv(argv) == [
        "gunicorn",
        "-e",
        "SECRET_KEY=<redacted>",
        "--token",
        REDACTED,
        "A=1 PASSWORD=<redacted>",
        "app",
    ]


def test_an_option_after_a_secret_option_is_not_taken_as_its_value():
    assert redact_argv(["--password", "--bind", "unix:/s"]) == ["--password", "--bind", "unix:/s"]


@pytest.mark.parametrize(
    "name", ["SECRET_KEY", "db_password", "--api-token", "SENTRY_DSN", "DATABASE_URL"]
)
def test_secret_names(name):
    assert secret_name(name)


@pytest.mark.parametrize("name", ["DEBUG", "DJANGO_SETTINGS_MODULE", "--workers", "PYTHONPATH"])
def test_ordinary_names(name):
    assert not secret_name(name)


def test_status_shows_process_args_redacted():
    from tasks.status import parse_processes

    ps = "  812     1 cynow  51200 01:02:03 gunicorn -e SECRET_KEY=abc --bind unix:/s app\n"
    (proc,) = parse_processes(ps)
    assert proc["args"] == "gunicorn -e SECRET_KEY=<redacted> --bind unix:/s app"


def test_the_unit_file_check_shows_exec_start_and_environment_redacted():
    from tasks.checks import unit_file
    from tasks.checks.base import Facts
    from tasks.settings import resolve
    from tasks.shell import Part, Parts

    s = resolve({})
    argv = "/v/bin/gunicorn -e SECRET_KEY=abc --bind unix:/home/cynow/cynow/gunicorn.sock app"
    units = {s.gunicorn_unit: {"LoadState": "loaded", "ExecStart": f"{{ argv[]={argv} ; }}"}}
    (result,) = unit_file.evaluate(Facts(units=units), s)
    shown = " ".join(result.evidence) + repr(result.to_json())
    assert "SECRET_KEY=<redacted>" in shown and "abc" not in shown
    cat = "[Service]\nEnvironment=DJANGO_SECRET_KEY=abc DEBUG=0\nExecStart=/v/bin/gunicorn app\n"
    verify = "gunicorn.service: Environment=PASSWORD=pw is odd\n"
    text, lines = unit_file.parse_unit_file(Parts(cat=Part(cat, 0), verify=Part(verify, 0)))
    assert text == cat.replace("=abc", "=<redacted>")
    assert lines == ["gunicorn.service: Environment=PASSWORD=<redacted> is odd"]
