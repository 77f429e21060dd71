"""``sitewatch demo``: the whole pipeline offline on two passes of one site, ending with a report.

The demo itself is :mod:`sitewatch.demo`; this command prints what it does (rich, stdout for
results, stderr for progress and notes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from sitewatch.cli.console import err_console, out_console, progress, task_progress
from sitewatch.cli.options import output_option
from sitewatch.demo import DemoObserver, DemoResult, DemoState, WatchDemoResult, run_demo, run_watch_demo

if TYPE_CHECKING:
    from sitewatch.detect.base import ProgressCallback
    from sitewatch.store.watchstate import AlertRecord
    from sitewatch.types import Pass


def _note(text: object) -> None:
    err_console.print(f"[yellow]note:[/] {text}")


class _Printer(DemoObserver):
    """Prints the demo as it runs: a rule per step, progress bars, what each step found."""

    def step_started(self, name: str, title: str) -> None:
        err_console.rule(f"[bold]{title}")

    @contextlib.contextmanager
    def task(self, description: str) -> Iterator[ProgressCallback]:
        with progress() as bar:
            yield task_progress(bar, bar.add_task(description, total=None))

    def imagery_chosen(self, state: DemoState) -> None:
        if state.simulated:
            err_console.print(
                f"[bold red]SIMULATED[/] imagery: two passes of {state.site.title} drawn on the watchlist's "
                "zones (no real data given)"
            )
            return
        names = " → ".join(Path(sc["path"]).name for sc in state.scenes)
        err_console.print(
            f"real Airbus Pléiades pair {names}: pixel space at 0.5 m GSD, place name invented, dates "
            "SYNTHETIC"
        )

    def pass_scanned(self, scanned: Pass, notes: list[str]) -> None:
        from sitewatch.cli.scan import describe

        for n in notes:
            _note(n)
        out_console.print(describe(scanned))

    def step_finished(self, name: str, state: DemoState) -> None:
        show = {
            "inventory": _show_inventory,
            "compare": _show_comparison,
            "claims": _show_claims,
            "assess": _show_assessment,
            "report": _show_report,
        }.get(name)
        if show is not None:
            show(state)

    def pass_arrives(self, number: int, name: str, aircraft: int) -> None:
        err_console.rule(f"[bold]SIMULATED pass {number} arrives: {name} ({aircraft} aircraft drawn)")

    def watch_cycle(self, passes: list[Pass], alerts: list[AlertRecord]) -> None:
        from sitewatch.cli.scan import describe

        for p in passes:
            out_console.print(describe(p))
        for a in alerts:
            out_console.print(f"  [bold yellow]ALERT[/] {escape(a.title)}")
        if alerts and alerts[0].payload["evidence"].get("report"):
            out_console.print(f"  report: {alerts[0].payload['evidence']['report']}")
        if not alerts:
            out_console.print("  no alert: nothing the rules watch for changed")


def _show_inventory(st: DemoState) -> None:
    from sitewatch.cli.inventory import inventory_table

    out_console.print(inventory_table(st.site.name, st.summary["inventory"]))
    for t in st.summary["truth"]:
        out_console.print(
            f"pass {t['pass_id']}: detector {t['detected_aircraft']} aircraft, "
            f"{t['source']} {t['true_aircraft']}"
        )
    if not st.detector_trained:
        _note("the bundled detector model is an untrained placeholder: detections are not meaningful yet")


def _show_comparison(st: DemoState) -> None:
    c = st.comparison
    assert c is not None
    if c.registration is not None:
        r = c.registration
        out_console.print(
            f"co-registration: shift {r.shift_x_px:+.1f}, {r.shift_y_px:+.1f} px ({r.method}, quality "
            f"{r.quality:.2f})"
        )
    moves = {
        cat: {s: n for s, n in v.items() if n}
        for cat, v in c.counts.items()
        if cat in ("aircraft", "helicopter") and any(v.values())
    }
    for cat, by_status in moves.items():
        out_console.print(
            f"  {cat}: "
            + ", ".join(
                f"{n} {s}" for s, n in by_status.items() if s in ("arrived", "departed", "remained", "moved")
            )
        )
    out_console.print(f"changes: {c.sentence}")
    for w in c.warnings:
        _note(w)


def _show_claims(st: DemoState) -> None:
    assert st.text_report_path is not None
    out_console.print(
        f"text report {st.text_report_path.name} (FICTIONAL, written for the demo) → document "
        f"{st.document_id}, {len(st.stored_claims)} claims:"
    )
    for c in st.stored_claims:
        what = ", ".join(m.get("name") or m["text"] for m in c["equipment"]) or "-"
        when = ", ".join(f"{d.get('qualifier') or ''} {d['date'] or d['text']}".strip() for d in c["dates"])
        out_console.print(f"  claim {c['id']}: [bold]{c.get('signal') or 'no signal'}[/] "
                          f"{what}{' (' + when + ')' if when else ''}  [dim]\"{c['text']}\"[/]")  # fmt: skip


def _show_assessment(st: DemoState) -> None:
    a = st.assessment
    assert a is not None
    out_console.print("[bold]Key judgements[/]")
    for k in a.key_judgements:
        refs = ", ".join(k["evidence"][:4]) + (
            f" +{len(k['evidence']) - 4} more" if len(k["evidence"]) > 4 else ""
        )
        out_console.print(f"  • {k['text']}  [dim]\\[{refs}][/]")
    out_console.print(f"[bold]Confidence:[/] {a.confidence['sentence']}")
    out_console.print(
        "Hypotheses: " + "; ".join(f"{h.name} {h.probability:.0%} ({h.term})" for h in a.hypotheses)
    )


def _show_report(st: DemoState) -> None:
    if st.pdf_error is not None:
        _note(f"no PDF ({st.pdf_error}); report.html and report.json are written")


def _show_outputs(result: DemoResult) -> None:
    out = result.out
    out_console.print(f"\n[bold]outputs in {out}/[/]")
    for p in result.outputs:
        out_console.print(f"  {p.name}{'/' if p.is_dir() else ''}")
    # the demo site of the real pair is not on the watchlist: commands that look sites up cannot use it
    explore = "assess" if result.simulated else "compare"
    out_console.print(f"open {out / 'report.html'}; explore the demo store with e.g. sitewatch {explore} "
                      f"{result.site} --store {result.store_url}")  # fmt: skip
    # last line: the command that serves the demo store as a web dashboard (one line, copyable)
    out_console.print(
        f"see it on a map (then open http://127.0.0.1:8000/sites/{result.site}):", soft_wrap=True
    )
    out_console.print(
        f"sitewatch serve --store sqlite:///{result.store_path.resolve()}", soft_wrap=True, highlight=False
    )


def _show_watch(result: WatchDemoResult) -> None:
    out_console.print(f"Atom feed: {result.feed}; reports: {result.reports}; store: {result.store_url}")
    out_console.print(f"see the watch state with: sitewatch watch --status --store {result.store_url}")


@click.command()
@click.option(
    "--watch",
    "watch_demo",
    is_flag=True,
    help="Instead: three SIMULATED passes arrive in a watched folder; show the alerts.",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Labelled imagery tree (e.g. ../shared/data) for a real pair.",
)
@output_option(
    "Output folder (the demo replaces its own files there).",
    old=("--out",),
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sitewatch-demo-out"),
    show_default=True,
)
def command(watch_demo: bool, data: Path | None, output: Path) -> None:
    """Run the pipeline on two passes of one site: scan, inventory, changes, claims, assessment, report.

    Offline. Without --data the imagery is SIMULATED (Hmeimim, on the watchlist's zones); with
    --data a real Airbus Pléiades pair is used (dates SYNTHETIC). The text report ingested is FICTIONAL.

    With --watch, three SIMULATED passes of Hmeimim arrive one by one in a watched folder and
    `sitewatch watch` raises its alerts (log, Atom feed, reports; see docs/watch.md).

    Example: sitewatch demo --data ../shared/data -o demo-out
    """
    if watch_demo:
        if data is not None:
            raise click.UsageError("--watch plays SIMULATED passes; it takes no --data")
        _show_watch(run_watch_demo(output, _Printer()))
        return
    _show_outputs(run_demo(output, data, observer=_Printer()))
