"""`fab reboot`: the guide's last resort, only when it is safe to take: explicitly confirmed,
and only after checking that gunicorn and nginx will start again at boot. Waits for the host to
come back and runs the diagnosis."""

from __future__ import annotations

import sys
import time

from fabric import task

from tasks import parse, systemd
from tasks.common import COMMON_HELP, console, guarded, load, print_json
from tasks.connect import make_connection, target_hosts
from tasks.diagnose import diagnose_host
from tasks.errors import ConfigError, ConnectError, ExitCode, OpsError
from tasks.runner import Remote
from tasks.settings import whole_number

SCHEMA = "cynow-ops.reboot.v1"
BOOTS_AT_START = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")


def boot_blockers(props: dict[str, dict]) -> list[str]:
    """Units that would not come back after a reboot. Pure."""
    out = []
    for unit, p in props.items():
        state = p.get("UnitFileState", "")
        if p.get("LoadState") == "not-found":
            out.append(f"{unit} is not installed")
        elif state not in BOOTS_AT_START:
            out.append(
                f"{unit} is {state or 'not enabled'}: it would not start after the "
                f"reboot (`sudo systemctl enable {unit}`)"
            )
    return out


def boot_mark(remote: Remote) -> str:
    """Identifies this boot: PID 1's start time (containers share the kernel's boot_id)."""
    return remote.run("stat -c %Y /proc/1").stdout.strip()


def wait_back(host, c, settings, mark: str, timeout: float) -> Remote:
    """Reconnect until the host answers with a new boot, or give up after `timeout`."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        remote = Remote(make_connection(host, c.config, settings), settings)
        try:
            remote.open()
            if boot_mark(remote) not in ("", mark):
                return remote
            last = "still the old boot"
        except OpsError as e:
            last = e.message
        remote.close()
        time.sleep(1)
    raise ConnectError(
        f"the host did not come back within {timeout:g}s ({last}); check its console"
    )


def confirm(name: str) -> bool:
    answer = input(f"Reboot {name}? Every request fails until it is back. Type 'reboot': ")
    return answer.strip() == "reboot"


@task(
    help={
        **COMMON_HELP,
        "yes": "reboot without asking (needed without a terminal)",
        "wait": "seconds to wait for the host to come back (default 300)",
    }
)
@guarded
def reboot(c, yes=False, wait=None, target=None, json=False):
    """Reboot the server (confirmed, and only if gunicorn and nginx start at boot), wait, diagnose.

    Exit codes: 0 back and healthy, 1 refused (a service would not start at boot) or back but
    not healthy, 2 could not connect or the host did not come back, 3 bad configuration.
    """
    settings = load(c, target)
    wait = whole_number("--wait", wait, 300)  # before anything reboots
    if not yes and (json or not sys.stdin.isatty()):
        raise ConfigError("reboot needs a confirmation: run it in a terminal, or pass --yes")
    docs, worst = [], 0
    for host in target_hosts(c, settings):
        remote = Remote(make_connection(host, c.config, settings), settings)
        remote.open()
        s = remote.settings
        out = remote.run(
            systemd.systemctl_show(
                [s.gunicorn_unit, s.nginx_unit], ["Id", "LoadState", "UnitFileState"]
            )
        )
        blockers = boot_blockers(parse.systemctl_show(out.stdout))
        doc = {"host": remote.name, "rebooted": False, "blockers": blockers}
        if blockers:
            remote.close()
            worst = max(worst, int(ExitCode.PROBLEM))
            docs.append(doc)
            if not json:
                for b in blockers:
                    console(stderr=True).print(f"cynow-ops: refusing to reboot: {b}")
            continue
        if not yes and not confirm(remote.name):
            remote.close()
            doc["declined"] = True
            docs.append(doc)
            continue
        mark = boot_mark(remote)
        # Detached and delayed, so the command returns before the connection goes down.
        remote.run("nohup sh -c 'sleep 1; systemctl reboot' >/dev/null 2>&1 &", root=True)
        remote.close()
        t0 = time.monotonic()
        if not json:
            console().print(f"{remote.name}: rebooting…")
        remote = wait_back(host, c, settings, mark, wait)
        doc.update(rebooted=True, back_after=round(time.monotonic() - t0, 1))
        try:
            report = diagnose_host(remote)
        finally:
            remote.close()
        doc["diagnosis"] = report.to_json()
        worst = max(worst, report.exit_code)
        docs.append(doc)
        if not json:
            from tasks.report import render

            console().print(f"{remote.name}: back after {doc['back_after']}s")
            render(report)
    if json:
        print_json(
            {"schema": SCHEMA, **docs[0]} if len(docs) == 1 else {"schema": SCHEMA, "hosts": docs}
        )
    if worst:
        from invoke.exceptions import Exit

        raise Exit(code=worst)
