# The deploy history's writer, run on the server as root (the state directory is root's) with
# the system python (`python3 -I -B -c SOURCE`; tasks/history.py builds the command, setting
# PATH and KEEP before this text). The record comes on stdin, one line ended by a newline (never
# in argv, which `ps` shows and the kernel caps); only that line is read, since under a sudo
# password the input has no end (tasks/runner.py).
#
# One record is one line, appended with one write() on an O_APPEND descriptor: a reader sees the
# whole record or none of it, and a file a crash left ending mid-line gets a newline first, so
# the torn line stays alone (readers skip it) instead of swallowing this record. Past KEEP
# records the older ones move to a gzip archive beside the file (PATH.YYYYmmddTHHMMSSZ.gz), and
# the file is replaced by its last KEEP records through a temporary file and a rename.
#
# Exit 0 written (stdout: `rotated N` when it rotated), 1 not written (one line on stderr).
import gzip
import os
import sys
import time

PATH = globals().get("PATH", "")
KEEP = globals().get("KEEP", 1000)


def read_line(stream) -> bytes:
    """The record: one line, its newline included; an input that ends first was cut short."""
    line = stream.readline()
    if not line.endswith(b"\n"):
        raise ValueError("no whole record on stdin (it ended before the newline)")
    if not line.strip():
        raise ValueError("an empty record")
    return line


def append(path: str, line: bytes) -> None:
    data = line.rstrip(b"\n") + b"\n"
    if b"\n" in data[:-1] or b"\r" in data:
        raise ValueError("a history record must be one line")
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        written = os.write(fd, data)
        if written != len(data):  # a full disk: the reader skips the torn line
            raise OSError(f"short write ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def rotate(path: str, keep: int) -> int:
    """Archive all but the last `keep` records; the number archived."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    if len(lines) <= keep:
        return 0
    old, new = lines[:-keep], lines[-keep:]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    archive, n = f"{path}.{stamp}.gz", 1
    while os.path.lexists(archive):  # two rotations in one second: never overwrite one
        archive, n = f"{path}.{stamp}-{n}.gz", n + 1
    with open(archive, "xb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb") as g:
            g.writelines(old)
        # On disk before the file loses these records: a crash after the replace must not
        # leave an archive the page cache had not written yet (records lost for good).
        raw.flush()
        os.fsync(raw.fileno())
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.writelines(new)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(old)


def main() -> int:
    try:
        append(PATH, read_line(sys.stdin.buffer))
    except (OSError, ValueError) as e:
        print(f"the history {PATH} was not written: {e}", file=sys.stderr)
        return 1
    try:
        moved = rotate(PATH, int(KEEP))
    except OSError as e:  # the record is written; an archive that failed is only a warning
        print(f"the history {PATH} was not rotated: {e}", file=sys.stderr)
        return 0
    if moved:
        print(f"rotated {moved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
