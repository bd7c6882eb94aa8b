"""What every step shares: the Step itself, the run's context (Ctx), the two failures and the
Outcome a host's run ends with."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from tasks import app, git, lock, service, shell, snapshots
from tasks.errors import ExitCode
from tasks.runner import Output, Remote
from tasks.settings import Settings

SCHEMA = "cynow-ops.deploy.v1"


class Step(NamedTuple):
    """A named change to the server, with the undo that takes it back (None: nothing to undo).
    `do` and `undo` take the Ctx and return a one-line detail, or raise StepFailed."""

    name: str
    do: Callable
    undo: Callable | None = None

    def undo_step(self) -> Step:
        """The undo as a step of its own, named `undo NAME`."""
        return Step(f"undo {self.name}", self.undo)


class StepFailed(Exception):
    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.message, self.output = message, output


class Refused(StepFailed):
    """Stopped before changing anything (lock held, dirty checkout, diverged history...)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Ctx:
    remote: Remote
    s: Settings
    by: str
    allow_irreversible: bool = False
    full_restart: bool = False
    old_commit: str = ""
    new_commit: str = ""
    old_subject: str = ""  # the commits' subjects, for the history
    new_subject: str = ""
    commits: list = field(default_factory=list)
    migrations_before: dict = field(default_factory=dict)
    plan: list = field(default_factory=list)
    requirements_changed: bool = False
    venv_before: list = field(default_factory=list)  # `pip freeze --all` before installing
    reload_workers: list = field(default_factory=list)  # old workers a HUP must retire
    reload_master: int = 0  # the master a HUP kept: gone afterwards means the reload failed
    journal_cursor: str = ""  # the journal's position at the reload, for the traceback check
    check_journal: bool = True  # off while undoing: the new code's last requests may log
    pin: str = ""  # in a rollout: the one commit every host deploys
    allow_data_loss: bool = False
    allow_empty_database: bool = False  # a first deploy onto a database nothing migrated yet
    command: str = "deploy"  # deploy | rollback | repair | restore: what holds the lock
    deploy_id: str = field(default_factory=snapshots.new_id)
    token: str = ""  # the lock's, once this run owns it
    applied_before: dict = field(default_factory=dict)  # {app: [applied]} before the deploy
    snapshot: dict = field(default_factory=dict)  # the one taken before this run's migrate
    undoes: str = ""  # a rollback: the id of the deploy it undoes
    timed_out: bool = False  # a step's command hit its timeout: stop it before any undo

    def run(self, command: str, *, root=False, app=False, timeout=600, ok=True):
        """A command as root, or with app=True as the service runs (tasks/service.py: the
        unit's user, working directory and environment, EnvironmentFile= included), so
        manage.py reaches the database gunicorn uses; a unit the wrapper cannot read stops
        the step rather than run with a guessed environment."""
        if app:
            sent = service.as_service(self.s.gunicorn_unit, self.s.app_user, command)
        else:
            sent = command
        out = self.remote.run(sent, root=root or app, timeout=timeout)
        if out.exited == 124:
            self.timed_out = True
        if out.exited == lock.LOST_CLIENT:
            raise StepFailed("this run no longer holds the deploy lock: stopped")
        why = service.refusal(out.stderr) if app and out.exited == service.REFUSED else ""
        if why:
            raise StepFailed(f"cannot run the app's code as the service runs it: {why}")
        if ok and not out.ok:
            tail = (out.stdout + out.stderr).strip().splitlines()[-8:]
            raise StepFailed(f"`{command[:120]}` failed (exit {out.exited})", "\n".join(tail))
        return out

    def script(self, script: str, *, root=False, app=False, timeout=600) -> Parts:
        """A step's commands as one remote script (shell.batch or .sequence): one round
        trip, whose parts are then read one by one."""
        return Parts(self.run(script, root=root, app=app, timeout=timeout, ok=False))

    def git(self, *args, ok=True):
        return self.run(git.git(self.s.project_dir, *args), app=True, ok=ok)

    def manage(self, *args, timeout=600):
        return self.run(
            app.manage(self.s.project_dir, self.s.python, *args), app=True, timeout=timeout
        )

    def state_json(self) -> str:
        return jsonlib.dumps(
            {
                "id": self.deploy_id,
                "from": self.old_commit,
                "to": self.new_commit,
                "from_subject": self.old_subject,
                "to_subject": self.new_subject,
                "migrations_before": self.migrations_before,
                "applied_before": self.applied_before,
                "plan": self.plan,
                "snapshot": self.snapshot,
                "requirements_changed": self.requirements_changed,
                "venv_before": self.venv_before,
                "undoes": self.undoes,
                "by": self.by,
                "started": now(),
            }
        )

    def save_state(self) -> None:
        """What an undo needs, into the lock (its owner only) before the change it covers."""
        self.run(lock.write(self.s.state_dir, self.token, "state", self.state_json()), root=True)


class Parts:
    """The output of a shell.batch/sequence script, part by part: each as the Output of its
    own command (its output, its exit status, and the whole script's stderr)."""

    def __init__(self, out: Output):
        self.out = out
        self.parts = {
            name: Output(name, text, out.stderr, code, out.seconds)
            for name, (text, code) in shell.read_batch(out.stdout).items()
        }

    def get(self, name: str) -> Output:
        """The part; one that did not run (an earlier part of a sequence failed, or the script
        was cut off) is an empty output with exit status 255."""
        return self.parts.get(name) or Output(name, "", self.out.stderr, 255, self.out.seconds)

    def need(self, name: str, what: str) -> Output:
        """The part, which must have succeeded; else StepFailed saying `what` failed."""
        part = self.get(name)
        if not part.ok:
            status = f"exit {part.exited}" if name in self.parts else "did not run"
            tail = (part.stdout + part.stderr).strip().splitlines()[-8:]
            raise StepFailed(f"{what} failed ({status})", "\n".join(tail))
        return part


@dataclass
class Outcome:
    host: str
    result: str  # deployed | up-to-date | refused | rolled-back | rollback-failed | planned
    old: str = ""
    new: str = ""
    failed_step: str = ""
    error: str = ""
    output: str = ""
    steps: list = field(default_factory=list)
    undo: list = field(default_factory=list)
    commits: list = field(default_factory=list)
    recovery_seconds: float | None = None
    snapshot: dict = field(default_factory=dict)  # taken before the migrations, if any
    history_error: str = ""  # the history record was not written (the lock was kept)
    notified: list = field(default_factory=list)  # events sent (tasks/notify.py)
    notify_errors: list = field(default_factory=list)  # notifications not sent: warnings

    @property
    def exit_code(self) -> int:
        return int(
            ExitCode.OK
            if self.result in ("deployed", "up-to-date", "planned", "rolled-back-by-request")
            else ExitCode.PROBLEM
        )

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "exit_code": self.exit_code, **self.__dict__}
