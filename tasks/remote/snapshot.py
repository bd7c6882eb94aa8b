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
# tool is missing. Only the settings module is imported, never the app (no django.setup(): its
# URLs or models may be broken, which is when a snapshot matters most). A password only ever
# travels in PGPASSWORD, and is masked in any message that would carry it.
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from urllib.parse import quote

MARK = "CYNOW-SNAPSHOT "
CHUNK = 1 << 20
SECRETS = []


class Fail(Exception):
    def __init__(self, message, code=1):
        super().__init__("cynow-ops snapshot: " + message)
        self.code = code


def database():
    sys.path.insert(0, os.getcwd())
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db.get("PASSWORD"):
        SECRETS.append(str(db["PASSWORD"]))
    engine = str(db.get("ENGINE", ""))
    if engine.endswith(("sqlite3", "spatialite")):
        return "sqlite", db
    if engine.endswith(("postgresql", "postgresql_psycopg2", "postgis")):
        return "postgresql", db
    raise Fail(f"database engine {engine} is not supported (sqlite3 and postgresql are)", 2)


def counts(conn):
    # sqlite's own tables (sqlite_sequence, sqlite_stat1) are bookkeeping, not the app's rows.
    names = conn.execute(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite\\_%' "
        "escape '\\' order by name"
    ).fetchall()
    quoted = {n: n.replace('"', '""') for (n,) in names}
    return {n: conn.execute(f'select count(*) from "{q}"').fetchone()[0] for n, q in quoted.items()}


def read_only(path):
    # Read-only: whatever happens here, the live database is not written to.
    return closing(sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30))


def checked(conn):
    result = conn.execute("pragma integrity_check").fetchone()[0]
    if result != "ok":
        raise Fail(f"the copy fails sqlite's integrity check: {result}")


def pump(src, dst):
    n = 0
    for chunk in iter(lambda: src.read(CHUNK), b""):
        dst.write(chunk)
        n += len(chunk)
    dst.flush()
    return n


def pg(db, tool, *options):
    path = shutil.which(tool)
    if not path:
        raise Fail(f"{tool} is missing: install the Debian package postgresql-client", 3)
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    # -w: never prompt (there is no terminal); HOST may be a socket directory, or empty.
    argv = [path, "-w", *options]
    for flag, key in (("-h", "HOST"), ("-p", "PORT"), ("-U", "USER")):
        if db.get(key):
            argv += [flag, str(db[key])]
    return argv + ["-d", str(db.get("NAME", ""))], env


def pg_failed(tool, proc, err):
    err.seek(0)
    lines = err.read().decode(errors="replace").strip().splitlines() or ["no message"]
    return Fail(f"{tool} failed (exit {proc.returncode}): {' '.join(lines[-3:])}")


def live_tables(engine, db):
    if engine != "sqlite":
        return {}  # counting every PostgreSQL table would be a scan of the whole database
    with read_only(db["NAME"]) as conn:
        return counts(conn)


def info(engine, db):
    if engine == "sqlite":
        path = str(db["NAME"])
        size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        return {"engine": engine, "name": path, "bytes": size, "tables": live_tables(engine, db)}
    size = None
    try:
        argv, env = pg(db, "psql", "-XAt", "-c", "select pg_database_size(current_database())")
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        size = int(r.stdout.strip()) if r.returncode == 0 else None
    except (Fail, ValueError, subprocess.TimeoutExpired):
        pass  # psql only measures: without it the size is unknown, not an error
    return {"engine": engine, "name": str(db.get("NAME", "")), "bytes": size, "tables": {}}


def dump(engine, db, out):
    if engine == "postgresql":
        # pg_dump reads inside one repeatable-read transaction: consistent while the site writes.
        argv, env = pg(db, "pg_dump", "-Fc", "--no-owner")
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err)
            written = pump(proc.stdout, out)
            if proc.wait() != 0:
                raise pg_failed("pg_dump", proc, err)
        return written, {}
    work = tempfile.mkdtemp(prefix="cynow-snapshot-")  # 0700: the copy is as private as the db
    try:
        copy = os.path.join(work, "db.sqlite3")
        with read_only(db["NAME"]) as src, closing(sqlite3.connect(copy)) as dst:
            # No fsync of a copy streamed out and deleted at once: a third less time, less I/O.
            dst.execute("pragma synchronous=off")
            # One step (pages=-1) under one read lock: an incremental backup starts over at
            # every write from another connection, and under load might never finish.
            src.backup(dst)
            # One self-contained file whatever the live journal mode (no -wal beside it).
            dst.execute("pragma journal_mode=delete")
            checked(dst)
            tables = counts(dst)
        with open(copy, "rb") as f:
            return pump(f, out), tables
    finally:
        shutil.rmtree(work, ignore_errors=True)


def restore(engine, db, data):
    if engine == "postgresql":
        # One transaction: a snapshot pg_restore cannot read leaves the database as it was.
        opts = ("--clean", "--if-exists", "--no-owner", "--single-transaction")
        argv, env = pg(db, "pg_restore", *opts)
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=err, stderr=err)
            read = 0
            try:
                read = pump(data, proc.stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # pg_restore stopped reading; its own message says why
            if proc.wait() != 0:
                raise pg_failed("pg_restore", proc, err)
        return read, {}
    work = tempfile.mkdtemp(prefix="cynow-restore-")
    try:
        copy = os.path.join(work, "db.sqlite3")
        with open(copy, "wb") as f:
            read = pump(data, f)
        if read == 0:  # even an empty database is 4 KiB: nothing means a broken feed
            raise Fail("the snapshot is empty (0 bytes read); the database is unchanged")
        try:
            with read_only(copy) as src:
                checked(src)
        except sqlite3.DatabaseError as e:
            raise Fail(f"not a usable sqlite snapshot ({e}); the database is unchanged")
        # Into the live file through sqlite's own locking, not a file copy: a gunicorn worker
        # sees the old database or the restored one, never half of each.
        with read_only(copy) as src, closing(sqlite3.connect(db["NAME"], timeout=30)) as live:
            src.backup(live)
            return read, counts(live)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(mode):
    engine, db = database()
    if engine == "sqlite" and mode != "restore" and not os.path.isfile(str(db["NAME"])):
        raise Fail(f"no sqlite database at {db['NAME']}")
    if mode == "info":
        print(MARK + json.dumps(info(engine, db)), flush=True)
    elif mode == "counts":
        print(MARK + json.dumps({"tables": live_tables(engine, db)}), flush=True)
    elif mode in ("dump", "restore"):
        t0 = time.monotonic()
        if mode == "dump":
            size, tables = dump(engine, db, sys.stdout.buffer)
        else:
            size, tables = restore(engine, db, sys.stdin.buffer)
        done = {"engine": engine, "bytes": size, "seconds": round(time.monotonic() - t0, 3)}
        sys.stderr.write(MARK + json.dumps({**done, "tables": tables}) + "\n")
    else:
        raise Fail(f"unknown mode {mode!r} (info, dump, restore, counts)")


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else "")
        code, message = 0, ""
    except Fail as e:
        code, message = e.code, str(e)
    except Exception as e:  # noqa: BLE001 (one line for the operator, never a traceback)
        code, message = 1, f"cynow-ops snapshot: {type(e).__name__}: {e}"
    for secret in SECRETS:
        message = message.replace(secret, "***")
    if message:
        sys.stderr.write(" ".join(message.split()) + "\n")
    sys.exit(code)
