"""upgrade-unit's plan (tasks/unit_plan.py) on the `systemctl cat` output captured from the lab:
what changes, its diff (secrets redacted), and the units it refuses to rewrite."""

from __future__ import annotations

import pytest

from tasks import shell
from tasks.errors import OpsError
from tasks.unit_plan import Plan, diff, make_plan
from tests.unit.remote.test_unit_upgrade import GUIDE, SOCKET, UPGRADED, VERSION, settings


def parts(
    cat=GUIDE, socket="", frag="/etc/systemd/system/gunicorn.service", kind="regular file root"
):
    return shell.Parts(
        cat=shell.Part(cat, 0),
        show=shell.Part(f"FragmentPath={frag}\nDropInPaths=\nLoadState=loaded\n", 0),
        socket=shell.Part(socket, 0 if socket else 1),
        kind=shell.Part(kind + "\n", 0),
    )


def test_plan_and_diff():
    s = settings()
    plan = make_plan(s, parts(), VERSION)
    assert plan.changed == ["gunicorn.service", "gunicorn.socket"] and plan.notify
    d = diff(plan)
    assert "+++ /etc/systemd/system/gunicorn.socket" in d and "--- /dev/null" in d
    assert "+Requires=gunicorn.socket\n" in d and "+KillMode=mixed\n" in d
    done = make_plan(s, parts(UPGRADED, SOCKET), VERSION)
    assert done.changed == [] and diff(done) == ""


def test_the_printed_diff_redacts_secrets():
    plan = Plan(
        {"a.service": "[Service]\nEnvironment=SECRET_KEY=hunter2\n"},
        {"a.service": "[Service]\nEnvironment=SECRET_KEY=hunter2\nKillMode=mixed\n"},
        "/s",
        True,
        "",
    )
    assert "hunter2" not in diff(plan)


@pytest.mark.parametrize(
    "kw, why",
    [
        ({"frag": "/lib/systemd/system/gunicorn.service"}, "not root's own file"),
        ({"kind": "symbolic link root"}, "not root's own file"),
        ({"kind": "regular file cynow"}, "not root's own file"),
    ],
)
def test_a_unit_file_root_does_not_own_in_etc_is_not_rewritten(kw, why):
    with pytest.raises(OpsError, match=why):
        make_plan(settings(), parts(**kw), VERSION)


def test_a_half_done_or_foreign_socket_unit_is_not_touched():
    """The switch assumes a gunicorn binding its own socket and no socket unit: a socket unit
    that differs, or an upgraded service without its socket unit, is refused before any change."""
    other = SOCKET.replace("SocketMode=0660", "SocketMode=0600")
    with pytest.raises(OpsError, match="exists and differs"):
        make_plan(settings(), parts(GUIDE, other), VERSION)
    with pytest.raises(OpsError, match="exists and differs"):
        make_plan(settings(), parts(UPGRADED, other), VERSION)
    with pytest.raises(OpsError, match="is missing"):
        make_plan(settings(), parts(UPGRADED, ""), VERSION)
    with pytest.raises(OpsError, match="still binds its own socket"):
        make_plan(settings(), parts(GUIDE, SOCKET), VERSION)
