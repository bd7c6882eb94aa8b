"""Running a list of steps on one host: each timed and shown as it ends; on a failure the
undos of the steps that completed, in reverse, then AFTER_UNDO; the history recorded and the
lock released in one round trip at the end."""

from __future__ import annotations

import json as jsonlib
import time

from tasks import history, lock, notify, tools
from tasks.errors import OpsError
from tasks.steps import AFTER_UNDO, DEPLOY, undo_of
from tasks.steps.context import Ctx, Outcome, Refused, Step, StepFailed, now
from tasks.steps.plan import plan_only


def run_step(ctx: Ctx, step: Step, log: list, show) -> None:
    """One step: its do, timed; the entry (step, ok, seconds, detail) appended to `log` and
    shown. A StepFailed is logged, then raised on."""
    t0 = time.monotonic()
    try:
        detail = step.do(ctx)
    except StepFailed as e:
        log.append(
            {
                "step": step.name,
                "ok": False,
                "seconds": round(time.monotonic() - t0, 2),
                "detail": e.message,
            }
        )
        show(log[-1])
        raise
    log.append(
        {
            "step": step.name,
            "ok": True,
            "seconds": round(time.monotonic() - t0, 2),
            "detail": detail,
        }
    )
    show(log[-1])


def undo_all(ctx: Ctx, done: list[str], o: Outcome, show) -> None:
    """Undo the completed steps in reverse, then serve the old code again. A step cut off by
    its timeout is stopped on the server first: no undo races the command it undoes."""
    t0 = time.monotonic()
    ctx.check_journal = False
    todo = undo_of(DEPLOY, done) + AFTER_UNDO
    try:
        if ctx.timed_out:
            run_step(ctx, STOP, o.undo, show)
        for step in todo:
            run_step(ctx, step, o.undo, show)
        o.result = "rolled-back"
    except StepFailed as e:
        o.result, o.error = "rollback-failed", o.error + f"; rollback: {e.message}"
    o.recovery_seconds = round(time.monotonic() - t0, 2)


def stop_step(ctx: Ctx) -> str:
    # Not supervised: it must reach the process group the supervisor of the cut-off step runs.
    remote = getattr(ctx.remote, "inner", ctx.remote)
    out = remote.run(lock.stop_step(ctx.s.state_dir), root=True, timeout=60)
    if not out.ok:
        raise StepFailed("could not stop the step that timed out", out.stderr)
    return out.stdout.strip() or "idle"


STOP = Step("stop the step", stop_step)


def history_line(ctx: Ctx, o: Outcome, started: str) -> str:
    return jsonlib.dumps(
        {
            "id": ctx.deploy_id,
            "command": ctx.command,
            "started": started,
            "ended": now(),
            "by": ctx.by,
            "result": o.result,
            "from": ctx.old_commit,
            "to": ctx.new_commit,
            "from_subject": ctx.old_subject,
            "to_subject": ctx.new_subject,
            "failed_step": o.failed_step,
            "error": o.error,
            "migrations_before": ctx.migrations_before,
            "applied_before": ctx.applied_before,
            "plan": ctx.plan,
            "snapshot": ctx.snapshot,
            "undoes": ctx.undoes,
            "requirements_changed": ctx.requirements_changed,
            "venv_before": ctx.venv_before,  # empty unless the requirements changed
            "steps": [(x["step"], x["seconds"]) for x in o.steps + o.undo],
        }
    )


def record(ctx: Ctx, o: Outcome, started: str, release: bool) -> str:
    """The history record, and the lock released by its owner when `release`, in one round
    trip; "" when written, else why not. A record that was not written keeps the lock: its
    state is then the only record of this run, which `fab rollback` reads. Not supervised: the
    release removes the lock the supervisor writes to."""
    remote = getattr(ctx.remote, "inner", ctx.remote)
    script = history.append(ctx.s.state_dir)
    if release:
        # Grouped: release ends in `; true`, which would otherwise be the script's exit status
        # and hide a failed append.
        script += " && { " + lock.release(ctx.s.state_dir, ctx.token) + "; }"
    line = history.stdin(history_line(ctx, o, started))
    out = remote.run(script, root=True, timeout=60, stdin=line)
    if out.ok:
        return ""
    why = (out.stderr.strip().splitlines() or [f"exit {out.exited}"])[-1]
    return (
        f"the deploy history was not written ({why}); the lock keeps this run's state: "
        "`fab rollback` can still undo it, `fab unlock --stale` clears it"
    )


def deploy_host(ctx: Ctx, show, dry_run: bool) -> Outcome:
    o = Outcome(ctx.remote.name, "deployed")
    started = now()
    if dry_run:
        return plan_only(ctx, o, show)
    try:
        tools.require(ctx.remote, "deploy")
    except OpsError as e:  # before the lock: nothing to release, nothing to record
        o.result, o.failed_step, o.error = "refused", "tools", e.message
        return o
    done: list[str] = []
    locked = False
    sending = None  # deploy.started, sent beside the steps
    step = DEPLOY[0]
    try:
        for step in DEPLOY:
            run_step(ctx, step, o.steps, show)
            done.append(step.name)
            locked = True
            if step.name == "fetch" and ctx.new_commit == ctx.old_commit:
                o.result = "up-to-date"
                break
            if step.name == "fetch":  # the commit range is known: the change begins
                sending = tell(ctx, o, "deploy.started", ctx.old_commit, ctx.new_commit)
    except Refused as e:
        o.result, o.failed_step, o.error, o.output = "refused", step.name, e.message, e.output
        if step is DEPLOY[0]:
            return o  # the lock: not ours to release
    except StepFailed as e:
        o.failed_step, o.error, o.output = step.name, e.message, e.output
        done.append(step.name)  # a failed step may have half-happened: its undo runs too
        undo_all(ctx, done, o, show)
    o.old, o.new, o.commits, o.snapshot = ctx.old_commit, ctx.new_commit, ctx.commits, ctx.snapshot
    if locked:
        # A failed rollback keeps the lock: `fab rollback` finds the state it recorded there.
        o.history_error = record(ctx, o, started, release=o.result != "rollback-failed")
    if sending:
        sending.join()
    # deploy.started tried (sent or not): the team may have seen it, so the end is told too.
    if event := notify.deploy_event(o.result, started=sending is not None):
        tell(ctx, o, event, o.old, o.new)
    return o


def tell(ctx: Ctx, o: Outcome, event: str, old: str, new: str):
    """A deploy's or rollback's event (commits `old` -> `new`) to the configured `notify`
    URLs; what could not be sent lands in o.notify_errors (a warning, never a failure). A
    `.started` event is sent from a thread (returned: join it before reading `o`), since the
    run holds the lock meanwhile."""
    if not ctx.s.notify:
        return None
    msg = notify.outcome_message(event, o, old, new, ctx.commits, target=ctx.s.target, by=ctx.by)
    return notify.deliver(o, ctx.s.notify, msg, wait=not event.endswith(".started"))
