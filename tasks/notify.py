"""Notifications through Apprise (Slack, Teams, Discord, Telegram, e-mail, ntfy, JSON webhooks
and ~100 more): the end of a deploy, rollback or repair, and an unhealthy `fab diagnose
--notify`, told where the team already talks.

Pure parts, unit-tested: which event a finished run is (`deploy_event`, ...), the message
(`Message`, `message`), a URL as it may be shown (`shown`: scheme and host only, never a
token), the config check (`check_url`). `send` is the only code that talks to Apprise. A
message that cannot be sent is a warning returned to the caller, never an exception: no
notification fails a deploy or changes an exit code. Apprise is imported only to send or to
check a configured URL, so runs without `notify` never load it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from tasks.redact import REDACTED, redact_text
from tasks.text import clean

# Every event, and the Apprise message type it is sent as (the colour or icon a service shows).
EVENTS = {
    "deploy.started": "info",
    "deploy.succeeded": "success",
    "deploy.rolled_back": "warning",
    "deploy.rollback_failed": "failure",
    "deploy.refused": "warning",
    "rollback.started": "info",
    "rollback.succeeded": "success",
    "rollback.failed": "failure",
    "repair.started": "info",
    "repair.succeeded": "success",
    "repair.failed": "failure",
    "diagnose.unhealthy": "failure",
}
# How many of a failing step's last lines a message carries, and how long each may be.
LAST_LINES, LINE_WIDTH = 10, 300
# The whole send (every URL) may take this long; each service has its own shorter timeouts.
SEND_TIMEOUT = 20
# The test suite's network guard, as the tool itself reads it (tasks/connect.py): a URL whose
# host is not an address inside these networks is refused before Apprise sees it.
ALLOWED_NETWORKS_ENV = "CYNOW_OPS_ALLOWED_NETWORKS"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


# -- URLs as they may be shown ------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, str]:
    """The URL's host and port as written ("" when it has none), without parsing errors."""
    netloc = url.split("://", 1)[1] if "://" in url else ""
    netloc = re.split(r"[/?#]", netloc, maxsplit=1)[0]
    netloc = netloc.rpartition("@")[2]  # user:password@ never counts
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, port
    host, _, port = netloc.partition(":")
    return host, port


def _is_host(host: str) -> bool:
    """A real network host: an IP address, localhost, or a dotted DNS name. Apprise puts a
    token where the host goes for many services (slack://TokenA/..., tgram://bot:token/...,
    discord://id/token, ntfy://topic): those have no dot and are not shown."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if host.lower() == "localhost":
        return True
    labels = host.split(".")
    return len(labels) > 1 and all(_LABEL.match(label) for label in labels)


def shown(url: str) -> str:
    """An Apprise URL as it may be printed: its scheme and host (and a numeric port) only.
    User, password, path, query and fragment never appear; a host that is not a network
    host (a token in Apprise's place for it) becomes <redacted>. Pure."""
    m = _SCHEME.match(url or "")
    if not m:
        return REDACTED
    scheme = m.group()[:-3].lower()
    host, port = _host_port(url)
    if not host or not _is_host(host):
        return f"{scheme}://{REDACTED}"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port.isdigit() else "")


def secrets_of(url: str) -> list[str]:
    """Every part of the URL that is not shown (user, password, path segments, query values,
    a token host), longest first: what `scrub` takes out of text that may quote them."""
    rest = url.split("://", 1)[1] if "://" in url else url
    parts = set()
    netloc, _, tail = rest.partition("/")
    if "?" in netloc:  # json://host?token=... : no path
        netloc, _, query = netloc.partition("?")
        tail = "?" + query + tail
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        parts.update(p for p in re.split(r"[:@]", userinfo) if p)
    host, port = _host_port(url)
    if host and not _is_host(host):
        parts.add(host)
        parts.add(hostport)
    if port and not port.isdigit():
        parts.add(port)
    split = urlsplit("x://h/" + tail.lstrip("/"))
    parts.update(p for p in split.path.split("/") if p)
    parts.update(v for _k, v in parse_qsl(split.query, keep_blank_values=False) if v)
    parts.update(p for p in split.fragment.split("/") if p)
    parts |= {unquote(p) for p in parts}
    return sorted((p for p in parts if len(p) >= 3), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` (Apprise's log line about this URL) with the URL itself and every secret part of
    it replaced by its shown form or <redacted>."""
    text = text.replace(url, shown(url))
    for part in secrets_of(url):
        text = text.replace(part, REDACTED)
    return text


def check_url(key: str, url: str) -> str:
    """The config check of one `notify` entry: a scheme://... string Apprise can read (the
    error shows the URL's scheme and host only). Apprise is imported only here and in send."""
    if not _SCHEME.match(url) or any(ch.isspace() for ch in url):
        raise ValueError(
            f"config: cynow.{key} has an entry that is not an Apprise URL ({shown(url)}); "
            "write it as scheme://..., e.g. json://hooks.example.com/cynow or slack://T/B/C"
        )
    from apprise import Apprise

    if Apprise.instantiate(url) is None:
        raise ValueError(
            f"config: cynow.{key} has an entry Apprise cannot use ({shown(url)}); "
            "see https://github.com/caronc/apprise/wiki for the form of each service's URL"
        )
    return url


# -- which event ------------------------------------------------------------------------------


def deploy_event(result: str, started: bool = True) -> str | None:
    """A finished deploy's event. None for one up to date or only planned, and for one refused
    before deploy.started was sent (lock held, dirty checkout, diverged history: nothing was
    announced, nothing changed); one refused after it (a required file missing from the new
    commit) is deploy.refused."""
    if result == "refused":
        return "deploy.refused" if started else None
    return {
        "deployed": "deploy.succeeded",
        "rolled-back": "deploy.rolled_back",
        "rollback-failed": "deploy.rollback_failed",
    }.get(result)


def rollback_event(result: str) -> str | None:
    return {
        "rolled-back-by-request": "rollback.succeeded",
        "rollback-failed": "rollback.failed",
    }.get(result)


def repair_event(healthy: bool) -> str:
    return "repair.succeeded" if healthy else "repair.failed"


def diagnose_event(cause: str) -> str | None:
    """`fab diagnose --notify`: only a host that is not healthy (unreachable included)."""
    return None if cause == "healthy" else "diagnose.unhealthy"


# -- the message ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    event: str
    title: str
    body: str

    @property
    def kind(self) -> str:
        return EVENTS[self.event]


def last_lines(output: str, n: int = LAST_LINES) -> list[str]:
    """A step's output as a message carries it: its last `n` non-empty lines, without control
    characters, secrets (NAME=VALUE with a secret name, a URL's password) redacted, each cut
    to LINE_WIDTH."""
    lines = [line for line in clean(output or "").splitlines() if line.strip()][-n:]
    out = []
    for line in lines:
        line = redact_text(line.rstrip())
        out.append(line if len(line) <= LINE_WIDTH else line[: LINE_WIDTH - 1] + "…")
    return out


def commit_range(old: str, new: str, commits: list | None = None) -> str:
    """`old -> new (N commits: first subjects)`, as far as it is known."""
    if not old and not new:
        return ""
    text = f"{old[:12] or '?'} -> {new[:12] or '?'}"
    if commits:
        listed = "; ".join(clean(str(c), newlines=False) for c in commits[:3])
        more = f"; +{len(commits) - 3} more" if len(commits) > 3 else ""
        text += f" ({len(commits)} commit(s): {listed}{more})"
    return text


_VERB = {
    "deploy.started": "deploy started",
    "deploy.succeeded": "deployed",
    "deploy.rolled_back": "deploy rolled back",
    "deploy.rollback_failed": "deploy failed and its rollback failed",
    "deploy.refused": "deploy refused",
    "rollback.started": "rollback started",
    "rollback.succeeded": "rolled back",
    "rollback.failed": "rollback failed",
    "repair.started": "repair started",
    "repair.succeeded": "repaired",
    "repair.failed": "repair did not make it healthy",
    "diagnose.unhealthy": "unhealthy",
}


def message(
    event: str,
    host: str,
    *,
    target: str | None = None,
    commits: str = "",
    result: str = "",
    failed_step: str = "",
    error: str = "",
    output: str = "",
    by: str = "",
    extra: list[tuple[str, str]] | None = None,
    blocks: list[tuple[str, list[str]]] | None = None,
) -> Message:
    """The message of one event: a title naming what happened where, a body of `label: value`
    lines (host, commits, result, failed step, error, `extra`), then `blocks` of indented
    lines (e.g. the fix), then the failing step's last lines. Pure; server text is cleaned
    and its secrets redacted."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    where = host + (f" (target {target})" if target else "")
    title = f"cynow-ops: {_VERB[event]} on {host}"
    rows = [("event", event), ("host", where)]
    rows += [("commits", commits)] if commits else []
    rows += [("result", result)] if result else []
    rows += [("failed step", failed_step)] if failed_step else []
    rows += [("error", redact_text(clean(error, newlines=False)))] if error else []
    rows += list(extra or [])
    rows += [("by", by)] if by else []
    body = "\n".join(f"{label}: {clean(str(value), newlines=False)}" for label, value in rows)
    for label, block in blocks or []:
        if block:
            body += f"\n{label}:\n" + "\n".join(
                f"  {line}" for line in last_lines("\n".join(block))
            )
    lines = last_lines(output)
    if lines:
        body += "\nlast lines:\n" + "\n".join(f"  {line}" for line in lines)
    return Message(event, title, body)


def step_lines(o, from_step: str) -> str:
    """The run's step log from the failing step on (its undos, the health gate on the old
    code), one line a step as the terminal showed it: the last lines of a step that failed
    without output of its own (a health gate's 500)."""
    log = o.steps + o.undo
    start = next((i for i, x in enumerate(log) if x["step"] == from_step and not x["ok"]), 0)
    return "\n".join(
        f"{'ok' if x['ok'] else 'FAILED'} {x['step']} ({x['seconds']:.2f}s): {x['detail']}"
        for x in log[start:]
    )


def outcome_message(
    event: str, o, old: str, new: str, commits=None, *, target=None, by: str = ""
) -> Message:
    """A deploy's or rollback's Outcome (tasks/steps/context.py) as a message: commits
    `old` -> `new`; the failing step, its error and last lines when it failed."""
    failed = event.endswith(("rolled_back", "rollback_failed", ".failed", ".refused"))
    step = o.failed_step or next((x["step"] for x in o.steps + o.undo if not x["ok"]), "")
    return message(
        event,
        o.host,
        target=target,
        commits=commit_range(old, new, commits),
        result="" if event.endswith(".started") else o.result,
        failed_step=step if failed else "",
        error=o.error if failed else "",
        output=(o.output or step_lines(o, step)) if failed else "",
        by=by,
    )


def code_summary(checks) -> str:
    """The deployed commit against origin, as diagnose's step 9 said it ("" unknown)."""
    c = next((c for c in checks if c.id == "code.origin"), None)
    return c.summary if c else ""


def diagnose_message(report) -> Message:
    """An unhealthy diagnosis (tasks/diagnose.Report): the cause, its chain and fix, and the
    evidence lines as the last lines."""
    v = report.verdict
    extra = [("chain", " -> ".join(v.chain))] if v.chain else []
    extra += [("also", ", ".join(a["cause"] for a in v.also))] if v.also else []
    return message(
        "diagnose.unhealthy",
        report.host,
        target=report.target,
        commits=code_summary(report.checks),
        result=f"{v.cause}: {v.title}",
        output="\n".join(v.evidence),
        extra=extra,
        blocks=[("fix", v.fix)],
    )


def repair_message(event: str, o, checks=(), *, target=None, by: str = "") -> Message:
    """A repair (tasks/repair.Outcome): before -> after, the first action that failed with
    its output, the causes left to a person."""
    failed = next((a for a in o.actions if a.ok is False), None)
    done = [a.key for a in o.actions if a.ok]
    extra = [("applied", ", ".join(done))] if done and not event.endswith(".started") else []
    if event.endswith(".started"):
        extra = [("planned", ", ".join(a.key for a in o.actions))] if o.actions else []
    extra += [("needs a person", ", ".join(o.by_hand))] if o.by_hand else []
    result = o.before if event.endswith(".started") else f"{o.before} -> {o.after or '?'}"
    return message(
        event,
        o.host,
        target=target,
        commits=code_summary(checks),
        result=result,
        failed_step=failed.title if failed and not event.endswith(".started") else "",
        error=o.error if not event.endswith(".started") else "",
        output=failed.output if failed and not event.endswith(".started") else "",
        extra=extra,
        by=by,
    )


# -- sending ----------------------------------------------------------------------------------


def refused_here(url: str) -> str:
    """Why this URL may not be contacted in this run ("" when it may): under
    CYNOW_OPS_ALLOWED_NETWORKS (the test suite sets it) only an IP address inside those
    networks is, decided from the URL alone: no name is resolved, no packet sent."""
    names = [n.strip() for n in os.environ.get(ALLOWED_NETWORKS_ENV, "").split(",") if n.strip()]
    if not names:
        return ""
    host, _port = _host_port(url)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"not an address inside {ALLOWED_NETWORKS_ENV} ({', '.join(names)})"
    try:
        nets = [ipaddress.ip_network(n, strict=False) for n in names]
    except ValueError:
        return f"{ALLOWED_NETWORKS_ENV} has a bad network"
    if not any(ip in net for net in nets):
        return f"outside {ALLOWED_NETWORKS_ENV} ({', '.join(names)})"
    return ""


def _why(result) -> str:
    """The last warning or error Apprise logged for a service, without its timestamp."""
    lines = []
    for entry in result.logs():
        if entry.level in ("WARNING", "ERROR", "CRITICAL"):
            lines.append(re.sub(r"^.*? - [A-Z]+ - ", "", entry.message).strip())
    return lines[-1] if lines else "the service did not accept it"


def send(urls: list[str], msg: Message, dry_run: bool = False) -> list[str]:
    """Send `msg` to every URL, each on its own; the list of what could not be sent, one
    line each naming the event and the URL's scheme and host (never its secrets). Under
    `dry_run` nothing is sent. Never raises."""
    if dry_run or not urls:
        return []
    errors = []
    try:
        from apprise import Apprise, AppriseAsset, NotifyFormat
    except Exception as e:  # noqa: BLE001 (a missing library is a warning, not a failure)
        return [f"notification {msg.event} not sent: Apprise is not installed ({e})"]
    asset = AppriseAsset(storage_mode="memory", app_id="cynow-ops", app_desc="cynow-ops")
    for url in urls:
        head = f"notification {msg.event} to {shown(url)} not sent: "
        why = refused_here(url)
        if why:
            errors.append(head + why)
            continue
        try:
            ap = Apprise(asset=asset)
            if not ap.add(url):
                errors.append(head + "Apprise cannot use this URL")
                continue
            result = ap.notify(
                body=msg.body,
                title=msg.title,
                notify_type=msg.kind,
                body_format=NotifyFormat.TEXT,
                timeout=SEND_TIMEOUT,
            )
            if not result:
                services = list(result)
                why = _why(services[0]) if services else f"status {result.status.name}"
                errors.append(head + scrub(why, url))
        except Exception as e:  # noqa: BLE001 (no notification may fail the run)
            errors.append(head + scrub(f"{type(e).__name__}: {e}", url))
    return errors


def deliver(o, urls: list[str], msg: Message, dry_run: bool = False, wait: bool = True):
    """Send `msg` for a run whose result object `o` has `notified` and `notify_errors`: the
    event is listed in the first once every URL took it (the JSON's "events sent"), every URL
    it could not reach is a line in the second. The caller knows whether it tried from the
    thread (or None) returned: an event tried but not sent is never listed as sent.

    With wait=False it is sent from a thread, returned for the caller to join before it reads
    `o` again: a `.started` event is sent while the run holds the deploy lock, and a slow
    service (up to SEND_TIMEOUT) must not keep the lock's steps from running, or its
    heartbeat from being kept (lock_grace)."""
    if dry_run or not urls:
        return None

    def work() -> None:
        errors = send(urls, msg)
        o.notify_errors.extend(errors)
        if not errors:
            o.notified.append(msg.event)

    if wait:
        work()
        return None
    thread = threading.Thread(target=work, name=f"notify {msg.event}")
    thread.start()
    return thread
