"""Server text is data: what reaches the operator's terminal carries no control characters.

Log lines, commit subjects, file names and error messages come from the server, and anyone who
can write a log line (the app) would otherwise write to the operator's terminal: clear it,
move the cursor, print a fake "healthy", retitle the window (OSC), or hide text with bidi
overrides. rich escapes only its own markup (`[`), and strips just a few C0 codes: ESC passes.

`clean` is the one filter; `CleanHook` applies it to every text segment a console prints,
after rich has laid the text out and before it adds its own styling, so one hook covers every
table, panel and line, whoever built it. JSON needs nothing more: `json.dumps` writes every
control character as a `\\u` escape.
"""

from __future__ import annotations

import re

# ANSI/VT sequences whole (so no `[2J` is left behind): CSI, OSC (to BEL or ST), and the
# other ESC forms; then any C0 control but tab and newline, DEL, the C1 controls, and the
# Unicode format characters that reorder or hide text (bidi embeddings/overrides/isolates).
_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, erase, colours
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # any other ESC sequence, or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: str, *, newlines: bool = True) -> str:
    """`text` without terminal control: sequences removed whole, other controls dropped.
    Tabs stay; newlines stay unless `newlines=False` (one-line fields: they become spaces)."""
    if not text:
        return text
    out = _CONTROL.sub("", _SEQUENCE.sub("", text))
    return out if newlines else out.replace("\n", " ")


def markup(text: object) -> str:
    """Server text for a rich markup string: cleaned, and its `[` escaped."""
    from rich.markup import escape

    return escape(clean(str(text)))


class CleanHook:
    """A rich render hook: every printed text segment passes through `clean`."""

    def process_renderables(self, renderables: list) -> list:
        return [_Cleaned(r) for r in renderables]


class _Cleaned:
    def __init__(self, renderable):
        self.renderable = renderable

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        for seg in console.render(self.renderable, options):
            if seg.control or not seg.text:
                yield seg
            else:
                yield Segment(clean(seg.text), seg.style, seg.control)
