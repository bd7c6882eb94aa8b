"""Guide step 9 (the "current problem"): does the server run the latest code of origin/main?"""

from __future__ import annotations

import re

from tasks import parse
from tasks.checks.base import APP, Check, Fact, Facts
from tasks.git import git
from tasks.settings import Settings
from tasks.shell import batch


def code_script(project_dir: str, remote: str, branch: str, timeout: float = 30) -> str:
    """The deployed commit against the remote branch. The fetch stores objects only (no ref,
    no FETCH_HEAD, no file in the checkout changes)."""
    g = lambda *a: git(project_dir, *a)  # noqa: E731
    ref = f"refs/heads/{branch}"
    # Read first, into variables: the framed parts below only print what was found.
    prelude = [
        f"remote_line=$(timeout {timeout:g} {g('ls-remote', remote, ref)} 2>&1)",
        "ls_remote_exit=$?",
        "remote_sha=$(printf '%s' \"$remote_line\" | awk 'NF==2 {print $1; exit}')",
        # Fetch only when the remote commit is not here yet: even a no-op fetch touches
        # .git/objects.
        f'[ -z "$remote_sha" ] || {g("cat-file", "-e")} "$remote_sha^{{commit}}" 2>/dev/null || '
        f"timeout {timeout:g} "
        + g("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", remote, ref)
        + " >/dev/null 2>&1",
    ]
    refs = "\n".join(
        [
            f'echo "head=$({g("rev-parse", "HEAD")} 2>&1)"',
            f'echo "branch=$({g("rev-parse", "--abbrev-ref", "HEAD")} 2>&1)"',
            'echo "ls_remote_exit=$ls_remote_exit"',
            'echo "remote_sha=$remote_sha"',
            '[ -n "$remote_sha" ] || '
            'echo "remote_error=$(printf \'%s\' "$remote_line" | tail -n1)"',
            'if [ -n "$remote_sha" ]; then',
            f'  echo "behind=$({g("rev-list", "--count")} "HEAD..$remote_sha" 2>/dev/null)"',
            f'  echo "ahead=$({g("rev-list", "--count")} "$remote_sha..HEAD" 2>/dev/null)"',
            "fi",
        ]
    )
    parts = {
        "refs": refs,
        "new_commits": f'[ -z "$remote_sha" ] || '
        f'{g("log", "--format=%h %s", "-n", "10")} "HEAD..$remote_sha" 2>/dev/null',
        # --no-optional-locks: a plain `git status` rewrites .git/index to refresh it.
        "status": f"{g('--no-optional-locks', 'status', '--porcelain=v1')} 2>&1 | head -n 50",
    }
    return "\n".join(prelude) + "\n" + batch(parts)


def code_command(s: Settings, _facts=None) -> str:
    return code_script(s.project_dir, s.git_remote, s.git_branch)


def parse_code(parts: dict, _s=None) -> dict:
    kv = parse.key_values(parts["refs"].text)
    return {
        "head": kv.get("head", ""),
        "branch": kv.get("branch", ""),
        "remote_sha": kv.get("remote_sha", ""),
        "remote_error": kv.get("remote_error", ""),
        "behind": int(kv["behind"]) if kv.get("behind", "").isdigit() else None,
        "ahead": int(kv["ahead"]) if kv.get("ahead", "").isdigit() else None,
        "new_commits": [ln for ln in parts["new_commits"].text.splitlines() if ln.strip()],
        "status": [ln for ln in parts["status"].text.splitlines() if ln.strip()],
    }


FACTS = [Fact("code", code_command, parse_code, identity=APP, alone=True, framed=True)]


def evaluate(facts: Facts, s: Settings) -> list:
    code = facts.code
    ref = f"{s.git_remote}/{s.git_branch}"
    origin = Check("code.origin", 9, f"deployed commit vs {ref}")
    head = code.get("head", "")
    if not re.fullmatch(r"[0-9a-f]{40}", head):
        out = [origin.fail(f"{s.project_dir} is not a git checkout: {head[:80]}", [head])]
    elif not code.get("remote_sha"):
        out = [
            origin.warn(
                f"could not read {ref}: {code.get('remote_error') or 'no answer'}",
                [f"HEAD {code.get('head', '')[:12]}"],
            )
        ]
    elif code.get("behind"):
        out = [
            origin.warn(
                f"{code['behind']} commit(s) behind {ref}: the server does not run the latest code",
                [f"HEAD {code['head'][:12]}, {ref} {code['remote_sha'][:12]}"]
                + code.get("new_commits", [])[:5],
            )
        ]
    elif code.get("behind") is None:
        out = [
            origin.warn(
                f"could not compare with {ref} {code['remote_sha'][:12]}: "
                "fetching its commits failed",
                [f"HEAD {head[:12]}"],
            )
        ]
    else:
        extra = f", {code['ahead']} ahead" if code.get("ahead") else ""
        out = [origin.ok(f"up to date at {code['head'][:12]} ({code.get('branch')}){extra}")]
    worktree = Check("code.worktree", 9, "uncommitted changes on the server")
    if code.get("status"):
        out.append(
            worktree.warn(
                f"{len(code['status'])} changed file(s) in the checkout", code["status"][:8]
            )
        )
    else:
        out.append(worktree.ok("clean checkout"))
    return out
