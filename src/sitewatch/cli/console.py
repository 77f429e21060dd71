"""Rich consoles and progress bars for the CLI (stdout for results, stderr for progress and errors)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out_console = Console()
err_console = Console(stderr=True)

#: ANSI/VT escape sequences: CSI (colours, cursor, clear screen), OSC (titles, hyperlinks), 2-byte ESC codes.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?"
)
#: Unicode bidirectional overrides and isolates, which can reorder what a terminal shows.
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


def terminal_text(text: object) -> str:
    """Text from outside (reports, file names) made safe to print with rich.

    Escape sequences are removed whole; other control characters (except newline and tab) and
    bidirectional overrides are dropped; rich markup (``[bold]``) is escaped so it shows as written.
    """
    s = _ESCAPES.sub("", str(text))
    s = "".join(ch for ch in s if ch in "\n\t" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI))
    return escape(s)


def progress(transient: bool = True, disable: bool = False) -> Progress:
    """A progress bar on stderr (hidden when stderr is not a terminal unless forced)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=disable,
    )


def task_progress(bar: Progress, task: TaskID) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that moves ``task`` of ``bar``."""
    return lambda done, total: bar.update(task, completed=done, total=total)
