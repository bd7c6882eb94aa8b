"""Collect the static files (also after the undos, for the old code)."""

from __future__ import annotations

from tasks import app
from tasks.steps.context import Ctx, Step


def collectstatic(ctx: Ctx) -> str:
    out = ctx.manage(*app.COLLECTSTATIC)
    return (out.stdout.strip().splitlines() or ["done"])[-1]


STEP = Step("collectstatic", collectstatic)
