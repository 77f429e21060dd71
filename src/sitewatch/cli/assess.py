"""``sitewatch assess``: key judgements, confidence, ACH matrix and indicators for one site."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from sitewatch.cli.console import out_console, terminal_text
from sitewatch.cli.options import json_option, span_options, store_option

if TYPE_CHECKING:
    from sitewatch.store.span import PassSpan
from sitewatch.errors import SitewatchError

log = logging.getLogger(__name__)
_VERDICT_STYLE = {
    "corroborated": "green",
    "contradicted": "red",
    "not-observable": "yellow",
    "no-imagery": "dim",
}


def _comparisons(passes: list, site) -> list:  # noqa: ANN001
    from sitewatch.compare import compare_passes

    out = []
    for a, b in zip(passes, passes[1:], strict=False):
        try:
            out.append(compare_passes(a, b, site))
        except SitewatchError as e:
            log.warning("passes %s and %s not compared: %s", a.id, b.id, e)
    return out


def print_assessment(a) -> None:  # noqa: ANN001 - an Assessment
    """Rich rendering of an assessment on stdout."""
    out_console.rule(f"[bold]Assessment of {a.site}[/] ({len(a.passes)} passes, {len(a.claims)} claims)")
    out_console.print("[bold]Key judgements[/]")
    for k in a.key_judgements:
        refs = ", ".join(k["evidence"][:8]) + (
            f" +{len(k['evidence']) - 8}" if len(k["evidence"]) > 8 else ""
        )
        out_console.print(f"  • {terminal_text(k['text'])}  [dim]\\[{refs}][/]")
    out_console.print(f"\n[bold]Confidence:[/] {a.confidence['sentence']}")
    if a.not_assessable:
        out_console.print("\n[bold]Not assessable[/]")
        for line in a.not_assessable:
            out_console.print(f"  • {line}")
    hyps = [h.name for h in a.hypotheses]
    matrix = Table(title="ACH matrix (CC C N I II; weight = strength x reliability)", show_lines=False)
    matrix.add_column("evidence", overflow="fold", max_width=60)
    matrix.add_column("weight", justify="right")
    for h in hyps:
        matrix.add_column(h, justify="center")
    for row in a.ach_matrix["rows"]:
        matrix.add_row(
            terminal_text(row["title"]), f"{row['weight']:.2f}", *(row["scores"].get(h, "N") for h in hyps)
        )
    matrix.add_section()
    matrix.add_row("[bold]probability[/]", "", *(f"{h.probability:.0%}" for h in a.hypotheses))
    matrix.add_row("[bold]estimative term[/]", "", *(h.term for h in a.hypotheses))
    matrix.add_row("[bold]inconsistency (Heuer)[/]", "", *(f"{h.inconsistency:.2f}" for h in a.hypotheses))
    out_console.print(matrix)
    ind = Table(title="Indicators")
    for col in ("indicator", "state", "strength", "detail", "evidence"):
        ind.add_column(col, overflow="fold")
    for r in sorted(a.indicators, key=lambda r: ("fired", "not-fired", "not-assessable").index(r.state)):
        style = {"fired": "bold green", "not-fired": "", "not-assessable": "dim"}[r.state]
        ind.add_row(f"[{style}]{r.name}[/]" if style else r.name, r.state,
                    f"{r.strength:.2f}" if r.state == "fired" else "", r.sentence or r.reason,
                    ", ".join(r.evidence[:6]) + (" …" if len(r.evidence) > 6 else ""))  # fmt: skip
    out_console.print(ind)
    if a.checks:
        ct = Table(title="Claims checked against imagery")
        for col in ("claim", "source", "verdict", "why", "evidence"):
            ct.add_column(col, overflow="fold")
        by_id = {c.id: c for c in a.claims}
        for ch in a.checks:
            c = by_id[ch.claim_id]
            style = _VERDICT_STYLE[ch.verdict]
            ct.add_row(
                terminal_text(c.text),
                terminal_text(f"{c.source} ({c.reliability or 'F'})"),
                f"[{style}]{ch.verdict}[/]",
                terminal_text(ch.reason),
                ", ".join(ch.evidence[:5]),
            )
        out_console.print(ct)
    for cf in a.conflicts:
        out_console.print(
            f"[yellow]conflicting claims[/] {cf['claims'][0]} vs {cf['claims'][1]}: "
            f"{terminal_text(cf['reason'])}"
        )


@click.command()
@click.argument("site")
@click.option("--indicators", "indicator_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Extra indicator YAML file or directory (repeatable); $SITEWATCH_HOME/indicators is "
                   "always read.")  # fmt: skip
@click.option("--list-metrics", is_flag=True, help="List the metrics indicator conditions can use, and exit.")
@span_options("to assess (default: all)")
@json_option
@store_option
def command(
    site: str,
    span: PassSpan,
    indicator_dirs: tuple[Path, ...],
    list_metrics: bool,
    as_json: bool,
    store_url: str | None,
) -> None:
    """Assess SITE: indicators, competing hypotheses (ACH), claims checked against imagery.

    Example: sitewatch assess hmeimim --json
    """
    from sitewatch.assess import assess_site
    from sitewatch.assess.metrics import list_metrics as metrics
    from sitewatch.sites import get_site
    from sitewatch.store import open_store

    if list_metrics:
        for name, doc in metrics().items():
            out_console.print(f"[bold]{name}[/]: {doc}")
        return
    s = get_site(site)
    with open_store(store_url) as store:
        passes = store.list_passes(s.name)
    if passes:
        passes = span.select(passes, s.name)
        claims = store.list_claims(s.name)
    if not passes and not claims:
        raise SitewatchError(
            f"nothing to assess for site '{s.name}': no passes and no claims in the store; run: sitewatch "
            f"scan SCENE --site {s.name}"
        )
    comparisons = _comparisons(passes, s)
    a = assess_site(s, passes, comparisons, claims, indicator_dirs=list(indicator_dirs))
    if as_json:
        click.echo(json.dumps(a.to_dict(), indent=1, default=str))
        return
    print_assessment(a)
