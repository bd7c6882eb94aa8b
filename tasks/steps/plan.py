"""`fab deploy --dry-run`: what a deploy would do. Fetches objects; changes no file, ref or
service."""

from __future__ import annotations

from tasks.errors import OpsError
from tasks.git import git
from tasks.shell import batch, sequence
from tasks.steps.context import Ctx, Outcome


def heads_script(project_dir: str, remote: str, branch: str) -> str:
    """First round trip: the deployed commit and the remote branch's."""
    return sequence(
        {
            "head": git(project_dir, "rev-parse", "HEAD"),
            "remote": git(project_dir, "ls-remote", remote, f"refs/heads/{branch}"),
        }
    )


def plan_script(project_dir: str, remote: str, branch: str, old: str, new: str) -> str:
    """Second round trip: the new objects (no ref, no FETCH_HEAD), whether `new` descends from
    `old`, the commits, the files changed and the files added between them."""
    return batch(
        {
            "fetch": git(
                project_dir,
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--refmap=",
                remote,
                f"refs/heads/{branch}",
            ),
            "ancestor": git(project_dir, "merge-base", "--is-ancestor", old, new),
            "log": git(project_dir, "log", "--format=%h %s", f"{old}..{new}"),
            "diff": git(project_dir, "diff", "--name-only", old, new),
            "added": git(project_dir, "diff", "--name-only", "--diff-filter=A", old, new),
        }
    )


def plan_only(ctx: Ctx, o: Outcome, show) -> Outcome:
    s = ctx.s
    heads = ctx.script(heads_script(s.project_dir, s.git_remote, s.git_branch), app=True)
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
        plan_script(s.project_dir, s.git_remote, s.git_branch, ctx.old_commit, ctx.new_commit),
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
