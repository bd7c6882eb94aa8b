"""`fab deploy`: the guide's update sequence (tasks/steps: DEPLOY), health-gated, rolled back
in reverse on any failure; one host, or many in rolling batches (tasks/batches.py).

On a failure the undos of the steps that completed run in reverse (migrations back with the new
code still checked out, since the migration files live in it; then the code; then the venv),
followed by collectstatic, reload and the health gate on the old code. The server keeps a record
of the deploy in progress inside the lock, so an interrupted deploy can be rolled back.
"""

from __future__ import annotations

from fabric import task

from tasks import batches
from tasks.common import COMMON_HELP, console, guarded, load, print_json
from tasks.fleet import Fleet, parse_parallel
from tasks.outcomes import collect, finish, shower, who
from tasks.runner import Remote
from tasks.steps.context import Ctx, Outcome
from tasks.steps.run import deploy_host


@task(
    help={
        **COMMON_HELP,
        "dry_run": "print the plan (commits, files, migrations, requirements); change nothing",
        "restart": "full `systemctl restart` instead of the graceful HUP reload",
        "allow_irreversible": "deploy even if a migration cannot be reversed",
        "allow_data_loss": "deploy even if reversing a migration would lose data (a snapshot "
        "is taken first)",
        "allow_empty_database": "deploy onto a database no migration was ever applied to, "
        "or whose deployed apps' initial migrations are pending (refused by default: on a "
        "running server it means the wrong database)",
        "batch": "several hosts: hosts per batch, e.g. 1 (default), 3, 25% or 1,25%",
        "max_fail": "several hosts: stop once more than N (or N%) hosts failed (default 0)",
        "on_fail": "several hosts, threshold passed: stop (default) or rollback-all",
    }
)
@guarded
def deploy(
    c,
    dry_run=False,
    restart=False,
    allow_irreversible=False,
    allow_data_loss=False,
    allow_empty_database=False,
    target=None,
    json=False,
    batch="1",
    max_fail="0",
    on_fail="stop",
):
    """Deploy origin/main: the guide's update sequence, health-gated, rolled back on failure.

    Steps: lock, preflight (record commit, migrations; refuse uncommitted changes), fetch
    (fast-forward only), required files, code, requirements, validate (import, check,
    reversible migrations), migrate, collectstatic, graceful reload, health gate. On any
    failure the completed steps are undone in reverse and the old code is served again.
    Several hosts roll in batches (--batch), each batch health-gated before the next; past
    --max-fail failed hosts the rollout stops (--on-fail rollback-all also returns the hosts
    already deployed). With `notify` set, the team is told (deploy.started, deploy.succeeded,
    deploy.rolled_back...; nothing under --dry-run; one not sent is a warning).
    Exit codes: 0 deployed (or already up to date, or --dry-run), 1 refused or rolled back,
    2 could not connect, 3 bad configuration.
    """
    settings = load(c, target)
    batches.batch_sizes(batch, 1)  # bad flags are refused before any connection
    batches.check_max_fail(max_fail)
    batches.check_on_fail(on_fail)
    fleet = Fleet.of(c, settings)
    by = who()

    def ctx_for(remote: Remote, pin: str = "") -> Ctx:
        return Ctx(
            remote,
            remote.settings,  # the host's: the server's layout where the config is silent
            by,
            allow_irreversible,
            restart,
            pin=pin,
            allow_data_loss=allow_data_loss,
            allow_empty_database=allow_empty_database,
        )

    if len(fleet) == 1 or dry_run:  # a plan reads every host at once; nothing to roll
        several = len(fleet) > 1

        def one(remote: Remote) -> Outcome:
            if not json and not several:
                console().print(f"[bold]cynow-ops deploy: {remote.name}[/]")
            show = shower(json, remote.name if several else "")
            return deploy_host(ctx_for(remote), show, dry_run)

        finish(collect(fleet.each(one, parse_parallel(None)), several), json)
        return
    out = batches.roll(fleet, ctx_for, json, batch, max_fail, on_fail)
    if json:
        print_json(out.to_json())
        batches.rollout_warnings(out, json=True)
    else:
        batches.render_rollout(out)
    if out.exit_code:
        from invoke.exceptions import Exit

        raise Exit(code=out.exit_code)
