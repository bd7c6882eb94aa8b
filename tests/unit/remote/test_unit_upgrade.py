"""`fab upgrade-unit`: the builders of the new unit texts (tasks/remote/unit_upgrade.py) on the
`systemctl cat` output captured from the lab, and the staging program as the server runs it.
The plan and its diff: test_unit_plan.py; the scripts and the bridge: test_unit_switch.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks import programs
from tasks.remote import unit_upgrade as uu
from tasks.settings import Settings, resolve

DATA = Path(__file__).parents[1] / "data" / "upgrade_unit"
GUIDE = (DATA / "guide.cat").read_text()
UPGRADED = (DATA / "upgraded.cat").read_text()
SOCKET = (DATA / "socket.cat").read_text()
VERSION = (DATA / "version.txt").read_text()


def settings(**kw) -> Settings:
    return resolve(kw)


def test_the_guides_unit_becomes_the_socket_activated_pair():
    new = uu.plan(GUIDE, "gunicorn.socket", "www-data", notify=True)
    service, socket = new["gunicorn.service"], new["gunicorn.socket"]
    assert uu.values(service, "Unit", "Requires") == ["gunicorn.socket"]
    assert uu.values(service, "Unit", "After") == ["network.target gunicorn.socket"]
    assert uu.values(service, "Service", "Type") == ["notify"]
    assert uu.values(service, "Service", "ExecReload") == ["/bin/kill -s HUP $MAINPID"]
    assert uu.values(service, "Service", "KillMode") == ["mixed"]
    # The user's values, exactly as they were (the continuation lines too).
    old = uu.fragment(GUIDE)[1]
    for key in ("User", "Group", "WorkingDirectory", "ExecStart"):
        assert uu.values(service, "Service", key) == uu.values(old, "Service", key)
    assert "          --workers 3 \\\n" in service
    assert uu.values(service, "Install", "WantedBy") == ["multi-user.target"]
    assert uu.values(socket, "Socket", "ListenStream") == ["/home/cynow/cynow/gunicorn.sock"]
    assert uu.values(socket, "Socket", "SocketUser") == ["www-data"]
    assert uu.values(socket, "Socket", "SocketGroup") == ["www-data"]
    assert uu.values(socket, "Socket", "SocketMode") == ["0660"]
    assert uu.values(socket, "Install", "WantedBy") == ["sockets.target"]


def test_what_the_lab_got_is_what_the_builder_makes_and_it_is_idempotent():
    """The files captured from the lab after `fab upgrade-unit` are the builder's output, and
    the builder gives an upgraded unit back unchanged (so a second run changes nothing)."""
    new = uu.plan(GUIDE, "gunicorn.socket", "www-data", notify=True)
    assert new["gunicorn.service"] == uu.fragment(UPGRADED)[1]
    assert new["gunicorn.socket"] == uu.fragment(SOCKET)[1]
    again = uu.plan(UPGRADED, "gunicorn.socket", "www-data", notify=True)
    assert again == new


def test_old_gunicorn_gets_no_notify():
    new = uu.plan(GUIDE, "gunicorn.socket", "www-data", notify=False)
    assert uu.values(new["gunicorn.service"], "Service", "Type") == []
    assert uu.gunicorn_major(VERSION) == 23
    assert uu.gunicorn_major("gunicorn (version 19.9.0)") == 19
    assert uu.gunicorn_major("nonsense") is None


def test_values_kept_environment_and_existing_keys_replaced_not_doubled():
    unit = (
        "[Unit]\nDescription=x\nAfter=network.target postgresql.service\n"
        "Requires=postgresql.service\n"
        "\n[Service]\nType=simple\nUser=app\nGroup=www-data\n"
        "Environment=SECRET_KEY=abc DEBUG=0\nEnvironmentFile=/etc/app.env\n"
        "ExecStart=/srv/v/bin/gunicorn -w 5 --bind=unix:/run/app/g.sock --timeout 60 app.wsgi\n"
        "KillMode=process\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    new = uu.service_text(unit, "app.socket", notify=True)
    assert uu.values(new, "Unit", "After") == ["network.target postgresql.service app.socket"]
    assert uu.values(new, "Unit", "Requires") == ["postgresql.service app.socket"]
    assert uu.values(new, "Service", "Type") == ["notify"]
    assert uu.values(new, "Service", "KillMode") == ["mixed"]
    assert uu.values(new, "Service", "Environment") == ["SECRET_KEY=abc DEBUG=0"]
    assert uu.values(new, "Service", "EnvironmentFile") == ["/etc/app.env"]
    assert uu.socket_path(unit) == "/run/app/g.sock"
    assert uu.service_text(new, "app.socket", notify=True) == new


@pytest.mark.parametrize(
    "exec_start, why",
    [
        ("/v/bin/gunicorn app.wsgi", "binds: nothing"),
        ("/v/bin/gunicorn -b 127.0.0.1:8000 app.wsgi", "127.0.0.1:8000"),
        ("/v/bin/gunicorn -b unix:/a.sock -b unix:/b.sock app.wsgi", "exactly one"),
    ],
)
def test_units_it_cannot_rewrite_safely_are_refused(exec_start, why):
    unit = f"[Service]\nUser=a\nExecStart={exec_start}\n"
    with pytest.raises(uu.Unsupported, match=why):
        uu.service_text(unit, "gunicorn.socket", True)


def test_drop_ins_are_refused():
    cat = GUIDE + "\n# /etc/systemd/system/gunicorn.service.d/override.conf\n[Service]\nUser=x\n"
    with pytest.raises(uu.Unsupported, match="drop-ins"):
        uu.fragment(cat)


def test_the_server_side_program_writes_the_planned_texts(tmp_path, monkeypatch):
    """The staging program as the server runs it (`python3 -I -c SOURCE stage ...`), with a
    fake `systemctl` on PATH that prints the captured `systemctl cat`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "cat.txt").write_text(GUIDE)
    fake = bindir / "systemctl"
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'cat.txt'}\n")
    fake.chmod(0o755)
    stage = tmp_path / "new"
    stage.mkdir()
    r = subprocess.run(
        [sys.executable, "-I", "-B", "-c", programs.source("unit_upgrade"), "stage",
         "gunicorn.service", "gunicorn.socket", "www-data", "notify", str(stage)],
        capture_output=True, text=True, env={"PATH": f"{bindir}:/usr/bin:/bin"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    want = uu.plan(GUIDE, "gunicorn.socket", "www-data", True)
    for name, text in want.items():
        assert (stage / name).read_text() == text
        assert f"sha256 {name} {uu.sha256(text)}" in r.stdout
