import pytest

from tasks import fix_permissions as fp
from tasks.errors import ConfigError
from tasks.settings import resolve

S = resolve({})
SC = fp.scope(S)
P = "/home/cynow/cynow"


def entry(path, kind, mode, user="cynow", group="www-data"):
    return fp.Entry(path, kind, mode, user, group)


HEALTHY = [
    entry("/home", "d", 0o755, "root", "root"),
    entry("/home/cynow", "d", 0o755, "cynow", "cynow"),
    entry(P, "d", 0o755),
    entry(f"{P}/.env", "f", 0o640),
    entry(f"{P}/db.sqlite3", "f", 0o660),
    entry(f"{P}/manage.py", "f", 0o755),
    entry(f"{P}/venv/bin/gunicorn", "f", 0o755),
    entry(f"{P}/gunicorn.sock", "s", 0o140660),
    entry(f"{P}/static", "d", 0o755),
    entry(f"{P}/static/orders/style.css", "f", 0o644),
    entry("/var/log/cynow", "d", 0o775),
    entry("/var/log/cynow/django.log", "f", 0o664),
]


def test_a_right_tree_needs_nothing():
    changes, _ = fp.plan(HEALTHY, S, SC)
    assert changes == []


def test_the_broken_tree_of_the_issue():
    broken = [
        entry("/home", "d", 0o755, "root", "root"),
        entry("/home/cynow", "d", 0o700, "cynow", "cynow"),  # bookworm's adduser default
        entry(P, "d", 0o755, "root", "root"),
        entry(f"{P}/.env", "f", 0o644),  # a world-readable secret
        entry(f"{P}/db.sqlite3", "f", 0o444, "root", "root"),  # `sudo manage.py migrate`
        entry(f"{P}/manage.py", "f", 0o775),
        entry(f"{P}/orders/views.py", "f", 0o666),
        entry(f"{P}/static/orders/style.css", "f", 0o600, "root", "root"),
        entry(f"{P}/static", "d", 0o700, "root", "root"),
    ]
    changes, final = fp.plan(broken, S, SC)
    by_path = {p: e.show() for p, e in final.items()}
    assert by_path == {
        "/home": "755 root:root",
        "/home/cynow": "701 cynow:cynow",  # x for others only, no listing
        P: "755 cynow:www-data",
        f"{P}/.env": "640 cynow:www-data",
        f"{P}/db.sqlite3": "640 cynow:www-data",
        f"{P}/manage.py": "775 cynow:www-data",  # keeps its x
        f"{P}/orders/views.py": "664 cynow:www-data",  # gains no x, loses o+w
        f"{P}/static/orders/style.css": "640 cynow:www-data",
        f"{P}/static": "750 cynow:www-data",
    }
    # Idempotent: the planned end state needs nothing more.
    again, _ = fp.plan(list(final.values()), S, SC)
    assert again == []
    # before -> after chains: each change starts where the previous one left the path
    db = [c for c in changes if c.path == f"{P}/db.sqlite3"]
    assert [(c.before, c.after) for c in db] == [
        ("444 root:root", "444 cynow:www-data"),
        ("444 cynow:www-data", "440 cynow:www-data"),
        ("440 cynow:www-data", "640 cynow:www-data"),
    ]


def test_nothing_outside_the_scope_is_touched():
    outside = [
        entry("/etc/passwd", "f", 0o666, "root", "root"),
        entry("/home/other/x", "f", 0o600, "other", "other"),
    ]
    assert fp.plan(outside, S, SC) == ([], {e.path: e for e in outside})


@pytest.mark.parametrize(
    "cfg",
    [
        {"project_dir": "/home"},
        {"static_root": "/var/www"},
        {"django_log": "/var/log/django.log"},
        {"project_dir": "/srv"},
    ],
)
def test_system_directories_are_refused(cfg):
    with pytest.raises(ConfigError, match="refusing to change permissions under"):
        fp.scope(resolve(cfg))


def test_apply_commands_are_exact_and_quoted():
    before = {
        "/home/cynow/cynow/a b": entry("/home/cynow/cynow/a b", "f", 0o644, "root", "root"),
        "/home/cynow/cynow/l": entry("/home/cynow/cynow/l", "l", 0o777, "root", "root"),
    }
    after = {
        "/home/cynow/cynow/a b": entry("/home/cynow/cynow/a b", "f", 0o640),
        "/home/cynow/cynow/l": entry("/home/cynow/cynow/l", "l", 0o775),
    }
    assert fp.apply_commands(before, after) == [
        "chown -h cynow:www-data -- '/home/cynow/cynow/a b' /home/cynow/cynow/l",
        "chmod 640 -- '/home/cynow/cynow/a b'",  # never chmod through a symlink
    ]


def test_parse_entries_nul_separated_with_odd_names():
    text = "755 cynow www-data d /home/cynow/cynow\x00644 root root f /home/cynow/cynow/a\nb c\x00"
    got = fp.parse_entries(text)
    assert [(e.path, e.mode, e.user) for e in got] == [
        ("/home/cynow/cynow", 0o755, "cynow"),
        ("/home/cynow/cynow/a\nb c", 0o644, "root"),
    ]
