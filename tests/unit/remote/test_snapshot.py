"""tasks/remote/snapshot.py as the server runs it (`python -B -c SOURCE MODE` in a project with
its settings), on real sqlite databases, one of them written to by another process while it is
copied, and on a throwaway PostgreSQL cluster reachable only through a unix socket."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tasks import programs

MARK = "CYNOW-SNAPSHOT "
PASSWORD = "s3cret-pw"


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    (proj / "cfg").mkdir(parents=True)
    (proj / "cfg" / "__init__.py").write_text("")
    db = tmp_path / "data dir" / "db.sqlite3"
    db.parent.mkdir()
    settings(proj, {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)})
    with sqlite3.connect(db) as c:
        c.execute("create table orders (id integer primary key autoincrement, customer text)")
        c.executemany("insert into orders (customer) values (?)", [(f"c{i}",) for i in range(50)])
    c.close()
    return proj, db


def settings(proj, database: dict) -> None:
    # An app that cannot load: the program reads the settings and never sets the app up.
    (proj / "cfg" / "settings.py").write_text(
        f"INSTALLED_APPS = ['no_such_app']\nDATABASES = {{'default': {database!r}}}\n"
    )


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
    lines = [ln for ln in text.decode().splitlines() if ln.startswith(MARK)]
    assert len(lines) == 1, text
    return json.loads(lines[0][len(MARK) :])


def one_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def rows(db) -> int:
    with sqlite3.connect(db) as c:
        n = c.execute("select count(*) from orders").fetchone()[0]
    c.close()
    return n


def integrity(db) -> str:
    with sqlite3.connect(db) as c:
        result = c.execute("pragma integrity_check").fetchone()[0]
    c.close()
    return result


def test_info_names_the_engine_size_and_rows(project):
    proj, db = project
    r = run(proj, "info")
    assert r.returncode == 0, r.stderr
    info = mark(r.stdout)
    assert info["engine"] == "sqlite" and info["name"] == str(db)
    # sqlite's own sqlite_sequence is bookkeeping, not a table of the app's
    assert info["bytes"] == db.stat().st_size and info["tables"] == {"orders": 50}
    assert r.stderr == b""


def test_counts_are_the_live_rows(project):
    proj, db = project
    with sqlite3.connect(db) as c:
        c.execute("create table empty (x)")
    c.close()
    r = run(proj, "counts")
    assert r.returncode == 0, r.stderr
    assert mark(r.stdout) == {"tables": {"empty": 0, "orders": 50}}


def test_dump_is_a_database_with_the_same_rows(project, tmp_path):
    proj, db = project
    r = run(proj, "dump")
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(r.stdout)
    assert rows(copy) == 50 and integrity(copy) == "ok"
    done = mark(r.stderr)
    assert done["engine"] == "sqlite" and done["bytes"] == len(r.stdout)
    assert done["tables"] == {"orders": 50} and done["seconds"] >= 0
    assert not list(Path(tempfile.gettempdir()).glob("cynow-snapshot-*")), "temp dir left"


def test_dump_of_a_wal_database_has_the_rows_still_in_the_wal(project, tmp_path):
    proj, db = project
    keep = sqlite3.connect(db)  # open, so the last rows stay in db.sqlite3-wal
    keep.execute("pragma journal_mode=wal")
    keep.execute("pragma wal_autocheckpoint=0")
    with keep:
        keep.executemany("insert into orders (customer) values ('w')", [()] * 30)
    try:
        assert Path(f"{db}-wal").stat().st_size > 0
        info = mark(run(proj, "info").stdout)
        assert info["bytes"] == db.stat().st_size + Path(f"{db}-wal").stat().st_size
        r = run(proj, "dump")
    finally:
        keep.close()
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(r.stdout)
    assert rows(copy) == 80 and not Path(f"{copy}-wal").exists()


WRITER = """
import sqlite3, sys, time, os
conn = sqlite3.connect(sys.argv[1], timeout=30)
end = time.monotonic() + 10  # bounded, whatever happens to the test
while time.monotonic() < end and not os.path.exists(sys.argv[2]):
    with conn:
        conn.execute("insert into orders (customer) values ('w')")
"""


def test_dump_while_another_process_writes_is_consistent(project, tmp_path):
    proj, db = project
    with sqlite3.connect(db) as c:  # ~10 MB: enough pages that the copy takes a while
        c.executemany("insert into orders (customer) values (?)", [("x" * 2000,)] * 5000)
    c.close()
    before = rows(db)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(stop)])
    try:
        deadline = time.monotonic() + 10
        while rows(db) == before and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer is writing before the dump starts
        r = run(proj, "dump")
        assert r.returncode == 0, r.stderr
        copy = tmp_path / "copy.sqlite3"
        copy.write_bytes(r.stdout)
        # ...and goes on after it (waited for, not slept on: a loaded machine is slow).
        deadline = time.monotonic() + 10
        while rows(db) <= rows(copy) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.touch()
        writer.wait(timeout=30)
    assert integrity(copy) == "ok"
    assert before < rows(copy) < rows(db)
    assert mark(r.stderr)["tables"]["orders"] == rows(copy)


def test_restore_brings_rows_back(project):
    proj, db = project
    snap = run(proj, "dump").stdout
    with sqlite3.connect(db) as c:
        c.execute("delete from orders where id > 10")
    c.close()
    assert rows(db) == 10
    r = run(proj, "restore", stdin=snap)
    assert r.returncode == 0, r.stderr
    done = mark(r.stderr)
    assert rows(db) == 50 and done["tables"] == {"orders": 50} and done["bytes"] == len(snap)
    assert integrity(db) == "ok"
    assert not list(Path(tempfile.gettempdir()).glob("cynow-restore-*")), "temp dir left"


@pytest.mark.parametrize("feed", ["garbage", "truncated", "empty"])
def test_restore_of_a_bad_snapshot_fails_and_leaves_the_database(project, feed):
    proj, db = project
    snap = run(proj, "dump").stdout
    with sqlite3.connect(db) as c:  # a database that differs from the snapshot
        c.executemany("insert into orders (customer) values ('new')", [()] * 2000)
    c.close()
    bad = {
        "garbage": b"not a database at all" * 100,
        "truncated": snap[: len(snap) // 2],
        "empty": b"",
    }[feed]
    before = db.read_bytes()
    r = run(proj, "restore", stdin=bad)
    assert r.returncode == 1
    assert one_line(r).startswith("cynow-ops snapshot: ")
    assert "unchanged" in one_line(r)
    assert db.read_bytes() == before and integrity(db) == "ok"


def test_an_unsupported_engine_says_so(project):
    proj, _ = project
    settings(proj, {"ENGINE": "django.db.backends.mysql", "NAME": "cynow"})
    for mode in ("info", "dump", "restore", "counts"):
        r = run(proj, mode, stdin=b"")
        assert r.returncode == 2 and r.stdout == b""
        assert one_line(r) == (
            "cynow-ops snapshot: database engine django.db.backends.mysql is not supported "
            "(sqlite3 and postgresql are)"
        )


def test_an_unknown_mode_fails_in_one_line(project):
    proj, _ = project
    r = run(proj, "backup")
    assert r.returncode == 1 and "unknown mode" in one_line(r)


PG_SETTINGS = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "cynow",
    "USER": "cynow",
    "PASSWORD": PASSWORD,
    "HOST": "/run/postgresql",
}


@pytest.mark.parametrize("mode", ["dump", "restore"])
def test_postgresql_without_its_client_names_the_package_and_never_the_password(project, mode):
    proj, _ = project
    settings(proj, PG_SETTINGS)
    r = run(proj, mode, stdin=b"x", env={"PATH": "/nonexistent"})
    assert r.returncode == 3
    assert "postgresql-client" in one_line(r)
    assert PASSWORD.encode() not in r.stdout + r.stderr


def test_postgresql_info_without_psql_has_no_size_and_no_password(project):
    proj, _ = project
    settings(proj, PG_SETTINGS)
    r = run(proj, "info", env={"PATH": "/nonexistent"})
    assert r.returncode == 0, r.stderr
    assert mark(r.stdout) == {"engine": "postgresql", "name": "cynow", "bytes": None, "tables": {}}
    assert PASSWORD.encode() not in r.stdout + r.stderr


# A real PostgreSQL: a throwaway cluster, no TCP listener, a password the program must pass.


def server_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


@pytest.fixture
def cluster():
    bindir = server_bin()
    if bindir is None:
        why = "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}: CI must run this test (apt-get install postgresql)")
        pytest.skip(f"{why}: apt-get install postgresql")
    # initdb refuses root: as root the cluster runs as nobody, in a directory nobody can reach
    # (pytest's tmp_path is under a 0700 root directory).
    top = Path(tempfile.mkdtemp(prefix="cynow-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(top, "nobody")
        as_owner = ["runuser", "-u", "nobody", "--"]
    data, sock, port = top / "data", top / "sock", "5439"
    pwfile = top / "pw"
    pwfile.write_text(PASSWORD + "\n")
    sock.mkdir()
    if as_owner:
        for p in (pwfile, sock):
            shutil.chown(p, "nobody")

    def owner(*argv):
        r = subprocess.run(
            [*as_owner, *map(str, argv)], cwd=top, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, f"{argv[0]}: {r.stdout}{r.stderr}"

    opts = f"-c listen_addresses='' -c unix_socket_directories={sock} -p {port}"
    try:
        owner(
            bindir / "initdb", "-D", data, "-U", "cynow", "--auth=scram-sha-256", "--pwfile", pwfile
        )
        pwfile.unlink()
        owner(bindir / "pg_ctl", "-D", data, "-l", top / "log", "-o", opts, "-w", "start")
        path = f"{bindir}:{os.environ['PATH']}"  # pg_dump of the server's own version

        def psql(sql: str, db: str = "cynow") -> str:
            argv = [bindir / "psql", "-XAtq", "-h", sock, "-p", port, "-U", "cynow", "-d", db]
            r = subprocess.run(
                [*map(str, argv), "-c", sql],
                env={**os.environ, "PGPASSWORD": PASSWORD},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 0, r.stderr
            return r.stdout.strip()

        psql("create database cynow", db="postgres")
        yield {"host": str(sock), "port": port, "psql": psql, "path": path}
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(top, ignore_errors=True)


def test_postgresql_dump_and_restore_on_a_real_cluster(project, cluster):
    proj, _ = project
    settings(proj, {**PG_SETTINGS, "HOST": cluster["host"], "PORT": cluster["port"]})
    psql = cluster["psql"]
    psql("create table orders (id serial primary key, customer text)")
    psql("insert into orders (customer) select 'c' || i from generate_series(1, 50) i")
    env = {"PATH": cluster["path"], "PGPASSWORD": ""}  # the password: only from the settings

    r = run(proj, "info", env=env)
    assert r.returncode == 0, r.stderr
    info = mark(r.stdout)
    assert info["engine"] == "postgresql" and info["name"] == "cynow" and info["bytes"] > 0

    snap = run(proj, "dump", env=env)
    assert snap.returncode == 0, snap.stderr
    assert snap.stdout[:5] == b"PGDMP"  # pg_dump's custom format
    done = mark(snap.stderr)
    assert done["engine"] == "postgresql" and done["bytes"] == len(snap.stdout)

    psql("delete from orders where id > 10")
    r = run(proj, "restore", stdin=snap.stdout, env=env)
    assert r.returncode == 0, r.stderr
    assert mark(r.stderr)["bytes"] == len(snap.stdout)
    assert psql("select count(*) from orders") == "50"
    assert psql("select customer from orders where id = 50") == "c50"

    r = run(proj, "restore", stdin=b"garbage" * 100, env=env)
    assert r.returncode == 1 and "pg_restore failed" in one_line(r)
    assert psql("select count(*) from orders") == "50"

    wrong = "wr0ng-pw"
    settings(
        proj, {**PG_SETTINGS, "HOST": cluster["host"], "PORT": cluster["port"], "PASSWORD": wrong}
    )
    bad = run(proj, "dump", env=env)
    assert bad.returncode == 1 and "pg_dump failed" in one_line(bad) and bad.stdout == b""
    for out in (snap, r):
        assert PASSWORD.encode() not in out.stdout + out.stderr
    assert wrong.encode() not in bad.stderr
