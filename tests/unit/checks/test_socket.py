"""Step 5, the socket: a file nobody listens on is stale, unless a socket unit that is stopped
holds it (systemd keeps the file and binds over it at the next start)."""

from tasks.checks.base import Facts
from tasks.checks.socket import evaluate, stopped_socket_unit
from tasks.settings import resolve

SOCK = "/run/gunicorn.sock"


def facts(socket_unit: dict | None) -> Facts:
    f = Facts()
    f.listener = {
        "exists": True,
        "type": "socket",
        "listening": False,
        "listed_by": "ss",
        "owner": "www-data",
        "group": "www-data",
        "mode": "660",
    }
    if socket_unit is not None:
        f.units = {"gunicorn.socket": {"LoadState": "loaded", **socket_unit}}
    return f


def socket_check(f: Facts, s):
    return next(r for r in evaluate(f, s) if r.id == "listener.socket")


def test_a_file_nobody_listens_on_is_stale_without_a_socket_unit():
    s = resolve({"socket": SOCK})
    r = socket_check(facts(None), s)
    assert [x.cause for x in r.findings] == ["stale_socket"]
    assert r.findings[0].fix[0] == f"sudo rm -f {SOCK}"


def test_the_file_of_a_stopped_socket_unit_is_gunicorn_stopped_and_never_deleted():
    s = resolve({"socket": SOCK})
    f = facts({"ActiveState": "inactive", "Listen": f"{SOCK} (Stream)"})
    assert stopped_socket_unit(f, s) == f"gunicorn.socket: inactive (ListenStream={SOCK})"
    r = socket_check(f, s)
    assert [x.cause for x in r.findings] == ["gunicorn_stopped"]
    assert r.findings[0].fix == ["sudo systemctl start gunicorn.socket gunicorn.service"]
    assert not any("rm" in line for line in r.findings[0].fix)


def test_an_active_socket_unit_or_another_path_leaves_it_stale():
    s = resolve({"socket": SOCK})
    for unit in (
        {"ActiveState": "active", "Listen": f"{SOCK} (Stream)"},
        {"ActiveState": "inactive", "Listen": "/run/other.sock (Stream)"},
    ):
        assert stopped_socket_unit(facts(unit), s) == ""
        assert [x.cause for x in socket_check(facts(unit), s).findings] == ["stale_socket"]
