"""Rich consoles and progress bars for the CLI (stdout for results, stderr for progress and errors)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out_console = Console()
err_console = Console(stderr=True)


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
