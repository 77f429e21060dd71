"""Reports: the analyst's HTML/PDF report with its JSON twin; exports (GeoJSON, GeoParquet, KML, CSV).

``write_report(store, site, out)`` gathers a site's passes, comparisons, claims and assessment into
a :class:`ReportData` and renders it; renderers only read that model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitewatch.report.builder import assemble_report_data, build_report_data
from sitewatch.report.model import ReportData
from sitewatch.report.render import check_output_path, html_to_pdf, render_html, report_json, save_report

if TYPE_CHECKING:
    from sitewatch.store import Store
    from sitewatch.store.span import PassSpan

__all__ = [
    "ReportData",
    "assemble_report_data",
    "build_report_data",
    "html_to_pdf",
    "render_html",
    "report_json",
    "save_report",
    "write_report",
]


def write_report(
    store: Store,
    site_name: str | Any,
    out_path: Path,
    *,
    span: PassSpan | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the report of a site to ``out_path`` (.html, .pdf or .json) and ``report.json`` beside it.

    Args:
        store: an open :class:`sitewatch.store.Store` (read only).
        site_name: site name or alias, or a Site object (e.g. one the watchlist does not hold).
        out_path: target file; its extension picks the format. The JSON twin is
            ``out_path.with_suffix(".json")``.
        span: only the passes of this span (``--from`` / ``--to``; default all).
        overwrite: replace existing files (the report and its twin); refused otherwise.

    Returns:
        ``out_path``.

    Raises:
        ReportError: unsupported extension or unwritable path (checked before any work).
        SiteError: unknown site.
    """
    out_path = Path(out_path)
    check_output_path(out_path, overwrite=overwrite)
    data = build_report_data(store, site_name, span)
    return save_report(data, out_path, overwrite=overwrite)
