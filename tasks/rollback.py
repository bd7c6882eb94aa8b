"""`fab rollback`: back to the state before one deploy, and never further.

Which deploy: the one the lock holds (interrupted, or whose rollback failed: the lock keeps its
state for a retry), else the newest deploy of the history that no rollback has undone, provided
the server is still at its commit (or already back at its old one: a retry after a rollback
that got that far). Refused while a live run holds the lock.

    ROLLBACK     = undo migrate (snapshot first), undo requirements, undo code, then serve
    --restore-db = snapshot, undo requirements, undo code, restore the deploy's snapshot, serve

A deploy whose migrations lose data when reversed (or cannot be reversed) is not reversed:
only `--restore-db` returns its database, discarding what was written since (shown first).
"""

from __future__ import annotations

from fabric import task

from tasks import history, lock, notify, tools
from tasks.common import COMMON_HELP, console, guarded, load
from tasks.errors import OpsError
from tasks.fleet import Fleet, parse_parallel
from tasks.history import record_id
from tasks.outcomes import collect, finish, shower, who
from tasks.runner import Remote
from tasks.steps import RESTORE_DB, ROLLBACK, Step
from tasks.steps.context import Ctx, Outcome, StepFailed, now
from tasks.steps.lock import own
from tasks.steps.run import record, run_step, tell
from tasks.steps.validate import risk_lines


def deploy_to_undo(records: list[dict], head: str) -> dict:
    """The newest deploy no successful rollback has undone, if the server is at its commit or
    back at its old one; else OpsError. Only that deploy is ever considered, so a retry can
    never roll back one deploy too many."""
    undone = {r.get("undoes") for r in records if r.get("result") == "rollback"}
    for rec in reversed(records):
        if rec.get("result") != "deployed" or record_id(rec) in undone:
            continue
        if head in (rec.get("to"), rec.get("from")):
            return rec
        raise OpsError(
            f"the server is at {head[:12]}, not at the last deploy's {str(rec.get('to'))[:12]} "
            "(changed by hand since?): nothing rolled back"
        )
    raise OpsError(
        f"no deploy in the history brought the server to {head[:12]}: nothing to roll back to"
    )


def one_way(plan: list) -> list[str]:
    """What reversing a plan would lose or cannot do, one line each."""
    return risk_lines(plan, "irreversible") + risk_lines(plan, "lossy")


def rollback_host(ctx: Ctx, show, restore_db: bool = False) -> Outcome:
    s = ctx.s
    ctx.command = "rollback"
    tools.require(ctx.remote, "rollback")  # before the lock: nothing changed yet
    o = Outcome(ctx.remote.name, "rolled-back-by-request")
    st = lock.read_status(ctx.run(lock.status(s.state_dir), root=True).stdout, s.lock_grace)
    token = lock.new_token()
    owner = {"by": ctx.by, "command": "rollback", "since": now(), "deploy": ctx.deploy_id}
    if st.held:
        if st.live:
            o.result = "refused"
            o.error = f"a run holds the lock ({st.describe()}); wait for it to finish"
            return o
        state = st.state or {}
        if st.state_error or not state.get("from"):
            raise OpsError(
                f"the lock ({st.describe()}) records no usable state "
                f"{'(' + st.state_error + ') ' if st.state_error else ''}: nothing to roll "
                "back from it; `fab unlock --stale` clears it"
            )
        if not ctx.run(
            lock.take_over(s.state_dir, token, owner, s.lock_grace), root=True, ok=False
        ).ok:
            o.result, o.error = "refused", "the lock came alive meanwhile: another run is on"
            return o
        own(ctx, token)
        # The deploy it undoes: a rollback's own state names it; an interrupted deploy is it.
        ctx.undoes = state.get("undoes") or state.get("id") or ""
    else:
        text = ctx.run(history.read(s.state_dir), root=True).stdout
        records, _bad = history.parse(text)
        head = ctx.git("rev-parse", "HEAD").stdout.strip()
        state = deploy_to_undo(records, head)
        out = ctx.run(lock.take(s.state_dir, token, owner), root=True, ok=False)
        if not out.ok:
            o.result = "refused"
            o.error = f"a run took the lock meanwhile ({lock.read_status(out.stdout).describe()})"
            return o
        own(ctx, token)
        ctx.undoes = record_id(state)
    load_state(ctx, state)
    ctx.save_state()  # a retry after a failure finds the same deploy here
    started = now()
    ctx.check_journal = False
    sending = None  # rollback.started, sent beside the steps
    lossy = one_way(ctx.plan)
    try:
        if lossy and not restore_db:
            o.failed_step = "plan"
            snap = (ctx.snapshot or {}).get("id", "")
            raise StepFailed(
                "the deploy's migrations cannot be reversed without losing data ("
                + "; ".join(lossy)
                + "): nothing changed. "
                + (
                    f"`fab rollback --restore-db` restores snapshot {snap}, taken before them"
                    if snap
                    else "no snapshot was taken before them; restore one by hand"
                )
            )
        steps = restore_db_steps(ctx) if restore_db else ROLLBACK
        sending = tell(ctx, o, "rollback.started", ctx.new_commit, ctx.old_commit)
        for step in steps:
            run_step(ctx, step, o.steps, show)
    except StepFailed as e:
        o.result, o.error, o.output = "rollback-failed", e.message, e.output
        if not o.steps:  # refused before any change: nothing to retry
            o.result = "refused"
        else:
            o.error += next_steps(ctx)
    o.old, o.new = ctx.new_commit, ctx.old_commit
    result = {"rolled-back-by-request": "rollback", "refused": "refused"}.get(o.result, o.result)
    done = Outcome(o.host, result, error=o.error, steps=o.steps)
    o.history_error = record(ctx, done, started, release=o.result != "rollback-failed")
    if sending:
        sending.join()
    # rollback.started tried (sent or not): its end is told too.
    if sending is not None and (event := notify.rollback_event(o.result)):
        tell(ctx, o, event, o.old, o.new)
    return o


def next_steps(ctx: Ctx) -> str:
    """What a failed rollback leaves, and what each way out does next."""
    snap = (ctx.snapshot or {}).get("id")
    return (
        f". The lock keeps the state of deploy {ctx.undoes}: `fab rollback` retries undoing it "
        f"(to {ctx.old_commit[:12]}, never further)"
        + (f"; `fab restore {snap}` returns the database to before that deploy" if snap else "")
    )


def load_state(ctx: Ctx, state: dict) -> None:
    ctx.old_commit, ctx.new_commit = state["from"], state.get("to") or ""
    ctx.old_subject = state.get("from_subject") or ""
    ctx.new_subject = state.get("to_subject") or ""
    ctx.migrations_before = state.get("migrations_before") or {}
    ctx.applied_before = state.get("applied_before") or {}
    ctx.plan = state.get("plan") or []
    ctx.snapshot = state.get("snapshot") or {}
    ctx.requirements_changed = bool(state.get("requirements_changed"))
    ctx.venv_before = state.get("venv_before") or []


def restore_db_steps(ctx: Ctx) -> list[Step]:
    """--restore-db: the deploy's snapshot back instead of reversing its migrations."""
    if not (ctx.snapshot or {}).get("id"):
        raise StepFailed(
            "the deploy took no snapshot (it applied no migration): nothing to restore"
        )
    return RESTORE_DB


@task(
    help={
        **COMMON_HELP,
        "parallel": "several hosts: roll back N at once (default 1)",
        "restore_db": "restore the snapshot taken before the deploy's migrations instead of "
        "reversing them (discards writes made since; shown first)",
    }
)
@guarded
def rollback(c, target=None, json=False, parallel="1", restore_db=False):
    """Return to the state before the last deploy (or the interrupted one), health-gated.

    Migrations back to what was recorded before that deploy, the code back to its commit, the
    old requirements when they had changed, collectstatic, reload, health gate. Several hosts:
    one at a time unless --parallel N. With `notify` set, the team is told (rollback.started,
    rollback.succeeded or rollback.failed; one not sent is a warning).
    Exit codes: 0 rolled back and healthy, 1 failed, 2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    parallel = parse_parallel(parallel)
    fleet = Fleet.of(c, settings)
    by = who()
    several = len(fleet) > 1

    def one(remote: Remote) -> Outcome:
        if not json and not several:
            console().print(f"[bold]cynow-ops rollback: {remote.name}[/]")
        return rollback_host(
            Ctx(remote, remote.settings, by),
            shower(json, remote.name if several else ""),
            restore_db,
        )

    finish(collect(fleet.each(one, parallel), several), json)
