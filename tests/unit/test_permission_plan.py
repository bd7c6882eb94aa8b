"""fix-permissions' pure plan (tasks/permission_plan.py): the rules, secrets and the database,
what is left alone, and the system-directory guard."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tasks import permission_plan as pp
from tasks.errors import ConfigError
from tasks.settings import resolve

S = resolve({})
SC = pp.scope(S)
P = "/home/cynow/cynow"


def entry(path, kind, mode, user="cynow", group="www-data", **kw):
    return pp.Entry(path, kind, mode, user, group, **kw)


HEALTHY = [
    entry("/home", "d", 0o755, "root", "root"),
    entry("/home/cynow", "d", 0o755, "cynow", "cynow"),
    entry(P, "d", 0o755),
    entry(f"{P}/.env", "f", 0o640, group="cynow"),
    entry(f"{P}/db.sqlite3", "f", 0o600, group="cynow"),
    entry(f"{P}/manage.py", "f", 0o755),
    entry(f"{P}/venv/bin/gunicorn", "f", 0o755),
    entry(f"{P}/venv/bin/python", "l", 0o777),
    entry(f"{P}/gunicorn.sock", "s", 0o140660),
    entry(f"{P}/static", "d", 0o755),
    entry(f"{P}/static/orders/style.css", "f", 0o644),
    entry("/var/log/cynow", "d", 0o775),
    entry("/var/log/cynow/django.log", "f", 0o664),
]


def test_a_right_tree_needs_nothing():
    changes, _, left = pp.plan_all(HEALTHY, S, SC)
    assert changes == [] and left == []


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
    changes, final = pp.plan(broken, S, SC)
    by_path = {p: e.show() for p, e in final.items()}
    assert by_path == {
        "/home": "755 root:root",
        "/home/cynow": "701 cynow:cynow",  # x for others only, no listing
        P: "755 cynow:www-data",
        f"{P}/.env": "640 cynow:cynow",  # the app user's own group, not www-data
        f"{P}/db.sqlite3": "640 cynow:cynow",  # writable by its owner, not www-data's
        f"{P}/manage.py": "755 cynow:www-data",  # keeps its x, not www-data's to write
        f"{P}/orders/views.py": "644 cynow:www-data",  # gains no x, loses g+w and o+w
        f"{P}/static/orders/style.css": "640 cynow:www-data",
        f"{P}/static": "750 cynow:www-data",
    }
    # Idempotent: the planned end state needs nothing more.
    again, _ = pp.plan(list(final.values()), S, SC)
    assert again == []
    # before -> after chains: each change starts where the previous one left the path
    db = [c for c in changes if c.path == f"{P}/db.sqlite3"]
    assert [(c.rule, c.before, c.after) for c in db] == [
        ("secrets and the database owned by cynow:cynow", "444 root:root", "444 cynow:cynow"),
        ("secrets and the database 0600/0640", "444 cynow:cynow", "640 cynow:cynow"),
    ]


@pytest.mark.parametrize(
    "name, mode, after",
    [
        (".env", 0o644, 0o640),
        (".env", 0o604, 0o600),
        (".env.production", 0o666, 0o640),
        ("prod.env", 0o755, 0o640),  # and no x
        ("config/local_settings.py", 0o644, 0o640),
        ("config/secrets.json", 0o600, 0o600),
        ("deploy/server.key", 0o644, 0o640),
        ("db.sqlite3", 0o644, 0o640),  # a world-readable database
        ("db.sqlite3", 0o666, 0o640),
        ("db.sqlite3-wal", 0o644, 0o640),
        ("db.sqlite3", 0o400, 0o600),  # writable by its owner again
    ],
)
def test_secrets_end_private_in_the_users_own_group(name, mode, after):
    e = entry(f"{P}/{name}", "f", mode, "root", "www-data")
    _, final = pp.plan([e], S, SC)
    assert final[e.path].show() == f"{after:o} cynow:cynow"


@pytest.mark.parametrize(
    "name, before, after",
    [
        # Django's settings hold SECRET_KEY: the app user's own group, never www-data's.
        ("config/settings.py", "640 cynow:cynow", "640 cynow:cynow"),
        ("config/settings.py", "644 cynow:www-data", "640 cynow:cynow"),
        ("config/settings_production.py", "664 root:root", "640 cynow:cynow"),
        # Regrouped to the group www-data shares: it gets no more than it had as "other"...
        ("orders/views.py", "640 cynow:cynow", "600 cynow:www-data"),
        ("orders/views.py", "660 cynow:cynow", "600 cynow:www-data"),
        ("orders/views.py", "644 root:root", "644 cynow:www-data"),
        # ...and never writes code, whatever the group had.
        ("orders/views.py", "666 cynow:www-data", "644 cynow:www-data"),
        ("orders/views.py", "664 cynow:www-data", "644 cynow:www-data"),
        ("venv/bin/gunicorn", "775 cynow:www-data", "755 cynow:www-data"),
        # The static tree is nginx's to read: its group reads it.
        ("static/a.css", "600 cynow:cynow", "640 cynow:www-data"),
    ],
)
def test_regrouping_to_the_web_servers_group_widens_nothing(name, before, after):
    mode, owner = before.split()
    user, group = owner.split(":")
    e = entry(f"{P}/{name}", "f", int(mode, 8), user, group)
    _, final = pp.plan([e], S, SC)
    assert final[e.path].show() == after


def test_a_code_directory_regrouped_keeps_only_the_passage_www_data_needs():
    tree = [entry(P, "d", 0o770, "cynow", "cynow"), entry(f"{P}/orders", "d", 0o775)]
    _, final = pp.plan(tree, S, SC)
    # The project: x for the group (the socket is in it), no read, no write.
    assert final[P].show() == "710 cynow:www-data"
    assert final[f"{P}/orders"].show() == "755 cynow:www-data"


def test_the_database_the_settings_name_is_private_whatever_its_name():
    db = f"{P}/var/cynow_data"
    tree = [
        entry(f"{P}/var", "d", 0o775),
        entry(db, "f", 0o664),
        entry(f"{db}-journal", "f", 0o644),
        entry(f"{P}/orders/data", "f", 0o644),
    ]
    _, by_name = pp.plan(tree, S, SC)
    assert by_name[db].show() == "644 cynow:www-data"  # unnamed: taken for code
    _, final = pp.plan(tree, S, replace(SC, database=db))
    assert {p: e.show() for p, e in final.items()} == {
        f"{P}/var": "750 cynow:cynow",  # the database's own directory
        db: "640 cynow:cynow",
        f"{db}-journal": "640 cynow:cynow",
        f"{P}/orders/data": "644 cynow:www-data",
    }


def test_no_system_directory_on_the_way_gets_o_x_it_is_reported():
    s = resolve({"socket": "/var/lib/cynow/run/g.sock", "static_root": "/srv/cynow/static"})
    sc = pp.scope(s)
    tree = [
        entry("/home", "d", 0o751, "root", "root"),
        entry("/var", "d", 0o755, "root", "root"),
        entry("/var/lib", "d", 0o750, "root", "root"),  # not passable: the admin's choice
        entry("/var/lib/cynow", "d", 0o700, "cynow", "cynow"),
        entry("/var/lib/cynow/run", "d", 0o700, "cynow", "cynow"),
        entry("/srv", "d", 0o700, "root", "root"),
    ]
    changes, final, left = pp.plan_all(tree, s, sc)
    assert {c.path for c in changes} == {"/var/lib/cynow", "/var/lib/cynow/run"}
    assert final["/var/lib"].show() == "750 root:root" and final["/srv"].show() == "700 root:root"
    assert {item["path"] for item in left} == {"/var/lib", "/srv"}
    assert all("system directory" in item["why"] for item in left)
    # /home and what is below /run are every server's way to a home or a runtime directory.
    s = resolve({"socket": "/run/gunicorn/g.sock", "static_root": "/home/cynow/cynow/static"})
    tree = [entry("/run/gunicorn", "d", 0o700), entry("/home", "d", 0o750, "root", "root")]
    _, final, left = pp.plan_all(tree, s, pp.scope(s))
    assert final["/run/gunicorn"].show() == "710 cynow:www-data"
    assert final["/home"].show() == "751 root:root" and left == []


def test_the_databases_own_directory_is_private_but_a_code_directory_is_not():
    tree = [
        entry(f"{P}/data", "d", 0o775),
        entry(f"{P}/data/db.sqlite3", "f", 0o664),
        entry(f"{P}/data/db.sqlite3-journal", "f", 0o644),
        entry(f"{P}/orders", "d", 0o755),
        entry(f"{P}/orders/cache.db", "f", 0o644),
        entry(f"{P}/orders/views.py", "f", 0o644),
        entry(f"{P}/venv/lib/python3.11/site-packages/x/secrets.py", "f", 0o644),
    ]
    _, final = pp.plan(tree, S, SC)
    assert {p: e.show() for p, e in final.items()} == {
        f"{P}/data": "750 cynow:cynow",
        f"{P}/data/db.sqlite3": "640 cynow:cynow",
        f"{P}/data/db.sqlite3-journal": "640 cynow:cynow",
        f"{P}/orders": "755 cynow:www-data",  # code lives there too: not the database's own
        f"{P}/orders/cache.db": "640 cynow:cynow",
        f"{P}/orders/views.py": "644 cynow:www-data",
        f"{P}/venv/lib/python3.11/site-packages/x/secrets.py": "644 cynow:www-data",
    }


def test_a_primary_group_shared_with_the_web_server_gets_no_group_bits():
    sc = replace(SC, private_group="www-data")
    _, final = pp.plan([entry(f"{P}/.env", "f", 0o640)], S, sc)
    assert final[f"{P}/.env"].show() == "600 cynow:www-data"


def test_the_socket_ends_0660_in_www_data():
    e = entry(f"{P}/gunicorn.sock", "s", 0o777, "root", "root")
    _, final = pp.plan([e], S, SC)
    assert final[e.path].show() == "660 cynow:www-data"


def test_symlinks_devices_and_foreign_hard_links_are_left_alone():
    tree = [
        entry(f"{P}/passwd", "l", 0o777, "root", "root"),
        entry(f"{P}/shadow", "f", 0o640, "root", "shadow", links=2),
        entry(f"{P}/mine", "f", 0o666, links=2),  # the app user's own: changed
        entry(f"{P}/venv/bin/python", "l", 0o777),  # nothing to change: not reported
    ]
    changes, final, left = pp.plan_all(tree, S, SC)
    assert {c.path for c in changes} == {f"{P}/mine"}
    assert left == [
        {"path": f"{P}/passwd", "why": "symlink"},
        {"path": f"{P}/shadow", "why": "hard link"},
    ]
    assert final[f"{P}/passwd"] == tree[0] and final[f"{P}/shadow"] == tree[1]


def test_nothing_outside_the_scope_is_touched():
    outside = [
        entry("/etc/passwd", "f", 0o666, "root", "root"),
        entry("/home/other/x", "f", 0o600, "other", "other"),
    ]
    assert pp.plan(outside, S, SC) == ([], {e.path: e for e in outside})


SYSTEM = [
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/dev/shm",
    "/etc",
    "/etc/nginx",
    "/lib",
    "/lib64",
    "/lib32",
    "/lib/systemd",
    "/proc",
    "/proc/1",
    "/root",
    "/root/cynow",
    "/run",
    "/run/gunicorn",
    "/sbin",
    "/sys",
    "/usr",
    "/usr/local",
    "/usr/local/cynow",
    "/usr/share/nginx",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/spool",
    "/var/cache",
    "/var/mail",
    "/var/www",
    "/tmp",
    "/home",
    "/srv",
    "/opt",
    "/cynow",  # any top-level directory
]


@pytest.mark.parametrize("path", SYSTEM)
def test_every_system_directory_is_refused_with_one_line(path):
    with pytest.raises(ConfigError) as e:
        pp.scope(resolve({"project_dir": path}))
    assert e.value.message == (
        f"refusing to change permissions under {path} (project_dir): it is a system "
        "directory; point the setting at the app's own directory"
    )


@pytest.mark.parametrize(
    "spelled, means", [("/home/", "/home"), ("//etc", "/etc"), ("/usr/local/", "/usr/local")]
)
def test_a_system_directory_spelled_otherwise_is_refused(spelled, means):
    with pytest.raises(ConfigError, match=f"under {means} \\(project_dir\\)"):
        pp.scope(resolve({"project_dir": spelled}))


@pytest.mark.parametrize(
    "cfg, key",
    [
        ({"static_root": "/var/www"}, "static_root"),
        ({"django_log": "/var/log/django.log"}, "django_log's directory"),
        ({"django_log": "/tmp/django.log"}, "django_log's directory"),
    ],
)
def test_the_static_and_log_directories_are_guarded_too(cfg, key):
    with pytest.raises(ConfigError, match=f"\\({key}\\): it is a system directory"):
        pp.scope(resolve(cfg))


@pytest.mark.parametrize(
    "path", ["/home/cynow/cynow", "/srv/cynow", "/opt/cynow", "/var/lib/cynow", "/var/www/cynow"]
)
def test_an_apps_own_directory_is_allowed(path):
    assert pp.scope(resolve({"project_dir": path})).project == path
