"""The human report of `fab diagnose` (rich): the guide's checklist, then the verdict."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from tasks.checks.base import FAIL, OK, SKIPPED, WARN
from tasks.cli import console
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
