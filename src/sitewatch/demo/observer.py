"""Hooks the demo calls as it goes, so that a caller can show it (the CLI prints it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sitewatch.detect.base import ProgressCallback

if TYPE_CHECKING:
    from sitewatch.demo.steps import DemoState
    from sitewatch.store.watchstate import AlertRecord
    from sitewatch.types import Pass


def _ignore(done: int, total: int) -> None:
    pass


class DemoObserver:
    """Told what the demo is doing; every hook does nothing here (a demo run with it is silent).

    Subclass and override the hooks to show the run. The state handed to a hook is the live
    :class:`~sitewatch.demo.steps.DemoState`: read it, do not change it.
    """

    def step_started(self, name: str, title: str) -> None:
        """A step of the demo begins (``name`` as in the step timings, ``title`` one line for people)."""

    def step_finished(self, name: str, state: DemoState) -> None:
        """A step ended; what it produced is in ``state``."""

    @contextlib.contextmanager
    def task(self, description: str) -> Iterator[ProgressCallback]:
        """A long task runs inside this context; it reports ``progress(done, total)`` when it can."""
        yield _ignore

    def imagery_chosen(self, state: DemoState) -> None:
        """The site and the kind of imagery are known (``state.simulated``); for a real pair, its scenes too.

        Called before simulated passes are drawn, so a caller can say first that they are SIMULATED.
        """

    def pass_scanned(self, scanned: Pass, notes: list[str]) -> None:
        """A scene was scanned and stored as ``scanned``; ``notes`` are its coverage warnings."""

    def pass_arrives(self, number: int, name: str, aircraft: int) -> None:
        """Watch demo: SIMULATED pass ``number`` (from 1) lands in the watched folder as ``name``."""

    def watch_cycle(self, passes: list[Pass], alerts: list[AlertRecord]) -> None:
        """Watch demo: one watch cycle stored ``passes`` and raised ``alerts`` (oldest first)."""
