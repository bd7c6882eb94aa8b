"""Take the deploy lock (deploy, rollback, repair); its release is part of run.record."""

from __future__ import annotations

from tasks import lock
from tasks.steps.context import Ctx, Refused, Step, StepFailed, now


def take_lock(ctx: Ctx) -> str:
    """The lock, owned by a fresh token; from here on every command runs supervised (see
    tasks.lock): in a process group recorded in the lock, stopped when the client goes."""
    s = ctx.s
    token = lock.new_token()
    owner = {"by": ctx.by, "command": ctx.command, "since": now(), "deploy": ctx.deploy_id}
    out = ctx.remote.run(lock.take(s.state_dir, token, owner), root=True, timeout=60)
    if out.exited == 3:
        raise Refused(held_message(lock.read_status(out.stdout, s.lock_grace)))
    if not out.ok:
        raise StepFailed("could not take the deploy lock", out.stderr)
    own(ctx, token)
    return f"held by {ctx.by}"


def own(ctx: Ctx, token: str) -> None:
    ctx.token = token
    ctx.remote = lock.LockedRemote(ctx.remote, ctx.s.state_dir, token)


def held_message(st: lock.Status) -> str:
    if st.live:
        return (
            f"another deploy holds the lock ({st.describe()}); it is running: wait for it to finish"
        )
    return (
        f"another deploy holds the lock ({st.describe()}): it was interrupted; `fab rollback` "
        "restores the state it recorded, `fab unlock --stale` clears it without undoing"
    )


TAKE = Step("lock", take_lock)
