# The guide's gunicorn unit turned into the socket-activated pair gunicorn's own docs recommend:
# pure builders of both texts from the unit's own text. Standalone (re, hashlib, subprocess,
# sys only) and Python 3.7-compatible: tasks/unit_plan.py imports it to show the --dry-run
# diff, and tasks/unit_switch.py sends it to the server, where root runs it with the system
# python (`python3 -I`) to write the very same texts into a root-only staging directory: the
# unit's values (Environment= secrets included) never travel in a command line.
#
#   python3 -I -B -c SOURCE stage UNIT SOCKET_UNIT SOCKET_USER notify|simple STAGE_DIR
#
# reads `systemctl cat UNIT`, writes STAGE_DIR/UNIT and STAGE_DIR/SOCKET_UNIT (0644) and prints
# `sha256 NAME HEX` for each, so the client checks they are the texts it showed.
import hashlib
import re
import subprocess
import sys

RELOAD = "/bin/kill -s HUP $MAINPID"


class Unsupported(Exception):
    """A unit this upgrade does not know how to rewrite safely."""


def fragment(cat_output):
    """The unit file's text from `systemctl cat UNIT` output (its first line names the file).
    Drop-ins are refused: their lines are not the unit's file and would be lost or doubled."""
    lines = cat_output.splitlines(True)
    if not lines or not lines[0].startswith("# /"):
        raise Unsupported("systemctl cat printed no unit file")
    path = lines[0][2:].strip()
    body = lines[1:]
    if any(ln.startswith("# /") and ln.strip().endswith(".conf") for ln in body):
        raise Unsupported("the unit has drop-ins (systemctl cat shows more than one file)")
    return path, "".join(body)


def logical_lines(text):
    """(section, key, value, raw) per logical line; continuation lines (trailing backslash)
    stay with their line in `raw`. Comments and blank lines have key None."""
    out, section, buf = [], None, []
    for line in text.splitlines(True):
        buf.append(line)
        if line.rstrip("\n").endswith("\\"):
            continue
        raw = "".join(buf)
        buf = []
        first = raw.strip()
        if first.startswith("[") and first.endswith("]"):
            section = first[1:-1]
            out.append((section, None, None, raw))
        elif not first or first.startswith(("#", ";")) or "=" not in first:
            out.append((section, None, None, raw))
        else:
            key, _, value = first.partition("=")
            value = re.sub(r"\\\n\s*", " ", value)
            out.append((section, key.strip(), value.strip(), raw))
    if buf:
        out.append((section, None, None, "".join(buf)))
    return out


def values(text, section, key):
    return [v for s, k, v, _ in logical_lines(text) if s == section and k == key]


def exec_binds(exec_start):
    """The --bind values of an ExecStart= value (gunicorn's -b/--bind forms)."""
    words = exec_start.split()
    binds = []
    for i, w in enumerate(words):
        if w in ("-b", "--bind") and i + 1 < len(words):
            binds.append(words[i + 1])
        elif w.startswith("--bind="):
            binds.append(w.split("=", 1)[1])
        elif w.startswith("-b") and len(w) > 2 and not w.startswith("--"):
            binds.append(w[2:])
    return binds


def socket_path(text):
    """The unix socket the unit's gunicorn binds: the path the socket unit must listen on."""
    starts = values(text, "Service", "ExecStart")
    if len(starts) != 1:
        raise Unsupported(f"the unit needs exactly one ExecStart= (it has {len(starts)})")
    binds = exec_binds(starts[0])
    unix = [b[len("unix:") :] for b in binds if b.startswith("unix:")]
    if len(binds) != 1 or len(unix) != 1:
        raise Unsupported(
            "ExecStart must bind exactly one unix socket (--bind unix:PATH), it binds: %s"
            % (", ".join(binds) or "nothing (gunicorn's default 127.0.0.1:8000)")
        )
    return unix[0]


def _rewrite(text, section, changes, insert_after):
    """`text` with, in `section`, each key of `changes` set to its value: its first line
    replaced, later ones dropped; a key not there inserted after the last line of key
    `insert_after` (or the section's last setting)."""
    lines = logical_lines(text)
    done, out = set(), []
    for s, k, _v, raw in lines:
        if s == section and k in changes:
            if k not in done:
                out.append(f"{k}={changes[k]}\n")
                done.add(k)
            continue
        out.append(raw)
    missing = [k for k in changes if k not in done]
    if not missing:
        return "".join(out)
    # Where to insert: after the anchor key's line, else after the section's last setting.
    relined = logical_lines("".join(out))
    idx, last = None, None
    for i, (s, k, _v, _raw) in enumerate(relined):
        if s == section and k is not None:
            last = i
            if k == insert_after:
                idx = i
    if last is None:
        raise Unsupported(f"the unit has no [{section}] section")
    at = (idx if idx is not None else last) + 1
    new = [f"{k}={changes[k]}\n" for k in missing]
    raws = [raw for _s, _k, _v, raw in relined]
    return "".join(raws[:at] + new + raws[at:])


def service_text(old, socket_unit, notify):
    """The service as socket activation wants it; every other line of `old` kept as it was.
    Idempotent: the text it returns gives itself back."""
    socket_path(old)  # refuses what it cannot rewrite
    after = []
    for v in values(old, "Unit", "After") + ["network.target", socket_unit]:
        for unit in v.split():
            if unit not in after:
                after.append(unit)
    requires = []
    for v in values(old, "Unit", "Requires") + [socket_unit]:
        for unit in v.split():
            if unit not in requires:
                requires.append(unit)
    text = _rewrite(
        old, "Unit", {"Requires": " ".join(requires), "After": " ".join(after)}, "Description"
    )
    service = {}
    if notify:
        service["Type"] = "notify"
        service["NotifyAccess"] = "main"
    text = _rewrite(text, "Service", service, "Group") if service else text
    return _rewrite(text, "Service", {"ExecReload": RELOAD, "KillMode": "mixed"}, "ExecStart")


def socket_text(path, socket_user, socket_group, service_unit):
    """gunicorn.socket: systemd holds the listening socket, across restarts of the service."""
    lines = [
        "[Unit]",
        f"Description=gunicorn socket ({service_unit})",
        "",
        "[Socket]",
        f"ListenStream={path}",
        f"SocketUser={socket_user}",
    ]
    if socket_group:
        lines.append(f"SocketGroup={socket_group}")
    lines += ["SocketMode=0660", "", "[Install]", "WantedBy=sockets.target", ""]
    return "\n".join(lines)


def gunicorn_major(version_output):
    """20 from `gunicorn (version 20.1.0)`; None when it says no version."""
    m = re.search(r"version (\d+)\.", version_output)
    return int(m.group(1)) if m else None


def plan(cat_output, socket_unit, socket_user, notify):
    """{unit name: new text} for the service and its socket unit, from `systemctl cat`."""
    path, old = fragment(cat_output)
    unit = path.rsplit("/", 1)[-1]
    groups = values(old, "Service", "Group")
    return {
        unit: service_text(old, socket_unit, notify),
        socket_unit: socket_text(socket_path(old), socket_user, groups[-1] if groups else "", unit),
    }


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def main(argv):
    mode, unit, socket_unit, socket_user, notify, stage = argv[1:7]
    if mode != "stage":
        sys.stderr.write(f"unknown mode {mode}\n")
        return 2
    cat = subprocess.run(
        ["systemctl", "cat", "--no-pager", unit], stdout=subprocess.PIPE, text=True
    )
    if cat.returncode != 0:
        sys.stderr.write(f"systemctl cat {unit} failed\n")
        return 1
    try:
        texts = plan(cat.stdout, socket_unit, socket_user, notify == "notify")
    except Unsupported as e:
        sys.stderr.write(f"unsupported unit: {e}\n")
        return 1
    for name, text in texts.items():
        if "/" in name or name.startswith("."):
            return 1
        with open(f"{stage}/{name}", "x") as f:
            f.write(text)
        print(f"sha256 {name} {sha256(text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
