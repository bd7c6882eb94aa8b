"""`fab deploy` and `fab rollback`: the guide's update sequence as one list of steps, each with
its undo beside it, health-gated, rolled back in reverse on any failure.

    DEPLOY = lock, preflight, fetch, required files, code(+undo), requirements(+undo), validate,
             migrate(+undo), collectstatic, reload, health

On a failure the undos of the steps that completed run in reverse (migrations back with the new
code still checked out, since the migration files live in it; then the code; then the venv),
followed by collectstatic, reload and the health gate on the old code. The server keeps a record
of the deploy in progress inside the lock, so an interrupted deploy can be rolled back.
"""

from __future__ import annotations

import json as jsonlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tasks import deploy_commands, git, lock, parse, shell, snapshots
from tasks.errors import ExitCode, OpsError
from tasks.restart import health
from tasks.runner import Output, Remote
from tasks.settings import Settings

SCHEMA = "cynow-ops.deploy.v1"
MIN_FREE_KB = 200 * 1024


class StepFailed(Exception):
    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.message, self.output = message, output


class Refused(StepFailed):
    """Stopped before changing anything (lock held, dirty checkout, diverged history...)."""


@dataclass
class Ctx:
    remote: Remote
    s: Settings
    by: str
    allow_irreversible: bool = False
    full_restart: bool = False
    old_commit: str = ""
    new_commit: str = ""
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
    command: str = "deploy"  # deploy | rollback | repair | restore: what holds the lock
    deploy_id: str = field(default_factory=snapshots.new_id)
    token: str = ""  # the lock's, once this run owns it
    applied_before: dict = field(default_factory=dict)  # {app: [applied]} before the deploy
    snapshot: dict = field(default_factory=dict)  # the one taken before this run's migrate
    undoes: str = ""  # a rollback: the id of the deploy it undoes
    timed_out: bool = False  # a step's command hit its timeout: stop it before any undo

    def run(self, command: str, *, root=False, app=False, timeout=600, ok=True):
        out = self.remote.run(
            command, root=root, user=self.s.app_user if app else None, timeout=timeout
        )
        if out.exited == 124:
            self.timed_out = True
        if out.exited == lock.LOST_CLIENT:
            raise StepFailed("this run no longer holds the deploy lock: stopped")
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
            deploy_commands.in_project(self.s.project_dir, self.s.python, "manage.py", *args),
            app=True,
            timeout=timeout,
        )

    def state_json(self) -> str:
        return jsonlib.dumps(
            {
                "id": self.deploy_id,
                "from": self.old_commit,
                "to": self.new_commit,
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


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def probe(ctx: Ctx) -> dict:
    out = ctx.run(
        deploy_commands.deploy_probe(ctx.s.project_dir, ctx.s.python, ctx.s.wsgi),
        app=True,
        ok=False,
    )
    return read_probe(out.stdout)


# -- pure readers of the steps' scripts ---------------------------------------------------------


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


def read_probe(stdout: str) -> dict:
    """The Django probe's report (its last CYNOW-DEPLOY line)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("CYNOW-DEPLOY "):
            return jsonlib.loads(line[len("CYNOW-DEPLOY ") :])
    raise StepFailed("the Django probe printed no report", stdout[-500:])


def read_reload(parts: Parts) -> dict:
    """What deploy_commands.reload_script did: `hup` or `restart`, the master and the processes
    before it, and the journal's position just before the signal."""
    props = parse.key_values(parts.get("show").stdout)
    text = parts.get("reload").stdout
    return {
        "mode": parse.key_values(text).get("mode", ""),
        "main_pid": int(props.get("MainPID") or 0),
        "pids": sorted(int(p) for p in parts.get("pids").stdout.split() if p.isdigit()),
        "cursor": next(
            (ln.split("cursor: ", 1)[1] for ln in text.splitlines() if "cursor: " in ln), ""
        ),
    }


# -- the steps: do, and the undo beside it ------------------------------------------------------
# Each step sends its commands as one script (commands.*_script, read back with Parts): one round
# trip, since each costs a channel, often a sudo and a shell. A step that records state in the
# lock (root) after reading as the app user takes a second one.


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


def preflight(ctx: Ctx) -> str:
    s = ctx.s
    parts = ctx.script(deploy_commands.preflight_script(s.project_dir, s.python, s.wsgi), app=True)
    ctx.old_commit = parts.need("head", "reading the deployed commit").stdout.strip()
    dirty = parts.need("dirty", "git status").stdout.strip()
    if dirty:
        raise Refused(
            "the checkout has uncommitted changes; commit or discard them first:\n" + dirty
        )
    free = parts.need("free", "df").stdout.strip()
    if free.isdigit() and int(free) < MIN_FREE_KB:
        raise Refused(f"only {int(free) // 1024} MB free under {s.project_dir}")
    p = read_probe(parts.get("probe").stdout)
    if "state" not in p:
        e = p.get("state_error") or {}
        raise Refused(
            "cannot read which migrations are applied, so a rollback could not know what to "
            f"reverse: {e.get('type', 'no report')}: {e.get('message', '')}".rstrip(": "),
            "\n".join(e.get("traceback", [])),
        )
    ctx.migrations_before, ctx.applied_before = p["state"], p.get("applied", {})
    ctx.save_state()
    return f"at {ctx.old_commit[:12]}, migrations recorded for {len(ctx.migrations_before)} apps"


def fetch(ctx: Ctx) -> str:
    s = ctx.s
    parts = ctx.script(
        deploy_commands.fetch_script(s.project_dir, s.git_remote, s.git_branch, ctx.old_commit),
        app=True,
        timeout=120,
    )
    fetched = parts.get("fetch")
    if not fetched.ok:
        raise Refused(
            f"cannot fetch {s.git_remote} {s.git_branch}: "
            + (fetched.stderr.strip().splitlines() or ["no answer"])[-1]
        )
    ctx.new_commit = parts.need("new", f"reading {s.git_remote}/{s.git_branch}").stdout.strip()
    if ctx.pin and ctx.new_commit != ctx.pin:
        # Every host of a rollout runs the same code (the one earlier batches proved healthy),
        # not whatever its origin says by the time its batch comes.
        raise Refused(
            f"{s.git_remote}/{s.git_branch} is at {ctx.new_commit[:12]} here, but this rollout "
            f"deploys {ctx.pin[:12]} (main when it began); origin moved or differs between "
            "hosts: deploy again once every host's origin has the same commit"
        )
    if ctx.new_commit == ctx.old_commit:
        return "already up to date"
    if parts.get("ancestor").exited != 0:
        raise Refused(
            f"{s.git_remote}/{s.git_branch} has diverged from the deployed commit "
            f"{ctx.old_commit[:12]}; deploys only fast-forward"
        )
    ctx.commits = parts.need("log", "git log").stdout.strip().splitlines()
    changed = parts.need("diff", "git diff").stdout.split()
    ctx.requirements_changed = s.requirements in changed
    ctx.save_state()
    return f"{len(ctx.commits)} new commit(s): " + "; ".join(ctx.commits[:5])


def required_files(ctx: Ctx) -> str:
    files = ctx.s.required_files
    if not files:
        return "none required"
    out = ctx.run(
        deploy_commands.files_in_commit_script(ctx.s.project_dir, ctx.new_commit, files),
        app=True,
        ok=False,
    )
    # Only a file the script saw counts as present: whatever else happened, it is missing.
    present = out.stdout.splitlines()
    missing = [f for f in files if f"present {f}" not in present]
    if missing:
        raise Refused("the new commit lacks " + ", ".join(missing))
    return ", ".join(files)


def update_code(ctx: Ctx) -> str:
    ctx.git("merge", "--ff-only", "--quiet", ctx.new_commit)
    return f"{ctx.old_commit[:12]} -> {ctx.new_commit[:12]}"


def restore_code(ctx: Ctx) -> str:
    ctx.git("reset", "--hard", "--quiet", ctx.old_commit)
    return f"back at {ctx.old_commit[:12]}"


def install_requirements(ctx: Ctx) -> str:
    if not ctx.requirements_changed:
        return "unchanged"
    s = ctx.s
    frozen = ctx.run(deploy_commands.pip_freeze(s.venv), app=True, timeout=120)
    ctx.venv_before = frozen.stdout.splitlines()
    # Recorded before pip changes anything: a half-done install is undone from this freeze,
    # also by a `fab rollback` after a deploy interrupted during the install.
    ctx.save_state()
    out = ctx.run(
        deploy_commands.pip_install(s.project_dir, s.venv, s.requirements),
        app=True,
        timeout=900,
        ok=False,
    )
    if not out.ok:
        tail = (out.stdout + out.stderr).strip().splitlines()[-8:]
        raise StepFailed(
            f"pip install -r {s.requirements} failed (exit {out.exited})", "\n".join(tail)
        )
    return f"installed {s.requirements}"


def restore_requirements(ctx: Ctx) -> str:
    """The venv as it was: the recorded freeze installed again, then every package the new
    requirements added removed."""
    if not ctx.requirements_changed:
        return "unchanged"
    if not ctx.venv_before:
        return restore_old_file(ctx)  # a deploy recorded before freezes were kept
    s = ctx.s
    parts = ctx.script(deploy_commands.venv_restore(s.venv, ctx.venv_before), app=True, timeout=900)
    parts.need("install", "reinstalling the recorded packages")
    added = parse.added_packages(ctx.venv_before, parts.need("freeze", "pip freeze").lines)
    if added:
        ctx.run(deploy_commands.pip_uninstall(s.venv, added), app=True, timeout=300)
    return f"venv restored ({len(ctx.venv_before)} packages" + (
        f"; removed {', '.join(added)})" if added else ")"
    )


def restore_old_file(ctx: Ctx) -> str:
    # The old file, from git: the checkout may still hold the new one at this point.
    old = f"{ctx.old_commit}:{ctx.s.requirements}"
    ctx.run(
        "tmp=$(mktemp) || exit 1; trap 'rm -f \"$tmp\"' EXIT; "
        + git.git(ctx.s.project_dir, "show", old)
        + ' > "$tmp" && '
        + shell.join(f"{ctx.s.venv}/bin/pip", "install", "-q", "-r")
        + ' "$tmp"',
        app=True,
        timeout=900,
    )
    return "old requirements reinstalled"


def validate(ctx: Ctx) -> str:
    p = probe(ctx)
    if "error" in p:
        e = p["error"]
        raise StepFailed(
            f"the new code does not load: {e['type']}: {e['message']}",
            "\n".join(e.get("traceback", [])),
        )
    if p.get("check"):
        raise StepFailed("manage.py check: " + p["check"][0], "\n".join(p["check"]))
    if "plan" not in p:
        e = p.get("plan_error") or {}
        raise StepFailed(
            f"cannot plan the migrations: {e.get('type', 'no report')}: {e.get('message', '')}",
            "\n".join(e.get("traceback", [])),
        )
    ctx.plan = p["plan"]
    ctx.save_state()  # the plan: what an undo may reverse, and only that
    one_way = risky(ctx.plan, "irreversible")
    if one_way and not ctx.allow_irreversible:
        raise StepFailed(
            "irreversible migration(s) " + ", ".join(one_way) + ": a rollback could "
            "not undo them; deploy with --allow-irreversible if that is accepted",
            "\n".join(risk_lines(ctx.plan, "irreversible")),
        )
    lossy = risky(ctx.plan, "lossy")
    if lossy and not ctx.allow_data_loss:
        raise StepFailed(
            "migration(s) that lose data "
            + ", ".join(lossy)
            + ": "
            + "; ".join(risk_lines(ctx.plan, "lossy"))
            + ". Deploy with --allow-data-loss if that is accepted (a snapshot is taken "
            "first; `fab rollback --restore-db` returns to it)"
        )
    return (
        f"check ok; {len(ctx.plan)} migration(s) to apply: "
        + ", ".join(f"{m['app']}.{m['name']}" for m in ctx.plan)
        if ctx.plan
        else "check ok; no migration to apply"
    )


def risky(plan: list, kind: str) -> list[str]:
    """The planned migrations of `kind` (lossy or irreversible), as app.name."""
    return [f"{m['app']}.{m['name']}" for m in plan if m.get("kind") == kind]


def risk_lines(plan: list, kind: str) -> list[str]:
    return [
        f"{m['app']}.{m['name']} {op['op']}: {op['what']}"
        for m in plan
        if m.get("kind") == kind
        for op in m.get("ops", [])
        if op.get("kind") == kind
    ]


def take_snapshot(ctx: Ctx) -> str:
    """The database as it is, before the migrations change it (none: nothing to keep)."""
    if not ctx.plan:
        return "no migration to apply: nothing to keep"
    snap = snap_now(ctx, f"before {ctx.command} {ctx.deploy_id}")
    ctx.snapshot = snap.to_json()
    ctx.save_state()
    return snapshots.summary(snap)


def snap_now(ctx: Ctx, reason: str) -> snapshots.Snapshot:
    try:
        return snapshots.take(
            ctx.remote, ctx.s, reason, deploy=ctx.deploy_id, commit=ctx.old_commit
        )
    except snapshots.SnapshotError as e:
        raise StepFailed(str(e))


def migrate(ctx: Ctx) -> str:
    if not ctx.plan:
        return "nothing to apply"
    ctx.manage("migrate", "--noinput")
    return f"applied {len(ctx.plan)}"


def unmigrate(ctx: Ctx) -> str:
    """The apps the deploy migrated back to their recorded migration (see reverse_targets); the
    new code is still checked out, so the migration files to reverse are there. A `fab
    rollback` takes a snapshot first: writes made since the deploy live in these tables."""
    p = probe(ctx)
    if "state" not in p:
        e = p.get("state_error") or {}
        raise StepFailed(
            "cannot read which migrations are applied: nothing reversed "
            f"({e.get('type', 'no report')}: {e.get('message', '')})"
        )
    back = reverse_targets(ctx.migrations_before, ctx.plan, p["state"], p.get("applied", {}))
    if not back:
        return "nothing to reverse"
    note = ""
    if ctx.command == "rollback":
        note = "; snapshot " + snapshots.summary(snap_now(ctx, f"before rollback of {ctx.undoes}"))
    parts = ctx.script(
        deploy_commands.unmigrate_script(ctx.s.project_dir, ctx.s.python, back), app=True
    )
    for i, (app, target) in enumerate(back):
        parts.need(str(i), f"manage.py migrate {app} {target}")
    return "; ".join(f"{app} -> {target}" for app, target in back) + note


def reverse_targets(before: dict, plan: list, now_state: dict, now_applied: dict) -> list:
    """(app, target) for each app whose migration state differs from the one recorded before
    the deploy, newest apps first. An app without a record goes to `zero` only when every
    migration applied to it now is one this deploy applied (the deploy introduced it); any other
    unrecorded app refuses the whole undo, reversing nothing: an unknown state is never zero."""
    planned = {(m["app"], m["name"]) for m in plan}
    back, unknown = [], []
    for app in sorted(now_state, reverse=True):
        if app in before:
            if now_state[app] != before[app]:
                back.append((app, before[app]))
        elif now_state[app] == "zero":
            continue
        elif now_applied.get(app) and all((app, n) in planned for n in now_applied[app]):
            back.append((app, "zero"))
        else:
            unknown.append(app)
    if unknown:
        raise StepFailed(
            "the migration state before the deploy was not recorded for "
            + ", ".join(sorted(unknown))
            + ": nothing reversed (migrating them to zero would drop their tables). Restore a "
            "snapshot instead (`fab backup --list`, `fab restore ID`) or migrate by hand"
        )
    return back


def collectstatic(ctx: Ctx) -> str:
    out = ctx.manage("collectstatic", "--noinput")
    return (out.stdout.strip().splitlines() or ["done"])[-1]


def reload(ctx: Ctx) -> str:
    """HUP to the master (graceful) unless --restart, a stopped unit or a changed unit file ask
    for a full restart; the server decides between them in the same round trip."""
    parts = ctx.script(
        deploy_commands.reload_script(ctx.s.gunicorn_unit, graceful=not ctx.full_restart), root=True
    )
    parts.need("reload", "reloading gunicorn")
    r = read_reload(parts)
    ctx.journal_cursor = r["cursor"]
    if r["mode"] != "hup":
        ctx.reload_workers, ctx.reload_master = [], 0
        return "full restart"
    ctx.reload_workers = [p for p in r["pids"] if p != r["main_pid"]]
    ctx.reload_master = r["main_pid"]
    return f"HUP to the master (pid {r['main_pid']}): new workers, socket kept"


def health_gate(ctx: Ctx) -> str:
    ok, detail = health(
        ctx.remote,
        timeout=ctx.s.health_timeout,
        since_pids=ctx.reload_workers,
        main_pid=ctx.reload_master,
        journal_after=ctx.journal_cursor if ctx.check_journal else "",
    )
    if not ok:
        raise StepFailed(f"health gate: {detail}")
    return detail


DEPLOY = [
    ("lock", take_lock, None),
    ("preflight", preflight, None),
    ("fetch", fetch, None),
    ("required files", required_files, None),
    ("code", update_code, restore_code),
    ("requirements", install_requirements, restore_requirements),
    ("validate", validate, None),
    ("snapshot", take_snapshot, None),  # kept: `fab rollback --restore-db`, `fab restore`
    ("migrate", migrate, unmigrate),
    ("collectstatic", collectstatic, None),
    ("reload", reload, None),
    ("health", health_gate, None),
]
# After the undos, the old code is served again.
AFTER_UNDO = [("collectstatic", collectstatic), ("reload", reload), ("health", health_gate)]


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

    @property
    def exit_code(self) -> int:
        return int(
            ExitCode.OK
            if self.result in ("deployed", "up-to-date", "planned", "rolled-back-by-request")
            else ExitCode.PROBLEM
        )

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "exit_code": self.exit_code, **self.__dict__}


def _step(ctx: Ctx, name: str, fn, log: list, show) -> None:
    t0 = time.monotonic()
    try:
        detail = fn(ctx)
    except StepFailed as e:
        log.append(
            {
                "step": name,
                "ok": False,
                "seconds": round(time.monotonic() - t0, 2),
                "detail": e.message,
            }
        )
        show(log[-1])
        raise
    log.append(
        {"step": name, "ok": True, "seconds": round(time.monotonic() - t0, 2), "detail": detail}
    )
    show(log[-1])


def undo_all(ctx: Ctx, done: list, o: Outcome, show) -> None:
    """Undo the completed steps in reverse, then serve the old code again. A step cut off by
    its timeout is stopped on the server first: no undo races the command it undoes."""
    t0 = time.monotonic()
    ctx.check_journal = False
    todo = [(n, u) for n, _, u in reversed(DEPLOY) if n in done and u] + AFTER_UNDO
    try:
        if ctx.timed_out:
            _step(ctx, "stop the step", stop_step, o.undo, show)
        for name, fn in todo:
            _step(
                ctx,
                f"undo {name}" if fn not in dict(AFTER_UNDO).values() else name,
                fn,
                o.undo,
                show,
            )
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


def record(ctx: Ctx, o: Outcome, started: str, release: bool) -> None:
    """The history line, and the lock released by its owner when `release`, in one round
    trip. Not supervised: the release removes the lock the supervisor writes to."""
    remote = getattr(ctx.remote, "inner", ctx.remote)
    line = history_line(ctx, o, started)
    script = deploy_commands.history_append(ctx.s.state_dir, line)
    if release:
        script += "; " + lock.release(ctx.s.state_dir, ctx.token)
    remote.run(script, root=True, timeout=60)


def deploy_host(ctx: Ctx, show, dry_run: bool) -> Outcome:
    o = Outcome(ctx.remote.name, "deployed")
    started = now()
    if dry_run:
        return plan_only(ctx, o, show)
    done: list[str] = []
    locked = False
    try:
        for name, do, _undo in DEPLOY:
            _step(ctx, name, do, o.steps, show)
            done.append(name)
            locked = True
            if name == "fetch" and ctx.new_commit == ctx.old_commit:
                o.result = "up-to-date"
                break
    except Refused as e:
        o.result, o.failed_step, o.error, o.output = "refused", name, e.message, e.output
        if name == "lock":
            return o  # not ours to release
    except StepFailed as e:
        o.failed_step, o.error, o.output = name, e.message, e.output
        done.append(name)  # a failed step may have half-happened: its undo runs too
        undo_all(ctx, done, o, show)
    o.old, o.new, o.commits, o.snapshot = ctx.old_commit, ctx.new_commit, ctx.commits, ctx.snapshot
    if locked:
        # A failed rollback keeps the lock: `fab rollback` finds the state it recorded there.
        record(ctx, o, started, release=o.result != "rollback-failed")
    return o


def plan_only(ctx: Ctx, o: Outcome, show) -> Outcome:
    """--dry-run: what a deploy would do. Fetches objects; changes no file, ref or service."""
    s = ctx.s
    heads = ctx.script(
        deploy_commands.plan_heads(s.project_dir, s.git_remote, s.git_branch), app=True
    )
    ctx.old_commit = heads.need("head", "reading the deployed commit").stdout.strip()
    remote = heads.need("remote", f"git ls-remote {s.git_remote}").stdout.split()
    ctx.new_commit = remote[0] if remote else ""
    if not ctx.new_commit:
        raise OpsError(f"cannot read {s.git_remote}/{s.git_branch}")
    o.result, o.old, o.new = "planned", ctx.old_commit, ctx.new_commit
    if ctx.new_commit == ctx.old_commit:
        o.steps.append({"step": "plan", "ok": True, "seconds": 0, "detail": "already up to date"})
        return o
    parts = ctx.script(
        deploy_commands.plan_script(
            s.project_dir, s.git_remote, s.git_branch, ctx.old_commit, ctx.new_commit
        ),
        app=True,
    )
    o.commits = parts.need("log", "git log").stdout.strip().splitlines()
    files = parts.need("diff", "git diff").stdout.split()
    migrations = [
        f
        for f in parts.need("added", "git diff --diff-filter=A").stdout.split()
        if "/migrations/" in f and f.endswith(".py") and "__init__" not in f
    ]
    details = [
        f"{len(o.commits)} commit(s) {ctx.old_commit[:12]}..{ctx.new_commit[:12]}"
        + ("" if parts.get("ancestor").ok else " (DIVERGED: deploy would refuse)"),
        f"{len(files)} file(s) changed: " + ", ".join(files[:10]),
        "migrations to apply: " + (", ".join(migrations) or "none"),
        "requirements: "
        + ("changed, would be installed" if s.requirements in files else "unchanged"),
    ]
    for d in details:
        o.steps.append({"step": "plan", "ok": True, "seconds": 0, "detail": d})
        show(o.steps[-1])
    return o
