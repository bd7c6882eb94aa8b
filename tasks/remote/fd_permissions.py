# Owners and modes read and changed through file descriptors, run on the server as root with the
# system python (`/usr/bin/python3 -I -B -c SOURCE MODE PAYLOAD`; tasks/permission_program.py
# builds the command, PAYLOAD is base64 of zlib of JSON):
#
#   scan   {"trees": [...], "singles": [...], "accounts": [...]}
#          stdout, one JSON object a line: {"account", "uid", "gid", "group"} (or "missing") for
#          each account; {"path", "kind", "mode", "uid", "gid", "user", "group", "links"} for
#          every path of each tree and for each single directory; {"left_alone", "why"} for what
#          could not be reached without following a symlink; {"error", "why"}.
#   apply  {"roots": [...], "singles": [...], "app_user", "dry", "changes": [{"path", "kind",
#          "before": [mode, uid, gid], "mode", "user", "group"}]}: only paths in a root's tree
#          or one of the singles are changed
#          stdout: {"done"} (or {"would"} when dry) for each path changed, {"left_alone", "why"},
#          {"error", "why"}.
#
# Why descriptors: the trees belong to the app user, who can swap any file or directory in them
# for a symlink at any moment. A path given to chmod is resolved again at each use, so a swap
# after the scan would send root's change outside the tree (chmod follows a final symlink, and
# chown -h still follows symlinked parent directories). Here every directory is opened relative
# to its already-open parent with O_NOFOLLOW, the object itself is opened the same way, checked
# with fstat and changed through that descriptor: a symlink is never followed, only reported.
#
# Names are bytes end to end. They travel escaped (see `escape`): printable UTF-8 as is, a
# backslash doubled, every other byte \xHH, so a non-UTF-8 name is readable and maps back to
# exactly its bytes (two different names never collapse into one U+FFFD spelling).
#
# Exit 0 done (left alone is not a failure), 1 something could not be done, 2 bad input.
import base64
import errno
import grp
import json
import os
import pwd
import stat
import sys
import zlib

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A regular file is opened for reading only to get a descriptor (root needs no permission);
# O_NONBLOCK and O_NOCTTY: whatever it turns out to be, the open cannot hang or take a terminal.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Sockets and FIFOs cannot be opened for I/O without side effects: an O_PATH descriptor pins the
# inode, and /proc/self/fd/N (a link to that inode, not to a path) carries the change.
PATH_FLAGS = getattr(os, "O_PATH", 0) | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 200  # directories open at once while walking; deeper is reported, not walked
KINDS = (
    (stat.S_ISDIR, "d"),
    (stat.S_ISREG, "f"),
    (stat.S_ISLNK, "l"),
    (stat.S_ISSOCK, "s"),
    (stat.S_ISFIFO, "p"),
    (stat.S_ISBLK, "b"),
    (stat.S_ISCHR, "c"),
)


class Symlink(Exception):
    """A path component is a symlink (or stopped being a directory): never followed."""

    def __init__(self, path):
        super().__init__(path)
        self.path = path


def escape(raw):
    """bytes -> a readable str that maps back to exactly these bytes (`unescape`)."""
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif not ch.isprintable():  # controls, bidi overrides, odd spaces: shown as their bytes
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def unescape(text):
    out, i = bytearray(), 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
        elif text[i + 1 : i + 2] == "\\":
            out += b"\\"
            i += 2
        elif text[i + 1 : i + 2] == "x" and len(text[i + 2 : i + 4]) == 2:
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raise ValueError(f"bad escape in {text!r}")
    return bytes(out)


def kind_of(mode):
    return next((k for test, k in KINDS if test(mode)), "?")


def components(path):
    """An absolute path's names; '.', '..' and empty names are refused, never resolved."""
    if not path.startswith(b"/"):
        raise ValueError(f"not an absolute path: {escape(path)}")
    names = [n for n in path.split(b"/") if n]
    if any(n in (b".", b"..") for n in names):
        raise ValueError(f"'.' or '..' in {escape(path)}")
    return names


def open_dir(parent_fd, name, path):
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            try:
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except OSError:
                raise e from None
            if stat.S_ISLNK(st.st_mode):
                raise Symlink(path) from None
        raise


class Chain:
    """The directories from / down to the last one used, each opened relative to its parent.
    Consecutive paths (they come sorted) share their open parents."""

    def __init__(self):
        self.names = []
        self.fds = [os.open(b"/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]

    def _keep(self, n):
        while len(self.names) > n:
            self.names.pop()
            os.close(self.fds.pop())

    def parent(self, path):
        """(fd of the parent directory, last name) of an absolute path."""
        *dirs, last = components(path) or [b""]
        if not last:
            raise ValueError(f"no name in {escape(path)}")
        k = 0
        while k < min(len(dirs), len(self.names)) and dirs[k] == self.names[k]:
            k += 1
        self._keep(k)
        for name in dirs[k:]:
            here = b"/" + b"/".join(self.names + [name])
            self.fds.append(open_dir(self.fds[-1], name, here))
            self.names.append(name)
        return self.fds[-1], last

    def close(self):
        self._keep(0)
        os.close(self.fds.pop())


class Names:
    """uid/gid -> name, as `find -printf %u %g` shows them (the number when there is no name)."""

    def __init__(self):
        self.users, self.groups = {}, {}

    def user(self, uid):
        return self._named(self.users, uid, lambda n: pwd.getpwuid(n).pw_name)

    def group(self, gid):
        return self._named(self.groups, gid, lambda n: grp.getgrgid(n).gr_name)

    @staticmethod
    def _named(cache, number, lookup):
        # Each number is looked up once: a scan meets the same few owners on every file.
        if number not in cache:
            try:
                cache[number] = lookup(number)
            except KeyError:
                cache[number] = str(number)
        return cache[number]


def record(path, st, names):
    return {
        "path": escape(path),
        "kind": kind_of(st.st_mode),
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "user": names.user(st.st_uid),
        "group": names.group(st.st_gid),
        "links": st.st_nlink,
    }


def _listing(fd):
    # os.listdir gives str (surrogateescape): fsencode gives back the name's exact bytes.
    return iter(sorted(os.fsencode(n) for n in os.listdir(fd)))


def walk(root, chain, names):
    """Every path of the tree at `root` (bytes), as records; a generator, so a caller (or a
    test) sees each record before the walk goes on."""
    try:
        components(root)
        parent, last = chain.parent(root)
        fd = open_dir(parent, last, root)
    except Symlink as e:
        yield {"left_alone": escape(e.path), "why": "symlink"}
        return
    except FileNotFoundError:
        return  # no such tree on this server: nothing to change
    except (OSError, ValueError) as e:
        yield {"error": escape(root), "why": getattr(e, "strerror", None) or str(e)}
        return
    yield record(root, os.fstat(fd), names)
    stack = [(fd, root, _listing(fd))]
    while stack:
        fd, path, listing = stack[-1]
        name = next(listing, None)
        if name is None:
            os.close(fd)
            stack.pop()
            continue
        full = path + b"/" + name
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed since the listing
        except OSError as e:
            yield {"error": escape(full), "why": e.strerror or str(e)}
            continue
        yield record(full, st, names)
        if not stat.S_ISDIR(st.st_mode):
            continue
        if len(stack) >= MAX_DEPTH:
            yield {"error": escape(full), "why": f"deeper than {MAX_DEPTH} directories"}
            continue
        try:
            child = open_dir(fd, name, full)
        except Symlink:  # swapped since the stat: reported, not followed
            yield {"left_alone": escape(full), "why": "symlink"}
            continue
        except OSError as e:
            yield {"error": escape(full), "why": e.strerror or str(e)}
            continue
        now = os.fstat(child)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            os.close(child)
            yield {"error": escape(full), "why": "replaced during the scan"}
            continue
        stack.append((child, full, _listing(child)))


def single(path, chain, names):
    """One path alone (a directory on the way), read without following a symlink."""
    try:
        parent, last = chain.parent(path)
        return record(path, os.stat(last, dir_fd=parent, follow_symlinks=False), names)
    except Symlink as e:
        return {"left_alone": escape(e.path), "why": "symlink"}
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return {"error": escape(path), "why": getattr(e, "strerror", None) or str(e)}


def account(name):
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return {"account": name, "missing": True}
    try:
        group = grp.getgrgid(pw.pw_gid).gr_name
    except KeyError:
        group = str(pw.pw_gid)
    return {"account": name, "uid": pw.pw_uid, "gid": pw.pw_gid, "group": group}


def scan(spec):
    names, chain = Names(), Chain()
    try:
        for name in spec.get("accounts", []):
            yield account(name)
        for tree in spec.get("trees", []):
            yield from walk(unescape(tree), chain, names)
        for path in spec.get("singles", []):
            rec = single(unescape(path), chain, names)
            if rec is not None:
                yield rec
    finally:
        chain.close()


def uid_of(name):
    return _number(name, lambda n: pwd.getpwnam(n).pw_uid, "user")


def gid_of(name):
    return _number(name, lambda n: grp.getgrnam(n).gr_gid, "group")


def _number(name, lookup, what):
    # A name first; a number with no name (as `find -printf %u` shows it) stands for itself.
    try:
        return lookup(name)
    except KeyError:
        if name.isdigit():
            return int(name)
        raise LookupError(f"no {what} {name}") from None


def _under(path, roots):
    return any(path == r or path.startswith(r.rstrip(b"/") + b"/") for r in roots)


def change(chain, ch, roots, singles, app_uid, dry):
    """One planned change, made through a descriptor of the very object that was checked."""
    try:
        path = unescape(ch["path"])
        components(path)
    except ValueError as e:
        return {"error": str(ch.get("path")), "why": str(e)}
    shown = escape(path)
    if not _under(path, roots) and path not in singles:
        return {"error": shown, "why": "outside the trees this task may change"}
    kind = ch["kind"]
    flags = DIR_FLAGS if kind == "d" else FILE_FLAGS if kind == "f" else PATH_FLAGS
    try:
        uid, gid = uid_of(ch["user"]), gid_of(ch["group"])
        parent, last = chain.parent(path)
        fd = os.open(last, flags, dir_fd=parent)
    except Symlink as e:
        return {"left_alone": escape(e.path), "why": "symlink"}
    except LookupError as e:
        return {"error": shown, "why": str(e)}
    except FileNotFoundError:
        return {"error": shown, "why": "gone since the scan"}
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            return _refused_open(parent, last, shown, e)
        return {"error": shown, "why": e.strerror or str(e)}
    try:
        st = os.fstat(fd)
        now = kind_of(st.st_mode)
        if now == "l":  # only an O_PATH open gets this far with a symlink
            return {"left_alone": shown, "why": "symlink"}
        if now != kind:
            return {"left_alone": shown, "why": f"changed since the scan (now kind {now})"}
        before = ch.get("before")
        if before and [stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid] != list(before):
            return {"left_alone": shown, "why": "changed since the scan"}
        # A second name for a file someone else owns (e.g. a hard link to /etc/shadow made
        # where fs.protected_hardlinks is off): changing it would change that file too.
        if kind != "d" and st.st_nlink > 1 and st.st_uid != app_uid:
            return {"left_alone": shown, "why": "hard link"}
        if dry:
            return {"would": shown}
        by_fd = flags != PATH_FLAGS
        target = fd if by_fd else f"/proc/self/fd/{fd}"
        # Owner first: chown clears setuid and setgid bits, the mode comes after it.
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(target, uid, gid)
        if stat.S_IMODE(os.fstat(fd).st_mode) != ch["mode"]:
            os.chmod(target, ch["mode"])
        return {"done": shown}
    except OSError as e:
        return {"error": shown, "why": e.strerror or str(e)}
    finally:
        os.close(fd)


def _refused_open(parent, name, shown, err):
    """Why O_NOFOLLOW (or O_DIRECTORY) refused the object: a symlink, or another kind now."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return {"error": shown, "why": err.strerror or str(err)}
    if stat.S_ISLNK(st.st_mode):
        return {"left_alone": shown, "why": "symlink"}
    return {"left_alone": shown, "why": f"changed since the scan (now kind {kind_of(st.st_mode)})"}


def apply(spec):
    roots = [unescape(r) for r in spec["roots"]]
    singles = {unescape(p) for p in spec.get("singles", [])}
    try:
        app_uid = uid_of(spec["app_user"])
    except LookupError as e:
        yield {"error": spec["app_user"], "why": str(e)}
        return
    chain = Chain()
    try:
        for ch in sorted(spec["changes"], key=lambda c: unescape(c["path"])):
            yield change(chain, ch, roots, singles, app_uid, bool(spec.get("dry")))
    finally:
        chain.close()


def decode(payload):
    return json.loads(zlib.decompress(base64.b64decode(payload)))


def main(argv):
    try:
        mode, spec = argv[1], decode(argv[2])
        run = {"scan": scan, "apply": apply}[mode]
    except (IndexError, KeyError, ValueError, zlib.error) as e:
        print(f"cynow-ops fd_permissions: bad arguments ({e})", file=sys.stderr)
        return 2
    failed = False
    for rec in run(spec):
        failed = failed or "error" in rec
        sys.stdout.write(json.dumps(rec) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
