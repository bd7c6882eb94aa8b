"""tasks/report.py: the human report of `fab diagnose`, as printed (rich, no terminal)."""

from tasks import report
from tasks.checks.base import FAIL, OK, WARN, CheckResult
from tasks.diagnose import Report
from tasks.verdict import Verdict


def check(step: int, status: str, title: str = "t", summary: str = "s") -> CheckResult:
    return CheckResult(f"c{step}", step, title, status, summary, seconds=0.25)


# A stale socket, with gunicorn stopped beside it.
STALE = {
    "cause": "stale_socket",
    "title": "the socket file exists but nothing listens on it",
    "chain": ["gunicorn master exits", "nginx: connect() failed (111)"],
    "evidence": ["ss -xl: no process listens on it"],
    "fix": ["fab restart --force  # or, by hand:"],
    "also": [{"cause": "gunicorn_stopped", "title": "gunicorn is not running"}],
}


def broken(host: str = "web1") -> Report:
    verdict = Verdict(**STALE)
    checks = [check(1, OK), check(1, FAIL, "gunicorn", "inactive"), check(5, WARN)]
    return Report(host, "lab", verdict, checks, seconds=1.5)


def test_a_step_shows_its_worst_check():
    marks = report.step_marks(broken(), [1, 2, 5])
    assert marks == [report.MARK[FAIL], "", report.MARK[WARN]]


def test_the_host_line_counts_the_failing_checks():
    line = report.host_line(broken("web1"))
    assert "3 checks, 1 failing, 1.50s" in line and "web1" in line
    assert "[red]stale_socket[/]" in line


def test_the_report_prints_checks_then_the_verdict_its_chain_and_fix(capsys):
    report.render(broken())
    out = capsys.readouterr().out
    assert "cynow-ops diagnose: web1 (target lab)" in out
    assert out.index("gunicorn") < out.index("Verdict: stale_socket")
    assert "gunicorn master exits → nginx: connect() failed (111)" in out
    assert "$ fab restart --force  # or, by hand:" in out
    assert "Also: gunicorn_stopped" in out
    assert "3 checks in 1.50s; exit 1" in out


def test_a_healthy_verdict_shows_no_evidence(capsys):
    ok = Report("web1", None, Verdict("healthy", "fine", evidence=["x marks"]), [check(1, OK)])
    report.render(ok)
    out = capsys.readouterr().out
    assert "Verdict: healthy" in out and "x marks" not in out and "Evidence" not in out


def test_many_hosts_share_one_table_then_each_verdict(capsys):
    report.render_fleet([broken("web1"), broken("web2")])
    out = capsys.readouterr().out
    assert "cynow-ops diagnose: every host" in out
    assert out.count("Verdict: stale_socket") == 2
    assert "guide steps: 1 t · 5 t" in out
