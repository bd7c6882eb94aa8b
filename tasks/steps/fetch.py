"""Fetch the branch, refuse a diverged or moved origin, note the commits and changed files."""

from __future__ import annotations

from tasks.git import git
from tasks.shell import q, sequence
from tasks.steps.context import Ctx, Refused, Step


def fetch_script(project_dir: str, remote: str, branch: str, old: str) -> str:
    """The deploy's fetch in one round trip, as the app user: the branch into its remote-tracking
    ref, that ref's commit, whether it descends from the deployed commit `old`, and the commits
    and files between them. Stops at the first part that fails (a failed fetch: nothing else)."""
    tracking = f"refs/remotes/{remote}/{branch}"
    fetch = git(
        project_dir, "fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{tracking}"
    )
    return "\n".join(
        [
            sequence({"fetch": fetch}),
            # Read once: every later part uses this commit, even if the ref moved meanwhile.
            f"new=$({git(project_dir, 'rev-parse', '--verify', tracking + '^{commit}')})",
            sequence(
                {
                    "new": 'test -n "$new" && printf \'%s\\n\' "$new"',
                    "ancestor": f'{git(project_dir, "merge-base", "--is-ancestor", old)} "$new"',
                    "log": f'{git(project_dir, "log", "--format=%h %s")} {q(old + "..")}"$new"',
                    "diff": f'{git(project_dir, "diff", "--name-only", old)} "$new"',
                }
            ),
        ]
    )


def fetch(ctx: Ctx) -> str:
    s = ctx.s
    parts = ctx.script(
        fetch_script(s.project_dir, s.git_remote, s.git_branch, ctx.old_commit),
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
    ctx.new_subject = ctx.commits[0].partition(" ")[2] if ctx.commits else ""  # newest first
    changed = parts.need("diff", "git diff").stdout.split()
    ctx.requirements_changed = s.requirements in changed
    ctx.save_state()
    return f"{len(ctx.commits)} new commit(s): " + "; ".join(ctx.commits[:5])


STEP = Step("fetch", fetch)
