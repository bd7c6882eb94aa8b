from __future__ import annotations

import os
import subprocess

import pytest

from tasks import discovery, tools
from tasks.errors import ConnectError
from tasks.runner import Output
from tasks.settings import resolve
from tasks.shell import batch, read_batch

UNIT = "gunicorn.service"
SOCKET = "gunicorn.socket"


def exec_start(argv: str) -> str:
    return f"{{ path=/x ; argv[]={argv} ; ignore_errors=no ; start_time=[n/a] }}"


def unit(**kw) -> dict:
    return {
        "Id": UNIT,
        "LoadState": "loaded",
        "User": "cynow",
        "Group": "www-data",
        "WorkingDirectory": "/home/cynow/cynow",
        "ExecStart": exec_start(
            "/home/cynow/cynow/venv/bin/gunicorn --workers 3 "
            "--bind unix:/home/cynow/cynow/gunicorn.sock config.wsgi:application"
        ),
        **kw,
    }


HAND_MADE = unit(
    User="app",
    Group="app",
    WorkingDirectory="/srv/cynow",
    ExecStart=exec_start("/srv/cynow/.venv/bin/gunicorn --bind unix:/run/cynow/g.sock x.wsgi"),
)


def test_the_guides_layout_gives_nothing_to_take():
    assert discovery.candidates(unit(), {}, resolve({})) == {}


def test_a_hand_made_unit_gives_every_layout_key_with_its_source():
    found = discovery.candidates(HAND_MADE, {}, resolve({}))
    assert found == {
        "app_user": ("app", "the unit's User="),
        "app_group": ("app", "the unit's Group="),
        "project_dir": ("/srv/cynow", "WorkingDirectory="),
        "venv": ("/srv/cynow/.venv", "ExecStart's gunicorn"),
        "socket": ("/run/cynow/g.sock", "gunicorn's --bind"),
        "static_root": ("/srv/cynow/static", "static/ in the checkout"),
    }


def test_the_guides_places_in_the_checkout_follow_the_units_checkout():
    u = {**HAND_MADE, "ExecStart": exec_start("/usr/bin/gunicorn --bind unix:/run/g.sock a.w")}
    found = discovery.candidates(u, {}, resolve({}))
    assert found["venv"] == ("/srv/cynow/venv", "venv/ in the checkout")
    assert found["static_root"] == ("/srv/cynow/static", "static/ in the checkout")
    assert "static_root" not in discovery.candidates(u, {}, resolve({"static_root": "/var/s"}))


def test_a_value_the_user_set_is_never_replaced():
    s = resolve({"project_dir": "/opt/app", "socket": "/opt/app/s.sock"})
    found = discovery.candidates(HAND_MADE, {}, s)
    assert "project_dir" not in found and "socket" not in found
    assert found["venv"] == ("/srv/cynow/.venv", "ExecStart's gunicorn")


def test_socket_activation_listen_wins_over_bind_only_while_listening():
    sock = {"Id": SOCKET, "LoadState": "loaded", "ActiveState": "active"}
    sock["Listen"] = "/run/gunicorn.sock (Stream)"
    found = discovery.candidates(HAND_MADE, sock, resolve({}))
    assert found["socket"] == ("/run/gunicorn.sock", "the socket unit's ListenStream=")
    # A socket unit that does not listen hands gunicorn nothing: its --bind is what it uses.
    found = discovery.candidates(HAND_MADE, {**sock, "ActiveState": "inactive"}, resolve({}))
    assert found["socket"] == ("/run/cynow/g.sock", "gunicorn's --bind")


def test_tcp_bind():
    u = unit(ExecStart=exec_start("/home/cynow/cynow/venv/bin/gunicorn -b 127.0.0.9:8000 a.wsgi"))
    assert discovery.candidates(u, {}, resolve({})) == {
        "socket": ("127.0.0.9:8000", "gunicorn's --bind")
    }


@pytest.mark.parametrize(
    "props",
    [
        {"LoadState": "not-found"},
        {"User": "root"},  # fix-permissions must never hand the tree to root
        {"User": ""},
        {"User": "Bad User;rm"},  # not a name a config could hold: server text is data
        {"WorkingDirectory": "relative/dir"},
        {"ExecStart": exec_start("/usr/bin/gunicorn --bind unix:rel.sock a.wsgi")},
        {"ExecStart": ""},
    ],
)
def test_what_a_config_could_not_hold_is_not_taken(props):
    found = discovery.candidates(unit(**props), {}, resolve({}))
    taken = {k for k in found if k in ("app_user", "project_dir", "venv", "socket")}
    assert not taken, found


def test_confirm_runs_in_a_real_shell(tmp_path):
    project = tmp_path / "it's a $(dir)"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / "manage.py").write_text("")
    python = project / ".venv" / "bin" / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    found = {
        "project_dir": (str(project), "WorkingDirectory="),
        "venv": (str(project / ".venv"), "ExecStart's gunicorn"),
        "socket": (str(project / "run" / "g.sock"), "gunicorn's --bind"),
        "app_user": ("root", "the unit's User="),
        "app_group": ("no-such-group-here", "the unit's Group="),
    }
    out = subprocess.run(
        ["sh", "-c", discovery.confirm_command(found)], capture_output=True, text=True
    ).stdout
    said = {k: v[0].strip() for k, v in read_batch(out).items()}
    assert said == {
        "project_dir": "yes",
        "venv": "yes",
        "socket": "no",  # its directory does not exist
        "app_user": "yes",
        "app_group": "no",
    }
    assert not (tmp_path / "dir").exists()


def test_a_socket_in_the_units_runtime_directory_is_confirmed_while_it_is_gone():
    """systemd removes a RuntimeDirectory= when the service stops: a stopped service's socket
    there is still the one it will bind (before, the guide's path was used instead)."""
    found = {"socket": ("/run/cynow-test-absent/gunicorn.sock", "gunicorn's --bind")}
    said = {}
    for unit in ({}, {"RuntimeDirectory": "cynow-test-absent"}):
        out = subprocess.run(
            ["sh", "-c", discovery.confirm_command(found, unit)], capture_output=True, text=True
        ).stdout
        said[bool(unit)] = read_batch(out)["socket"][0].strip()
    assert said == {False: "no", True: "yes"}
    assert discovery.runtime_dirs({"RuntimeDirectory": "a b/c"}) == ["/run/a", "/run/b/c"]


class FakeRemote:
    """Answers discovery's commands: the read (systemctl show...) with `show`, then the tests
    (as root) with what the shell script `confirm` prints. Without `sudo`, a root command is
    refused as sudo refuses it."""

    def __init__(self, show: str, confirm: str = "", sudo: bool = True, login_show: str = ""):
        self.settings = resolve({})
        self.show, self.confirm, self.sudo, self.calls = show, confirm, sudo, []
        self.login_show = login_show or show

    def run(self, command: str, root: bool = False, **kw) -> Output:
        self.calls.append((command, root))
        if root and not self.sudo:
            raise ConnectError("sudo: a password is required")
        if "systemctl show" in command:
            return Output(command, self.show if root else self.login_show, "", 0, 0.0)
        out = subprocess.run(["sh", "-c", self.confirm], capture_output=True, text=True).stdout
        return Output(command, out, "", 0, 0.0)


def framed(command: str, unit_text: str, socket_text: str, tmp_path, nginx: str = "") -> str:
    """read_command's output, run in a real shell with a systemctl that prints the given text
    and an nginx whose -T prints `nginx`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "systemctl"
    (tmp_path / "unit.txt").write_text(unit_text)
    (tmp_path / "socket.txt").write_text(socket_text)
    (tmp_path / "nginx.txt").write_text(nginx)
    fake.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *gunicorn.socket*) cat {tmp_path}/socket.txt;; '
        f"*) cat {tmp_path}/unit.txt;; esac\n"
    )
    (bin_dir / "nginx").write_text(f"#!/bin/sh\ncat {tmp_path}/nginx.txt\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env).stdout


def props_text(props: dict) -> str:
    return "".join(f"{k}={v}\n" for k, v in props.items())


def test_adopt_takes_what_the_server_confirms_and_says_where_it_came_from(tmp_path):
    s = resolve({})
    show = framed(discovery.read_command(s), props_text(HAND_MADE), "", tmp_path)
    # The server has the checkout and the venv; not the socket's directory, nor the user.
    answers = {"project_dir": "yes", "venv": "yes", "socket": "no", "app_user": "no"}
    answers["app_group"] = answers["static_root"] = "no"
    remote = FakeRemote(show, batch({k: f"echo {v}" for k, v in answers.items()}))
    got, has = discovery.adopt(remote)
    assert got.project_dir == "/srv/cynow" and got.venv == "/srv/cynow/.venv"
    assert got.discovered == {"project_dir": "WorkingDirectory=", "venv": "ExecStart's gunicorn"}
    assert got.socket == s.socket and got.app_user == s.app_user  # not confirmed: not taken
    assert [root for _, root in remote.calls] == [True, True]
    assert "test -f /srv/cynow/manage.py" in remote.calls[1][0]


def test_adopt_without_sudo_keeps_the_config_and_a_guides_server_costs_one_round_trip(tmp_path):
    s = resolve({})
    login = framed(discovery.read_command(s, nginx=False), props_text(HAND_MADE), "", tmp_path)
    remote = FakeRemote("", sudo=False, login_show=login)
    got, has = discovery.adopt(remote)
    assert got == s and set(has) == set(tools.PACKAGES)
    assert [root for _, root in remote.calls] == [True, False]
    assert "nginx -T" not in remote.calls[1][0]
    guide = framed(discovery.read_command(s), props_text(unit()), "", tmp_path)
    remote = FakeRemote(guide)
    assert discovery.adopt(remote)[0] == s and len(remote.calls) == 1


SITE = """# configuration file /etc/nginx/sites-enabled/cynow:
server {
    listen 80;
    server_name _ *.example.org cynow.example.com;
    location /cynow/ {
        proxy_pass http://unix:/home/cynow/cynow/gunicorn.sock;
    }
}
server {
    listen 80 default_server;
    server_name other.example.com;
    location / { return 404; }
}
"""


def test_the_sites_server_name_is_the_host_the_health_requests_ask_by(tmp_path):
    s = resolve({})
    show = framed(discovery.read_command(s), props_text(unit()), "", tmp_path, SITE)
    got, has = discovery.adopt(FakeRemote(show))
    assert got.health_host == "cynow.example.com"
    assert got.discovered == {"health_host": "nginx's server_name"}
    # One the user set is theirs: Django is then not asked; with the scheme too, nor nginx.
    mine = resolve({"health_host": "cynow.lab"})
    assert discovery.ALLOWED_MARK.strip() not in discovery.read_command(mine)
    mine = resolve({"health_host": "cynow.lab", "health_scheme": "http"})
    assert "nginx -T" not in discovery.read_command(mine)
    assert discovery.browser_name(["_", "~^www", "*.x.org", ".x.org"]) == ""
    assert discovery.browser_name(["_", "10.78.0.9"]) == "10.78.0.9"


def test_a_guides_value_the_user_wrote_is_theirs_too():
    s = resolve({"socket": "/home/cynow/cynow/gunicorn.sock"}, explicit={"socket"})
    assert "socket" in s.configured
    assert "socket" not in discovery.candidates(HAND_MADE, {}, s)
    over = resolve(
        {"targets": {"t": {"hosts": ["h"], "project_dir": "/home/cynow/cynow"}}}, "t", set()
    )
    assert over.configured == {"project_dir"}


def test_explicit_keys_come_from_the_levels_above_the_defaults():
    from invoke import Config

    from tasks.connect import explicit_keys

    config = Config(overrides={"cynow": {"socket": "/a.sock", "targets": {}}})
    config.load_collection({"cynow": {"project_dir": "/x", "venv": "/x/venv"}})
    assert explicit_keys(config) == {"socket"}


NO_BIND = unit(ExecStart=exec_start("/home/cynow/cynow/venv/bin/gunicorn config.wsgi:application"))


def test_the_config_file_and_gunicorn_cmd_args_are_read_only_when_they_can_decide():
    s = resolve({})
    assert discovery.needs_config(NO_BIND, {}, s)
    assert not discovery.needs_config(unit(), {}, s)  # ExecStart binds
    listening = {"LoadState": "loaded", "ActiveState": "active", "Listen": "/run/g.sock (Stream)"}
    assert not discovery.needs_config(NO_BIND, listening, s)  # the socket unit is the listener
    assert not discovery.needs_config(NO_BIND, {}, resolve({"socket": "/run/mine.sock"}))
    assert not discovery.needs_config({"LoadState": "not-found"}, {}, s)


def test_a_bind_from_gunicorn_cmd_args_or_the_config_file_is_the_socket():
    s = resolve({})
    conf = {"path": "/srv/g.conf.py", "exists": True, "values": {"bind": ["unix:/run/f.sock"]}}
    found = discovery.candidates(NO_BIND, {}, s, conf)
    assert found["socket"] == ("/run/f.sock", "the bind of gunicorn's config file /srv/g.conf.py")
    # gunicorn's order: GUNICORN_CMD_ARGS over the file.
    env = {**conf, "env_args": {"binds": ["127.0.0.1:8001"]}}
    assert discovery.candidates(NO_BIND, {}, s, env)["socket"] == (
        "127.0.0.1:8001",
        "GUNICORN_CMD_ARGS's --bind",
    )
    # A bind the file computes is not known: not taken; nor one when ExecStart binds itself.
    computed = {**conf, "values": {"bind": "not a literal: not read"}}
    assert "socket" not in discovery.candidates(NO_BIND, {}, s, computed)
    assert discovery.candidates(unit(), {}, s, env).get("socket") is None


def test_adopt_reads_the_config_file_then_confirms_its_bind(tmp_path):
    import json

    s = resolve({})
    show = framed(discovery.read_command(s), props_text(NO_BIND), "", tmp_path)
    report = {"path": "/home/cynow/cynow/gunicorn.conf.py", "exists": True, "named": "default"}
    report["values"] = {"bind": "unix:/run/cynow/g.sock"}

    class Remote(FakeRemote):
        def run(self, command, root=False, **kw):
            if "CYNOW-GUNICORN-CONFIG" in command:
                self.calls.append((command, root))
                return Output(command, "CYNOW-GUNICORN-CONFIG " + json.dumps(report), "", 0, 0.0)
            return super().run(command, root, **kw)

    remote = Remote(show, batch({"socket": "echo yes"}))
    got, _ = discovery.adopt(remote)
    assert got.socket == "/run/cynow/g.sock"
    assert got.discovered == {"socket": f"the bind of gunicorn's config file {report['path']}"}
    assert [root for _, root in remote.calls] == [True, True, True]
    assert "test -d /run/cynow" in remote.calls[2][0]
    # The guide's unit (ExecStart binds) costs no read of the file.
    guide = Remote(framed(discovery.read_command(s), props_text(unit()), "", tmp_path))
    discovery.adopt(guide)
    assert not any("CYNOW-GUNICORN-CONFIG" in c for c, _ in guide.calls)


def test_a_site_on_443_is_asked_with_https_and_a_nameless_one_by_djangos_allowed_hosts():
    s = resolve({})
    tls = SITE.replace("listen 80;", "listen 80;\n    listen [::]:443 ssl;")
    report = discovery.ALLOWED_MARK + '{"hosts": [".cynow.example.org", "10.0.0.5"]}'
    got = discovery.browser(s, {"nginx": tls, "allowed": report})
    assert (got.health_host, got.health_scheme) == ("cynow.example.com", "https")
    assert got.discovered == {
        "health_host": "nginx's server_name",
        "health_scheme": "nginx's listen 443",
    }
    # nginx names no site (`server_name _`): Django's first name a browser can ask by.
    nameless = SITE.replace(" *.example.org cynow.example.com", "")
    got = discovery.browser(s, {"nginx": nameless, "allowed": "noise\n" + report})
    assert (got.health_host, got.health_scheme) == ("cynow.example.org", None)
    assert got.discovered == {"health_host": "Django's ALLOWED_HOSTS"}
    # ALLOWED_HOSTS = ["*"], a settings module that did not load, no report: curl's own.
    for said in ('{"hosts": ["*", "x.org"]}', '{"hosts": null, "error": "ImportError"}', ""):
        assert discovery.browser(s, {"nginx": nameless, "allowed": said}).health_host is None
    # What the user set stays.
    mine = resolve({"health_host": "cynow.lab", "health_scheme": "http"})
    assert discovery.browser(mine, {"nginx": tls, "allowed": report}) == mine
    assert discovery.site_scheme(["80", "127.0.0.1:8443 ssl"]) == ""


def test_djangos_allowed_hosts_read_for_real_with_the_units_venv(tmp_path, monkeypatch):
    """The reader as the service would run it (the wrapper replaced: it drops to the unit's
    user, run for real in test_service.py): the python of ExecStart's venv, found on the
    server, imports the settings module in the checkout."""
    import sys

    from tasks import service

    monkeypatch.setattr(service, "as_service", lambda unit, user, cmd, strict=True: cmd)
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "python").chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gunicorn = f"{venv}/gunicorn"
    show = f"{{ path={gunicorn} ; argv[]={gunicorn} config.wsgi:application ; ignore_errors=no }}"
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\necho {shlex_quote(show)}\n")
    (bin_dir / "systemctl").chmod(0o755)
    app = tmp_path / "app"
    (app / "config").mkdir(parents=True)
    (app / "config" / "__init__.py").write_text("")
    (app / "config" / "settings.py").write_text('ALLOWED_HOSTS = ["cynow.lab", "localhost"]\n')
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    command = discovery.allowed_hosts_command(resolve({}))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, cwd=app, env=env)
    assert discovery.allowed_name(out.stdout) == "cynow.lab", out.stdout + out.stderr


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
