"""From every check's findings to one primary cause, its chain of consequences, and the fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tasks import catalogue, causes
from tasks.checks import http as http_check
from tasks.checks.base import Facts, Finding
from tasks.settings import Settings

CAUSES = causes.TITLES  # id -> title, ranked (tasks/causes.py)


@dataclass
class Verdict:
    cause: str
    title: str
    chain: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    fix: list[str] = field(default_factory=list)
    also: list[dict] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.cause == "healthy"

    def to_json(self) -> dict:
        return asdict(self)


def merge(findings: list[Finding]) -> dict[str, Finding]:
    """One finding per cause, evidence and fixes joined in order, without repeats."""
    out: dict[str, Finding] = {}
    for f in findings:
        if f.cause not in out:
            out[f.cause] = Finding(f.cause, [], [])
        m = out[f.cause]
        m.evidence += [e for e in f.evidence if e not in m.evidence]
        m.fix += [x for x in f.fix if x not in m.fix]
    return out


def _last(matches, *keys):
    hits = [m for m in matches if m.entry.key in keys]
    return hits[-1] if hits else None


# The links a chain may show after its head; a cause's `omits` column names those its own
# evidence already states.
CHAIN_LINKS = ("service state", "start limit", "master exits", "socket gone")


def chain(cause: str, head: str, facts: Facts, s: Settings) -> list[str]:
    """What followed from the cause, as observed on this server (only observed links)."""
    omits = causes.BY_ID[cause].omits
    steps = [head]
    journal = catalogue.match_lines(facts.journal)
    nginx = catalogue.match_lines(facts.nginx_log, ("nginx",))
    g = facts.units.get(s.gunicorn_unit, {})
    manual_failed = facts.manual is not None and not http_check.manual_ok(facts.manual)
    if causes.BY_ID[cause].app and (_last(journal, "worker_boot") or manual_failed):
        steps.append("workers fail to boot (Worker failed to boot.)")
    active, sub, res = g.get("ActiveState"), g.get("SubState"), g.get("Result")
    if "service state" not in omits:
        if active == "activating" and sub == "auto-restart":
            steps.append(f"systemd restarts gunicorn again and again ({g.get('NRestarts')} so far)")
        elif res == "start-limit-hit" and "start limit" not in omits:
            steps.append("systemd gives up: start-limit-hit")
        elif active in ("failed", "inactive") and "master exits" not in omits:
            status = g.get("ExecMainStatus", "0")
            steps.append(
                f"gunicorn master exits (Active: {active}"
                + (f", status={status})" if status not in ("", "0") else ")")
            )
    li = facts.listener
    if s.tcp:
        if li and not li.get("listening"):
            steps.append(f"nothing listens on {s.tcp}")
    elif not li.get("exists") and "socket gone" not in omits:
        steps.append(f"socket {s.socket} gone")
    nginx_line = _last(
        nginx,
        "nginx_enoent",
        "nginx_eacces",
        "nginx_refused",
        "nginx_backlog",
        "nginx_premature",
        "nginx_timeout",
        "nginx_static_eacces",
    )
    if nginx_line:
        text = nginx_line.line
        start = text.find("connect()") if "connect()" in text else text.find("] ") + 2
        steps.append("nginx: " + text[max(start, 0) :].split(", client:")[0])
    for url, reply in facts.http.get("nginx", {}).items():
        if reply.get("code") and not http_check.ok_code(reply["code"]):
            label = {
                502: "Bad Gateway",
                504: "Gateway Timeout",
                500: "Internal Server Error",
                403: "Forbidden",
                404: "Not Found",
            }.get(reply["code"], "")
            steps.append(f"{reply['code']} {label} for GET {url}".replace("  ", " "))
            break
    return steps


def decide(findings: list[Finding], facts: Facts, s: Settings, failing: list[str] = ()) -> Verdict:
    """`failing`: summaries of checks that failed; with no finding to explain them the verdict
    is `unknown`, never `healthy`."""
    merged = merge(findings)
    if not merged and (http_check.nginx_failed(facts) or failing):
        ev = [
            f"GET {u} through nginx -> {http_check.describe(r)}"
            for u, r in facts.http.get("nginx", {}).items()
            if not http_check.ok_code(r.get("code", 0))
        ] + list(failing)
        merged["unknown"] = Finding(
            "unknown",
            ev,
            ["read every check above (fab diagnose --json has them all) and the logs"],
        )
    if not merged:
        return Verdict("healthy", CAUSES["healthy"])
    ranked = sorted(merged.values(), key=lambda f: causes.RANK[f.cause])
    first, rest = ranked[0], ranked[1:]
    # A crash loop's restarts or a start limit are consequences: once the cause is fixed, the
    # service still needs its reset/start, so those fixes follow the primary one.
    fab = causes.BY_ID[first.cause].fab
    fix = ([f"{fab}  # or, by hand:"] if fab else []) + list(first.fix)
    for f in rest:
        if causes.BY_ID[f.cause].follows:
            # "start X" adds nothing after "restart X".
            fix += [
                x for x in f.fix if x not in fix and x.replace(" start ", " restart ") not in fix
            ]
    head = first.evidence[0] if first.evidence else CAUSES[first.cause]
    return Verdict(
        cause=first.cause,
        title=CAUSES[first.cause],
        chain=chain(first.cause, head, facts, s),
        evidence=first.evidence + _log_evidence(first.cause, facts, first.evidence),
        fix=fix,
        also=[
            {"cause": f.cause, "title": CAUSES[f.cause], "evidence": f.evidence[:3], "fix": f.fix}
            for f in rest
        ],
    )


def _log_evidence(cause: str, facts: Facts, already: list[str]) -> list[str]:
    """The newest log lines that speak of this cause (from any of the three logs)."""
    lines = []
    keys = causes.BY_ID[cause].logs if cause in causes.BY_ID else ()
    for source, log in (
        ("journal", facts.journal),
        ("nginx", facts.nginx_log),
        ("django", facts.django_log),
    ):
        matches = [m for m in catalogue.match_lines(log) if m.entry.key in keys]
        newest = {}
        for m in matches:
            newest[m.entry.key] = m
        for m in newest.values():
            line = f"{source}: {m.line.strip()}"
            # Skip a log line the evidence already quotes (long quotes only: "1" is in any line).
            said = [a.split(": ", 1)[-1] for a in already if len(a) >= 24]
            if not any(a in m.line for a in said) and line not in lines:
                lines.append(line)
    return lines[:6]
