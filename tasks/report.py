"""The human report of `fab diagnose` (rich): the guide's checklist, then the verdict."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from tasks.checks.base import FAIL, OK, SKIPPED, WARN
from tasks.common import console
from tasks.diagnose import Report

MARK = {OK: "[green]✓[/]", FAIL: "[red]✗[/]", WARN: "[yellow]![/]", SKIPPED: "[dim]–[/]"}


def render(r: Report) -> None:
    title = f"cynow-ops diagnose: {r.host}" + (f" (target {r.target})" if r.target else "")
    if r.checks:
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("#", justify="right", style="dim")
        table.add_column("check", max_width=30)
        table.add_column("", justify="center")
        table.add_column("result", ratio=1)
        table.add_column("time", justify="right", style="dim")
        for c in r.checks:
            table.add_row(
                str(c.step), escape(c.title), MARK[c.status], escape(c.summary), f"{c.seconds:.2f}s"
            )
        console().print(table)
    else:
        console().print(f"[bold]{escape(title)}[/]")
    if r.discovered:
        said = ", ".join(f"{k} {v['value']} ({v['source']})" for k, v in r.discovered.items())
        console().print(f"[dim]From the server, where the config is silent: {escape(said)}[/]")
    render_verdict(r)


def render_verdict(r: Report) -> None:
    v = r.verdict
    colour = "green" if v.healthy else "red"
    console().print(f"\n[bold {colour}]Verdict: {v.cause}[/] [bold]- {escape(v.title)}[/]")
    if v.chain:
        console().print("  " + escape(" → ".join(v.chain)))
    if v.evidence and not v.healthy:
        console().print("[bold]Evidence[/]")
        for line in v.evidence[:10]:
            console().print(f"  {escape(line)}")
    if v.fix:
        console().print("[bold]Fix[/]")
        for line in v.fix:
            console().print(f"  $ {escape(line)}")
    for a in v.also:
        console().print(f"[yellow]Also: {a['cause']}[/] - {escape(a['title'])}")
    console().print(f"[dim]{len(r.checks)} checks in {r.seconds:.2f}s; exit {r.exit_code}[/]")


# How bad a step is: its worst check.
RANK = {SKIPPED: 0, OK: 1, WARN: 2, FAIL: 3}


def step_marks(r: Report, steps: list[int]) -> list[str]:
    """One mark per guide step: the worst status among that step's checks."""
    worst: dict[int, str] = {}
    for c in r.checks:
        if c.step not in worst or RANK[c.status] > RANK[worst[c.step]]:
            worst[c.step] = c.status
    return [MARK[worst[n]] if n in worst else "" for n in steps]


def host_line(r: Report) -> str:
    """The line printed under a host's name as soon as its diagnosis ends."""
    v = r.verdict
    colour = "green" if v.healthy else "red"
    failing = sum(1 for c in r.checks if c.status == FAIL)
    return (
        f"[bold]{escape(r.host)}[/] [{colour}]{escape(v.cause)}[/]"
        f" [dim]{len(r.checks)} checks, {failing} failing, {r.seconds:.2f}s[/]"
    )


def render_fleet(reports: list[Report]) -> None:
    """Several hosts: one table (host x the guide's steps), then each host's verdict."""
    steps = sorted({c.step for r in reports for c in r.checks})
    first = {}
    for c in (c for r in reports for c in r.checks):
        first.setdefault(c.step, c.title)
    table = Table(
        title="cynow-ops diagnose: every host",
        title_justify="left",
        caption="guide steps: " + " · ".join(f"{n} {escape(first[n])}" for n in steps),
        caption_justify="left",
    )
    table.add_column("host")
    for n in steps:
        table.add_column(str(n), justify="center")
    table.add_column("verdict")
    table.add_column("time", justify="right", style="dim")
    for r in reports:
        colour = "green" if r.verdict.healthy else "red"
        table.add_row(
            escape(r.host),
            *step_marks(r, steps),
            f"[{colour}]{escape(r.verdict.cause)}[/]",
            f"{r.seconds:.2f}s",
        )
    console().print(table)
    for r in reports:
        console().rule(f"[bold]{escape(r.host)}[/]", align="left")
        render_verdict(r)
