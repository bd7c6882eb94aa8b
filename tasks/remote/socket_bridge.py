# Keeps a unix socket path answered while the process behind it is replaced (fab upgrade-unit's
# switch): `python3 -I -B -c SOURCE PATH SECONDS`, run as the gunicorn unit's user and group.
#
# It binds a listening socket beside PATH and renames it over PATH (atomic: a client finds the
# old socket or this one, never nothing), prints `ready`, and holds every connection it accepts.
# When PATH names another socket (the socket unit has bound it: systemd replaces the file), it
# connects each held connection, and any still queued, to PATH and copies bytes both ways until
# both sides are done; then it exits, printing `bridged N`. After SECONDS it gives up waiting:
# the connections it holds are closed (the client sees an error, as without the bridge).
# Standard library only, Python 3.7-compatible.
import os
import select
import socket
import sys
import threading
import time


def pipe(a, b):
    """Copy a -> b until a's end of file, then half-close b."""
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def forward(client, path, threads):
    # The new socket may refuse for a moment (systemd hands it to its owner after the bind).
    end = time.monotonic() + 5
    while True:
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(path)
            break
        except OSError:
            up.close()
            if time.monotonic() > end:
                client.close()
                return False
            time.sleep(0.01)
    for a, b in ((client, up), (up, client)):
        t = threading.Thread(target=pipe, args=(a, b), daemon=True)
        t.start()
        threads.append((t, a, b))
    return True


def main(argv):
    path, seconds = argv[1], float(argv[2])
    tmp = path + ".cynow-bridge"
    mode = os.stat(path).st_mode & 0o777
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(tmp)
    os.chmod(tmp, mode)
    listener.listen(4096)
    mine = os.stat(tmp).st_ino
    os.rename(tmp, path)
    print("ready", flush=True)
    listener.setblocking(False)
    held, threads, bridged = [], [], 0
    deadline = time.monotonic() + seconds
    replaced = False
    while time.monotonic() < deadline:
        try:
            replaced = os.stat(path).st_ino != mine
        except FileNotFoundError:
            replaced = False
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            conn.setblocking(True)
            held.append(conn)
        if replaced:
            # Nothing new can reach a socket without a name; what was queued is accepted above.
            break
        select.select([listener], [], [], 0.005)
    listener.close()
    if not replaced:
        for conn in held:
            conn.close()
        print(f"bridged 0 (gave up: {path} still names the bridge)", flush=True)
        return 1
    for conn in held:
        bridged += forward(conn, path, threads)
    for t, _a, _b in threads:
        t.join(max(0.0, deadline + 30 - time.monotonic()))
    for _t, a, b in threads:
        a.close()
        b.close()
    print(f"bridged {bridged}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
