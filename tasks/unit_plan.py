"""What upgrade-unit reads and what it would write: the unit as systemd has it, the unit's
gunicorn version and the snapshots (one round trip as root, then the version as the service
user), and the plan built from them, pure: the new texts (tasks/remote/unit_upgrade.py), the
diff, or a one-line refusal for a unit it will not rewrite.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from tasks import parse, service, shell
from tasks.errors import OpsError
from tasks.redact import redact_text
from tasks.remote import unit_upgrade
from tasks.runner import Remote
from tasks.settings import Settings
from tasks.shell import batch, join, q
from tasks.systemd import systemctl_show

UNIT_DIR = "/etc/systemd/system"
SOCKET_USER = "www-data"


def folder(s: Settings) -> str:
    return f"{s.state_dir}/unit-snapshots"


def read_script(s: Settings) -> str:
    """As root: the unit as systemd has it, its file's kind and owner, the socket unit's file."""
    u, sk = s.gunicorn_unit, s.gunicorn_socket_unit
    return batch(
        {
            "cat": join("systemctl", "cat", "--no-pager", u),
            "show": systemctl_show(
                [u], ["FragmentPath", "DropInPaths", "ActiveState", "MainPID", "LoadState"]
            ),
            "socket": join("systemctl", "cat", "--no-pager", sk) + " 2>/dev/null",
            "socket_show": systemctl_show([sk], ["LoadState", "ActiveState", "UnitFileState"]),
            "kind": f"stat -c '%F %U' -- {q(f'{UNIT_DIR}/{u}')}",
            "snapshots": f"ls -1 {q(folder(s))} 2>/dev/null | sort",
        }
    )


def version_command(s: Settings, binary: str) -> str:
    """The unit's gunicorn asked for its version as the service runs (its user, never root)."""
    return service.as_service(s.gunicorn_unit, s.app_user, join(binary, "--version"))


@dataclass
class Plan:
    """What the server has and what upgrade-unit would write."""

    old: dict[str, str]  # unit name -> current text ("" when absent)
    new: dict[str, str]  # unit name -> text to write
    socket_path: str
    notify: bool
    version: str

    @property
    def changed(self) -> list[str]:
        return [n for n in self.new if self.old.get(n, "") != self.new[n]]


def diff(plan: Plan) -> str:
    """The unified diff of every file, secrets redacted (it is printed)."""
    out = []
    for name in plan.new:
        old, new = plan.old.get(name, ""), plan.new[name]
        if old == new:
            continue
        before = f"{UNIT_DIR}/{name}" if old else "/dev/null"
        for line in difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), before, f"{UNIT_DIR}/{name}"
        ):
            out.append(redact_text(line if line.endswith("\n") else line + "\n"))
    return "".join(out)


def make_plan(s: Settings, parts: shell.Parts, version: str) -> Plan:
    """The plan from read_script's parts and the gunicorn version; OpsError for a unit this
    upgrade will not rewrite."""
    show = parse.key_values(parts["show"].text)
    if show.get("LoadState") != "loaded":
        raise OpsError(f"{s.gunicorn_unit} is not loaded: nothing to upgrade")
    if show.get("DropInPaths", "").strip():
        raise OpsError(
            f"{s.gunicorn_unit} has drop-ins ({show['DropInPaths']}): merge them into the unit "
            "first (systemctl edit --full), then run upgrade-unit"
        )
    want = f"{UNIT_DIR}/{s.gunicorn_unit}"
    if show.get("FragmentPath") != want or parts["kind"].text.strip() != "regular file root":
        raise OpsError(
            f"{s.gunicorn_unit} is not root's own file {want} (FragmentPath="
            f"{show.get('FragmentPath')}, {parts['kind'].text.strip() or 'missing'}): not rewritten"
        )
    try:
        _path, old = unit_upgrade.fragment(parts["cat"].text)
        path = unit_upgrade.socket_path(old)
    except unit_upgrade.Unsupported as e:
        raise OpsError(f"{s.gunicorn_unit}: {e}") from None
    major = unit_upgrade.gunicorn_major(version)
    if major is None:
        raise OpsError(f"the unit's gunicorn gave no version ({version.strip()[:80]!r})")
    notify = major >= 20
    socket_old = ""
    if parts["socket"].text.startswith("# /"):
        socket_old = unit_upgrade.fragment(parts["socket"].text)[1]
    new = unit_upgrade.plan(parts["cat"].text, s.gunicorn_socket_unit, SOCKET_USER, notify)
    service_done = new[s.gunicorn_unit] == old
    socket_same = new[s.gunicorn_socket_unit] == socket_old
    if (socket_old or service_done) and not (service_done and socket_same):
        # Half done, or a socket unit of someone else's: the switch assumes a gunicorn that
        # binds its own socket and no socket unit, so neither is touched.
        why = (
            "exists and differs from what upgrade-unit writes"
            if socket_old and not socket_same
            else "exists while the service still binds its own socket"
            if socket_old
            else "is missing, but the service is already the socket-activated one"
        )
        raise OpsError(f"{s.gunicorn_socket_unit} {why}: nothing touched (see --dry-run)")
    return Plan(
        {s.gunicorn_unit: old, s.gunicorn_socket_unit: socket_old}, new, path, notify, version
    )


def read_plan(remote: Remote) -> tuple[Plan, list[str]]:
    s = remote.settings
    out = remote.run(read_script(s), root=True)
    parts = shell.read_batch(out.stdout)
    try:
        text = unit_upgrade.fragment(parts["cat"].text)[1] if parts["cat"].text else ""
    except unit_upgrade.Unsupported as e:
        raise OpsError(f"{s.gunicorn_unit}: {e}; merge them into the unit first") from None
    start = unit_upgrade.values(text, "Service", "ExecStart")
    # systemd's prefixes (-, @, +, !) are not part of the path.
    binary = start[0].split()[0].lstrip("-@+!:") if start else f"{s.venv}/bin/gunicorn"
    v = remote.run(version_command(s, binary), root=True, timeout=60)
    if not v.ok:
        raise OpsError(
            f"could not ask {binary} for its version as the service user: "
            f"{(service.refusal(v.stderr) or v.stderr.strip())[-200:]}"
        )
    snaps = [ln for ln in parts["snapshots"].text.split() if ln]
    return make_plan(s, parts, v.stdout + v.stderr), snaps


def read_plan_snapshots(remote: Remote) -> list[str]:
    out = remote.run(f"ls -1 {q(folder(remote.settings))} 2>/dev/null | sort", root=True)
    return [ln for ln in out.stdout.split() if ln]
