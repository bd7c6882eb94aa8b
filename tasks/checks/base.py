"""What every check module is made of: its facts (a remote command and the parser of its
output) and its checks (pure judgements of those facts, each a CheckResult)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    reads: tuple = field(default=(), repr=False)  # the facts it judged: its time is theirs

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "step": self.step,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "findings": [
                {"cause": f.cause, "evidence": list(f.evidence), "fix": list(f.fix)}
                for f in self.findings
            ],
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Check:
    """One check of a guide step: its id, step and title said once, its result one call.

    check = Check("listener.socket", 5, f"socket {s.socket}", reads=("listener",))
    return check.fail("no socket file", evidence)
    """

    id: str
    step: int
    title: str
    reads: tuple = ()  # the facts it reads; empty: every fact of its module

    def result(self, status, summary, evidence=(), findings=()) -> CheckResult:
        return CheckResult(
            self.id,
            self.step,
            self.title,
            status,
            summary,
            list(evidence),
            list(findings),
            reads=self.reads,
        )

    def ok(self, summary: str, evidence=()) -> CheckResult:
        return self.result(OK, summary, evidence)

    def warn(self, summary: str, evidence=(), findings=()) -> CheckResult:
        return self.result(WARN, summary, evidence, findings)

    def fail(self, summary: str, evidence=(), findings=()) -> CheckResult:
        return self.result(FAIL, summary, evidence, findings)

    def skip(self, summary: str) -> CheckResult:
        return self.result(SKIPPED, summary)

    def failure(self, cause: str, evidence, fix, summary: str | None = None) -> CheckResult:
        """The commonest result: failed, its evidence pointing to one cause."""
        evidence = list(evidence)
        return self.fail(summary or evidence[0], evidence, [Finding(cause, evidence, list(fix))])


# Who runs a fact's command on the server.
LOGIN, ROOT, APP, WEB = "login", "root", "app", "web"


@dataclass(frozen=True)
class Fact:
    """One remote command of the diagnosis and the parser of its output.

    `command(s, facts)` returns the command line, or None when it is not needed (a fact of the
    second round sees what the first found). With `framed`, the command is a shell.batch and
    `parse` receives its parts; else the output. `parse(out, s)` returns the value stored as
    Facts.`into` (several names: a tuple of values, one each).
    """

    name: str
    command: Callable[[Any, Any], str | None]
    parse: Callable[[Any, Any], Any]
    into: str | tuple = ""
    identity: str = LOGIN
    alone: bool = False  # slow or possibly hanging: its own channel, at once
    framed: bool = False
    timeout: float | None = None
    second: bool = False  # runs after the first round, on what it found
    merge: bool = False  # adds to its field (a dict) instead of replacing it

    @property
    def fields(self) -> tuple:
        into = self.into or self.name
        return into if isinstance(into, tuple) else (into,)


def installed(props: dict) -> bool:
    """A unit systemd knows (`systemctl show` prints a block even for one that does not exist)."""
    return bool(props) and props.get("LoadState") != "not-found"


@dataclass
class Facts:
    """Every fact the diagnosis read, parsed; each field is filled by the Fact of the same name
    in the module of its guide step (tasks/checks/__init__.py lists them)."""

    tools: dict | None = None  # tools: {name: present?}, read before the task (None: not read)
    units: dict = field(default_factory=dict)  # services: Id -> systemctl show props
    unit_file: str = ""  # unit_file: `systemctl cat` of the gunicorn unit (what is on disk)
    unit_verify: list = field(default_factory=list)  # unit_file: systemd-analyze verify
    paths: dict = field(default_factory=dict)  # unit_file: path/user/group -> state
    # unit_file: gunicorn's config file as read by tasks/remote/gunicorn_config.py ({}: not read)
    gunicorn_config: dict = field(default_factory=dict)
    journal: list = field(default_factory=list)  # logs: the gunicorn unit's, in the window
    nginx_log: list = field(default_factory=list)  # logs: error.log lines in the window
    django_log: list = field(default_factory=list)  # logs
    listener: dict = field(default_factory=dict)  # socket
    nginx: dict = field(default_factory=dict)  # nginx
    permissions: dict = field(default_factory=dict)  # permissions
    http: dict = field(default_factory=dict)  # http
    manual: dict | None = None  # http: the by-hand gunicorn run, when one was made
    probe: dict = field(default_factory=dict)  # django
    required: dict = field(default_factory=dict)  # django: file -> present?
    code: dict = field(default_factory=dict)  # checkout
    seconds: dict = field(default_factory=dict)  # fact name -> seconds its command took
