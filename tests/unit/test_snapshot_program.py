"""tasks/remote/snapshot.py as the server runs it (`python -B -c SOURCE MODE` in a project with
its settings), on real sqlite databases, one of them written to while it is copied."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from tasks import programs

MARK = "CYNOW-SNAPSHOT "


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    (proj / "cfg").mkdir(parents=True)
    (proj / "cfg" / "__init__.py").write_text("")
    db = tmp_path / "data dir" / "db.sqlite3"
    db.parent.mkdir()
    settings(proj, {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)})
    with sqlite3.connect(db) as c:
        c.execute("create table orders (id integer primary key, customer text)")
        c.executemany("insert into orders (customer) values (?)", [(f"c{i}",) for i in range(50)])
    return proj, db


def settings(proj, database: dict) -> None:
    (proj / "cfg" / "settings.py").write_text(f"DATABASES = {{'default': {database!r}}}\n")


def run(proj, mode, stdin=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-B", "-c", programs.source("snapshot"), mode],
        cwd=proj,
        input=stdin,
        capture_output=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "cfg.settings", **(env or {})},
        timeout=120,
    )


def mark(text: bytes) -> dict:
    line = next(ln for ln in text.decode().splitlines() if ln.startswith(MARK))
    return json.loads(line[len(MARK) :])


def rows(db) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from orders").fetchone()[0]


def test_info_names_the_engine_size_and_rows(project):
    proj, db = project
    r = run(proj, "info")
    assert r.returncode == 0, r.stderr
    info = mark(r.stdout)
    assert info["engine"] == "sqlite" and info["name"] == str(db)
    assert info["bytes"] == db.stat().st_size and info["tables"] == {"orders": 50}


def test_dump_is_a_database_with_the_same_rows(project, tmp_path):
    proj, db = project
    r = run(proj, "dump")
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(r.stdout)
    assert rows(copy) == 50
    done = mark(r.stderr)
    assert done["bytes"] == len(r.stdout) and done["tables"] == {"orders": 50}


def test_dump_while_rows_are_written_is_consistent(project, tmp_path):
    proj, db = project
    with sqlite3.connect(db) as c:  # enough pages that the copy takes a while
        c.executemany("insert into orders (customer) values (?)", [("x" * 2000,)] * 5000)
    before = rows(db)
    stop = threading.Event()

    def writer():
        conn = sqlite3.connect(db, timeout=30)
        end = time.monotonic() + 3  # bounded
        while not stop.is_set() and time.monotonic() < end:
            with conn:
                conn.execute("insert into orders (customer) values ('w')")
        conn.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        r = run(proj, "dump")
    finally:
        stop.set()
        t.join()
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(r.stdout)
    with sqlite3.connect(copy) as c:
        assert c.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert before <= rows(copy) <= rows(db)
    assert mark(r.stderr)["tables"]["orders"] == rows(copy)


def test_restore_brings_rows_back(project):
    proj, db = project
    snap = run(proj, "dump").stdout
    with sqlite3.connect(db) as c:
        c.execute("delete from orders where id > 10")
    r = run(proj, "restore", stdin=snap)
    assert r.returncode == 0, r.stderr
    assert rows(db) == 50 and mark(r.stderr)["tables"] == {"orders": 50}
    with sqlite3.connect(db) as c:
        assert c.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_restore_of_garbage_fails_and_leaves_the_database(project):
    proj, db = project
    before = db.read_bytes()
    r = run(proj, "restore", stdin=b"not a database at all" * 100)
    assert r.returncode == 1
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert db.read_bytes() == before


def test_an_unsupported_engine_says_so(project):
    proj, _ = project
    settings(proj, {"ENGINE": "django.db.backends.mysql", "NAME": "cynow"})
    r = run(proj, "info")
    assert r.returncode == 2
    assert r.stderr.decode().strip() == (
        "cynow-ops snapshot: database engine django.db.backends.mysql is not supported "
        "(sqlite3 and postgresql are)"
    )


def test_postgresql_without_its_client_names_the_package_and_never_the_password(project):
    proj, _ = project
    settings(
        proj,
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "cynow",
            "USER": "cynow",
            "PASSWORD": "s3cret-pw",
            "HOST": "/run/postgresql",
        },
    )
    r = run(proj, "dump", env={"PATH": "/nonexistent"})
    assert r.returncode == 3
    assert "postgresql-client" in r.stderr.decode()
    assert b"s3cret-pw" not in r.stdout + r.stderr
