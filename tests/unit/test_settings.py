import pytest

from tasks.errors import ConfigError, ExitCode
from tasks.settings import DEFAULTS, resolve


def test_defaults_are_the_guides_layout():
    s = resolve({})
    assert s.project_dir == "/home/cynow/cynow"
    assert s.socket == "/home/cynow/cynow/gunicorn.sock"
    assert s.venv == "/home/cynow/cynow/venv" and s.python == "/home/cynow/cynow/venv/bin/python"
    assert (s.app_user, s.app_group) == ("cynow", "www-data")
    assert s.gunicorn_unit == "gunicorn.service" and s.nginx_unit == "nginx.service"
    assert s.wsgi == "config.wsgi:application"
    assert s.required_files == ["orders/urls.py"]
    assert (s.git_remote, s.git_branch) == ("origin", "main")
    assert s.host_key_policy == "strict" and s.connect_timeout == 10
    assert s.hosts == [] and s.target is None


def test_every_default_overridable():
    s = resolve({"project_dir": "/srv/app", "git_branch": "release/2.1", "required_files": []})
    assert s.project_dir == "/srv/app" and s.git_branch == "release/2.1" and s.required_files == []


def test_target_overrides_and_hosts():
    cfg = {
        "targets": {"lab": {"hosts": ["cynow@127.0.0.11"], "socket": "/run/g.sock"}},
        "target": "lab",
    }
    s = resolve(cfg)
    assert s.hosts == ["cynow@127.0.0.11"] and s.socket == "/run/g.sock" and s.target == "lab"
    # --target wins over cynow.target
    cfg["targets"]["other"] = {"hosts": ["h2"]}
    assert resolve(cfg, "other").hosts == ["h2"]


@pytest.mark.parametrize(
    "cfg, words",
    [
        ({"project_dri": "/x"}, ["cynow.project_dri is not a setting", "did you mean project_dir"]),
        ({"project_dir": "home/cynow"}, ["cynow.project_dir must be an absolute path"]),
        ({"connect_timeout": "10"}, ["cynow.connect_timeout must be a positive number"]),
        ({"connect_timeout": True}, ["connect_timeout"]),
        ({"git_branch": "main; rm -rf /"}, ["cynow.git_branch is not a safe git branch name"]),
        ({"git_branch": "-f"}, ["git_branch"]),
        ({"git_branch": "a..b"}, ["git_branch"]),
        ({"git_remote": "origin main"}, ["git_remote is not a git remote name"]),
        ({"health_urls": "/cynow/"}, ["health_urls must be a list"]),
        ({"required_files": ["/etc/passwd"]}, ["required_files entries are paths inside"]),
        ({"required_files": ["../x"]}, ["required_files"]),
        ({"wsgi": "config.wsgi"}, ["wsgi is not a module:callable"]),
        ({"gunicorn_unit": "gunicorn"}, ["gunicorn_unit is not a systemd unit name"]),
        ({"app_user": "Root User"}, ["app_user is not a valid user"]),
        ({"host_key_policy": "no"}, ["host_key_policy must be 'strict' or 'accept-new'"]),
        ({"allowed_networks": ["10.0.0.0/33"]}, ["allowed_networks"]),
        ({"socket": "/home/cynow/../etc/x"}, ["must not contain '..'"]),
        (
            {"targets": {"lab": {"hostz": ["a"]}}, "target": "lab"},
            ["cynow.targets.lab.hostz is not a setting", "did you mean hosts"],
        ),
        (
            {"targets": {"lab": {"hosts": ["a b"]}}, "target": "lab"},
            ["cynow.targets.lab.hosts has an entry that is not [user@]host[:port]"],
        ),
        ({"target": "staging", "targets": {"lab": {}}}, ["no target named 'staging'", "lab"]),
    ],
)
def test_bad_config_is_one_line_naming_key_and_fix(cfg, words):
    with pytest.raises(ConfigError) as e:
        resolve(cfg)
    msg = e.value.message
    assert "\n" not in msg and msg.startswith("config: ")
    for w in words:
        assert w in msg
    assert ";" in msg  # what is wrong; what to do
    assert e.value.code == ExitCode.CONFIG


def test_defaults_cover_every_check():
    from tasks.settings import CHECKS

    assert set(CHECKS) - {"hosts"} == set(DEFAULTS) - {"target", "targets"}


@pytest.mark.parametrize("key", ["gunicorn_unit", "gunicorn_socket_unit", "nginx_unit"])
@pytest.mark.parametrize("name", ["-H.service", "--user.service", "-.socket"])
def test_a_unit_name_starting_with_a_dash_is_refused(key, name):
    # It would reach systemctl and journalctl as an option (`-H host` runs on another machine).
    with pytest.raises(ConfigError) as e:
        resolve({key: name})
    msg = e.value.message
    assert "\n" not in msg and f"cynow.{key} starts with '-'" in msg
    assert "as an option" in msg and "e.g. gunicorn.service" in msg


@pytest.mark.parametrize(
    "name",
    [
        "gunicorn service",
        "gunicorn;id.service",
        "g$(id).service",
        "g`id`.service",
        "g'.service",
        "gunicorn.target",
        ".service",
        "x" * 249 + ".service",
    ],
)
def test_a_unit_name_outside_systemds_characters_is_refused(name):
    with pytest.raises(ConfigError) as e:
        resolve({"gunicorn_unit": name})
    assert "is not a systemd unit name" in e.value.message
    assert "ending in .service or .socket" in e.value.message


@pytest.mark.parametrize(
    "name",
    ["gunicorn.service", "app@blue.service", "app-x_y:z.socket", r"dev-disk\x2dx.service"],
)
def test_systemds_unit_names_are_accepted(name):
    assert resolve({"gunicorn_unit": name}).gunicorn_unit == name


def test_health_host_is_a_host_name_or_nothing():
    from tasks.errors import ConfigError
    from tasks.settings import resolve

    assert resolve({}).health_host is None
    assert (
        resolve({"health_host": "cynow.example.com:8080"}).health_host == "cynow.example.com:8080"
    )
    assert resolve({"health_host": "[::1]"}).health_host == "[::1]"
    for bad in ("a b", "x;rm", "h/x", ""):
        try:
            resolve({"health_host": bad})
        except ConfigError as e:
            assert "health_host" in e.message
        else:
            raise AssertionError(bad)
