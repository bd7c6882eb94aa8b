"""Guide step 9 (the "current problem"): does the server run the latest code of origin/main?"""

from __future__ import annotations

import re

from tasks import parse
from tasks.checks.base import FAIL, OK, WARN, Facts, result
from tasks.settings import Settings


def parse_code(stdout: str) -> dict:
    sec = parse.sections(stdout, ["--new-commits--", "--status--"])
    kv = parse.key_values(sec[""])
    return {
        "head": kv.get("head", ""),
        "branch": kv.get("branch", ""),
        "remote_sha": kv.get("remote_sha", ""),
        "remote_error": kv.get("remote_error", ""),
        "behind": int(kv["behind"]) if kv.get("behind", "").isdigit() else None,
        "ahead": int(kv["ahead"]) if kv.get("ahead", "").isdigit() else None,
        "new_commits": [ln for ln in sec["--new-commits--"].splitlines() if ln.strip()],
        "status": [ln for ln in sec["--status--"].splitlines() if ln.strip()],
    }


def evaluate(facts: Facts, s: Settings) -> list:
    c = facts.code
    ref = f"{s.git_remote}/{s.git_branch}"
    out = []
    title = f"deployed commit vs {ref}"
    head = c.get("head", "")
    if not re.fullmatch(r"[0-9a-f]{40}", head):
        out.append(
            result(
                "code.origin",
                9,
                title,
                FAIL,
                f"{s.project_dir} is not a git checkout: {head[:80]}",
                [head],
            )
        )
    elif not c.get("remote_sha"):
        out.append(
            result(
                "code.origin",
                9,
                f"deployed commit vs {ref}",
                WARN,
                f"could not read {ref}: {c.get('remote_error') or 'no answer'}",
                [f"HEAD {c.get('head', '')[:12]}"],
            )
        )
    elif c.get("behind"):
        out.append(
            result(
                "code.origin",
                9,
                f"deployed commit vs {ref}",
                WARN,
                f"{c['behind']} commit(s) behind {ref}: the server does not run the latest code",
                [f"HEAD {c['head'][:12]}, {ref} {c['remote_sha'][:12]}"]
                + c.get("new_commits", [])[:5],
            )
        )
    elif c.get("behind") is None:
        out.append(
            result(
                "code.origin",
                9,
                title,
                WARN,
                f"could not compare with {ref} {c['remote_sha'][:12]}: fetching its commits failed",
                [f"HEAD {head[:12]}"],
            )
        )
    else:
        extra = f", {c['ahead']} ahead" if c.get("ahead") else ""
        out.append(
            result(
                "code.origin",
                9,
                f"deployed commit vs {ref}",
                OK,
                f"up to date at {c['head'][:12]} ({c.get('branch')}){extra}",
            )
        )
    if c.get("status"):
        out.append(
            result(
                "code.worktree",
                9,
                "uncommitted changes on the server",
                WARN,
                f"{len(c['status'])} changed file(s) in the checkout",
                c["status"][:8],
            )
        )
    else:
        out.append(
            result("code.worktree", 9, "uncommitted changes on the server", OK, "clean checkout")
        )
    return out
