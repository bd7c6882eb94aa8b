# The database snapshot program, run on the server as the app user with the venv's python in
# the project directory, DJANGO_SETTINGS_MODULE set (tasks/snapshots.py builds the command):
#
#   python -B -c SOURCE info     stdout: CYNOW-SNAPSHOT {engine, name, bytes, tables}
#   python -B -c SOURCE dump     stdout: the snapshot's bytes; stderr: CYNOW-SNAPSHOT {engine,
#                                bytes, seconds, tables (of the copy)}
#   python -B -c SOURCE restore  stdin: a snapshot; stderr: CYNOW-SNAPSHOT {engine, bytes,
#                                seconds, tables (after)}
#   python -B -c SOURCE counts   stdout: CYNOW-SNAPSHOT {tables}
#
# Exit 0 done, 1 failed (one line on stderr), 2 engine not supported, 3 a PostgreSQL client
# tool is missing. The settings module is imported, never the app (its URLs may be broken:
# that is when a snapshot matters most). A password only ever travels in PGPASSWORD.
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

MARK = "CYNOW-SNAPSHOT "
CHUNK = 1 << 20


class Fail(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def database():
    sys.path.insert(0, os.getcwd())
    from django.conf import settings

    db = settings.DATABASES["default"]
    engine = db.get("ENGINE", "")
    if engine.endswith("sqlite3"):
        return "sqlite", db
    if "postgresql" in engine:
        return "postgresql", db
    raise Fail(
        f"cynow-ops snapshot: database engine {engine} is not supported "
        "(sqlite3 and postgresql are)",
        2,
    )


def counts(conn):
    names = [
        r[0]
        for r in conn.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
        )
    ]
    return {n: conn.execute(f'select count(*) from "{n}"').fetchone()[0] for n in sorted(names)}


def read_only(path):
    # The live database opened read-only: the snapshot cannot change what it copies.
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)


def checked(conn):
    result = conn.execute("pragma integrity_check").fetchone()[0]
    if result != "ok":
        raise Fail(f"cynow-ops snapshot: the copy fails sqlite's integrity check: {result}")


def pg_env(db):
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    args = []
    for flag, key in (("-h", "HOST"), ("-p", "PORT"), ("-U", "USER")):
        if db.get(key):
            args += [flag, str(db[key])]
    return env, args + ["-d", str(db.get("NAME", ""))]


def pg_tool(name):
    path = shutil.which(name)
    if not path:
        raise Fail(f"cynow-ops snapshot: {name} is missing: install postgresql-client", 3)
    return path


def info(engine, db):
    if engine == "sqlite":
        path = str(db["NAME"])
        size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        with read_only(path) as conn:
            tables = counts(conn)
        return {"engine": engine, "name": path, "bytes": size, "tables": tables}
    env, args = pg_env(db)
    size = None
    psql = shutil.which("psql")
    if psql:
        query = "select pg_database_size(current_database())"
        r = subprocess.run(
            [psql, "-XAtc", query, *args], env=env, capture_output=True, text=True, timeout=60
        )
        size = int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else None
    return {"engine": engine, "name": str(db.get("NAME", "")), "bytes": size, "tables": {}}


def dump(engine, db):
    t0 = time.monotonic()
    out = sys.stdout.buffer
    if engine == "postgresql":
        env, args = pg_env(db)
        proc = subprocess.Popen(
            [pg_tool("pg_dump"), "-Fc", "--no-owner", *args], env=env, stdout=subprocess.PIPE
        )
        written = 0
        for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
            out.write(chunk)
            written += len(chunk)
        if proc.wait() != 0:
            raise Fail(f"cynow-ops snapshot: pg_dump failed (exit {proc.returncode})")
        out.flush()
        return {"engine": engine, "bytes": written, "seconds": time.monotonic() - t0, "tables": {}}
    work = tempfile.mkdtemp(prefix="cynow-snapshot-")
    try:
        copy = os.path.join(work, "db.sqlite3")
        with read_only(db["NAME"]) as src, sqlite3.connect(copy) as dst:
            # The online backup API: a consistent copy while gunicorn's workers keep writing.
            src.backup(dst)
            checked(dst)
            tables = counts(dst)
        written = 0
        with open(copy, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                out.write(chunk)
                written += len(chunk)
        out.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"engine": engine, "bytes": written, "seconds": time.monotonic() - t0, "tables": tables}


def restore(engine, db):
    t0 = time.monotonic()
    data = sys.stdin.buffer
    if engine == "postgresql":
        env, args = pg_env(db)
        tool = pg_tool("pg_restore")
        cmd = [tool, "--clean", "--if-exists", "--no-owner", "--single-transaction", *args]
        r = subprocess.run(cmd, env=env, stdin=data, capture_output=True)
        if r.returncode != 0:
            last = (r.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
            raise Fail(f"cynow-ops snapshot: pg_restore failed: {last}")
        return {"engine": engine, "bytes": None, "seconds": time.monotonic() - t0, "tables": {}}
    work = tempfile.mkdtemp(prefix="cynow-restore-")
    try:
        copy = os.path.join(work, "db.sqlite3")
        read = 0
        with open(copy, "wb") as f:
            for chunk in iter(lambda: data.read(CHUNK), b""):
                f.write(chunk)
                read += len(chunk)
        try:
            with read_only(copy) as src:
                checked(src)
        except sqlite3.DatabaseError as e:
            raise Fail(f"cynow-ops snapshot: not a usable sqlite snapshot: {e}")
        # Into the live file through sqlite's own locking: a worker sees the old database or
        # the restored one, never a file half-copied.
        with read_only(copy) as src, sqlite3.connect(db["NAME"], timeout=30) as live:
            src.backup(live)
            tables = counts(live)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"engine": engine, "bytes": read, "seconds": time.monotonic() - t0, "tables": tables}


def main(mode):
    engine, db = database()
    if mode == "info":
        print(MARK + json.dumps(info(engine, db)))
    elif mode == "counts":
        tables = {}
        if engine == "sqlite":
            with read_only(db["NAME"]) as conn:
                tables = counts(conn)
        print(MARK + json.dumps({"tables": tables}))
    elif mode in ("dump", "restore"):
        done = dump(engine, db) if mode == "dump" else restore(engine, db)
        done["seconds"] = round(done["seconds"], 3)
        sys.stderr.write(MARK + json.dumps(done) + "\n")
    else:
        raise Fail(f"cynow-ops snapshot: unknown mode {mode!r} (info, dump, restore, counts)")


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else "")
    except Fail as e:
        sys.stderr.write(str(e) + "\n")
        sys.exit(e.code)
    except Exception as e:  # noqa: BLE001 (one line for the operator, never a traceback)
        sys.stderr.write(f"cynow-ops snapshot: {type(e).__name__}: {e}\n")
        sys.exit(1)
