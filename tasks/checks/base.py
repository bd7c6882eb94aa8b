"""One result shape for every check, and the facts the checks read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"


@dataclass
class Finding:
    """A cause this check points to, with the lines that prove it and what to run."""

    cause: str
    evidence: list[str]
    fix: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    id: str  # stable, e.g. "services.gunicorn"
    step: int  # the guide's step this check performs
    title: str
    status: str  # ok | warn | fail | skipped
    summary: str  # one line
    evidence: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def result(id, step, title, status, summary, evidence=(), findings=(), seconds=0.0):
    return CheckResult(id, step, title, status, summary, list(evidence), list(findings), seconds)


def failure(id, step, title, cause, evidence, fix, summary=None):
    """The commonest result: a failed check whose evidence points to one cause."""
    return result(
        id,
        step,
        title,
        FAIL,
        summary or evidence[0],
        evidence,
        [Finding(cause, list(evidence), list(fix))],
    )


def installed(props: dict) -> bool:
    """A unit systemd knows (`systemctl show` prints a block even for one that does not exist)."""
    return bool(props) and props.get("LoadState") != "not-found"


@dataclass
class Facts:
    """Everything the remote commands returned, parsed; filled by tasks/diagnose.py."""

    units: dict = field(default_factory=dict)  # Id -> systemctl show props
    unit_file: str = ""  # `systemctl cat` of the gunicorn unit (what is on disk)
    unit_verify: list = field(default_factory=list)
    journal: list = field(default_factory=list)  # gunicorn unit's journal, in the window
    nginx_log: list = field(default_factory=list)  # error.log lines in the window
    django_log: list = field(default_factory=list)
    listener: dict = field(default_factory=dict)
    nginx: dict = field(default_factory=dict)
    permissions: dict = field(default_factory=dict)
    http: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    required: dict = field(default_factory=dict)  # file -> present?
    code: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)  # path/user/group -> state
    manual: dict | None = None  # the by-hand gunicorn run, when one was made
    seconds: dict = field(default_factory=dict)  # command name -> seconds
