"""Server text is data: no control sequence from the server reaches the operator's terminal."""

from __future__ import annotations

import io
import json
import re

import pytest
from invoke.exceptions import Exit
from rich.console import Console
from rich.table import Table

from tasks import common, logs
from tasks.errors import OpsError
from tasks.text import CleanHook, clean, markup

# What an app can write to django.log or a commit subject: clear the screen, home the cursor,
# print a fake verdict in green, retitle the window, ring the bell, hide text with a bidi
# override, and a carriage return to overwrite the line it is on.
HOSTILE = (
    "\x1b[2J\x1b[H\x1b[32m✓ healthy\x1b[0m\x1b]0;owned\x07\x07\u202eevil\u202c"
    "\rline\x9b31m\x1bPdcs\x1b\\\x00end"
)
# Only SGR (colour) sequences, which rich writes itself, may appear in rendered output.
SGR = re.compile(r"\x1b\[[0-9;]*m")


def test_clean_removes_sequences_whole_and_keeps_tabs_and_newlines():
    assert clean(HOSTILE) == "✓ healthyevillineend"
    assert clean("a\tb\nc") == "a\tb\nc"
    assert clean("a\nb", newlines=False) == "a b"
    assert clean("naïve 한국어 [red]") == "naïve 한국어 [red]"
    assert clean("") == ""


def test_markup_escapes_after_cleaning():
    assert markup("[red]x\x1b[2J") == "\\[red]x"


def _printed(*objects) -> str:
    out = io.StringIO()
    c = Console(file=out, force_terminal=True, color_system="truecolor", width=200)
    c.push_render_hook(CleanHook())
    for o in objects:
        c.print(o)
    return out.getvalue()


@pytest.mark.parametrize(
    "renderable",
    [
        pytest.param(lambda: f"[bold]{markup(HOSTILE)}[/]", id="markup line"),
        pytest.param(lambda: HOSTILE, id="plain string"),
        pytest.param(lambda: _table(HOSTILE), id="table cell"),
    ],
)
def test_no_control_sequence_reaches_the_terminal(renderable):
    text = _printed(renderable())
    assert "healthy" in text  # the words are shown, as data
    leftover = SGR.sub("", text)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", leftover), repr(leftover)


def _table(cell: str) -> Table:
    t = Table("source", "line")
    t.add_row("django", cell)
    return t


def test_every_console_of_the_tasks_has_the_hook():
    for stderr in (False, True):
        assert any(isinstance(h, CleanHook) for h in common.console(stderr)._render_hooks)


def test_a_hostile_log_line_is_shown_clean(monkeypatch):
    out = io.StringIO()
    c = Console(file=out, force_terminal=True, width=200)
    c.push_render_hook(CleanHook())
    monkeypatch.setattr(logs, "console", lambda *a: c)
    entry = {"line": HOSTILE, "signature": ""}
    logs.render({"sources": {"django": [entry]}})
    assert "\x1b[2J" not in out.getvalue() and "\x1b]0;" not in out.getvalue()


def test_json_escapes_control_characters_as_json_does(capsys):
    common.print_json({"line": HOSTILE})
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\\u001b" in printed
    assert json.loads(printed)["line"] == HOSTILE  # the data itself is kept, exactly


def test_an_error_message_quoting_server_text_is_one_clean_line():
    @common.guarded
    def task():
        raise OpsError("sudo said: \x1b[2Jok\nfake line")

    with pytest.raises(Exit) as e:
        task()
    assert e.value.message == "cynow-ops: sudo said: ok fake line"


# Server text that, read as rich markup, would become a hyperlink (an OSC 8 sequence around
# "click"), plus a raw escape that clears the screen.
LINKED = "[link=http://x]click[/link] \x1b[2Jdone"


def _captured(monkeypatch, *modules, terminal: bool = True) -> io.StringIO:
    out = io.StringIO()
    c = Console(file=out, force_terminal=terminal, width=200)
    c.push_render_hook(CleanHook())
    for m in modules:
        monkeypatch.setattr(m, "console", lambda *a, **k: c)
    return out


def _shown_as_text(printed: str) -> None:
    assert "\x1b]8;" not in printed and "\x1b[2J" not in printed
    assert "\x1b" not in SGR.sub("", printed)  # rich's colours only
    assert "[link=http://x]click[/link]" in SGR.sub("", printed)  # the words, as written


def test_server_text_in_task_reports_is_not_markup(monkeypatch):
    from tasks import diagnose, repair, restart, upgrade_unit
    from tasks.errors import ConnectError
    from tasks.settings import resolve

    out = _captured(monkeypatch, restart)
    restart.render(restart.Outcome("h", "graceful", [restart.StepLine("reload", False, LINKED)]))
    _shown_as_text(out.getvalue())

    out = _captured(monkeypatch, upgrade_unit)
    step = restart.StepLine("verify", False, LINKED)
    upgrade_unit.render(upgrade_unit.Outcome("h", "upgrade", "failed", LINKED, steps=[step]))
    assert SGR.sub("", out.getvalue()).count("[link=http://x]") == 2
    _shown_as_text(out.getvalue())

    out = _captured(monkeypatch, repair)
    monkeypatch.setattr("tasks.outcomes.warn_notify", lambda *a: None)
    repair.render(repair.Outcome("h", "gunicorn_stopped", "gunicorn_stopped", error=LINKED))
    _shown_as_text(out.getvalue())

    class Unreachable:
        name, settings = "h", resolve({})

        def open(self):
            raise ConnectError(f"ssh said: {LINKED}")

        def close(self):
            pass

    out = _captured(monkeypatch, diagnose, terminal=False)  # no spinner: it moves the cursor
    monkeypatch.setattr("tasks.report.render", lambda report: None)
    diagnose.one_host(Unreachable(), json=False, started="now")
    _shown_as_text(out.getvalue())
