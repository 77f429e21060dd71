"""Render :class:`~sitewatch.report.model.ReportData` as HTML, PDF (WeasyPrint, A4) or JSON.

Renderers only read the report model. Output is written to a temporary file beside the target
and moved into place (:func:`sitewatch.output.atomic_output`), so a failed render never leaves a
half-written report; an existing report is replaced only with ``overwrite``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import jinja2

from sitewatch.errors import ReportError
from sitewatch.output import atomic_output, check_output
from sitewatch.report.chips import STATUS_COLOURS, hex_colour
from sitewatch.report.model import ReportData

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sitewatch.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document (images embedded as data URIs)."""
    css = resources.files("sitewatch.report").joinpath("templates", STYLESHEET).read_text(encoding="utf-8")
    colours = {s: hex_colour(s) for s in STATUS_COLOURS}
    return _env().get_template(TEMPLATE).render(r=data, css=css, colours=colours)


def html_to_pdf(html: str) -> bytes:
    """Lay out report HTML on A4 pages with WeasyPrint (print CSS, page numbers)."""
    import weasyprint

    # WeasyPrint logs every unsupported CSS property at WARNING; the report CSS is screen+print.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return weasyprint.HTML(string=html, base_url=None).write_pdf(presentational_hints=True)


def report_json(data: ReportData) -> str:
    """The machine-readable twin (facts and evidence, no pixels)."""
    return json.dumps(data.to_json_dict(), indent=2, ensure_ascii=False)


def _atomic_write(path: Path, write: Callable[[Path], object], *, overwrite: bool) -> None:
    with atomic_output(path, overwrite=overwrite, what="report") as tmp:
        write(tmp)


#: Output formats by file extension.
FORMATS: dict[str, str] = {".html": "html", ".htm": "html", ".pdf": "pdf", ".json": "json"}


def check_output_path(out_path: Path, *, overwrite: bool = True) -> str:
    """The format of ``out_path`` after checking it (and its JSON twin) can be written.

    Args:
        out_path: the report file.
        overwrite: allow replacing existing files; when False an existing report or twin is refused.

    Raises:
        ReportError: unsupported extension, missing or unwritable folder, the path (or its twin)
            exists and is not a regular file, or exists and ``overwrite`` is False.
    """
    fmt = FORMATS.get(out_path.suffix.lower())
    if fmt is None:
        raise ReportError(
            f"{out_path}: unsupported report format {out_path.suffix or '(none)'!r}; use .html, .pdf or .json"
        )
    parent = out_path.parent
    if not parent.is_dir():
        raise ReportError(f"{out_path}: folder {parent} does not exist")
    if out_path.is_dir():
        raise ReportError(f"{out_path}: is a folder, not a file")
    if not os.access(parent, os.W_OK):
        raise ReportError(f"{out_path}: not writable")
    for target in {out_path, out_path.with_suffix(".json")}:
        check_output(target, overwrite=overwrite, what="report")
    return fmt


def save_report(data: ReportData, out_path: Path, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``out_path`` (.html, .pdf or .json) and its JSON twin beside it.

    Each file is written beside its target and renamed into place. Existing files are replaced
    only with ``overwrite``.

    Returns:
        ``out_path``.

    Raises:
        ReportError: the format is unsupported or the file cannot be written.
    """
    out_path = Path(out_path)
    fmt = check_output_path(out_path, overwrite=overwrite)
    twin = out_path.with_suffix(".json")
    if fmt == "html":
        html = render_html(data)
        _atomic_write(out_path, lambda p: p.write_text(html, encoding="utf-8"), overwrite=overwrite)
    elif fmt == "pdf":
        pdf = html_to_pdf(render_html(data))
        _atomic_write(out_path, lambda p: p.write_bytes(pdf), overwrite=overwrite)
    text = report_json(data)
    _atomic_write(twin, lambda p: p.write_text(text, encoding="utf-8"), overwrite=overwrite)
    log.info("report written to %s (JSON twin %s)", out_path, twin)
    return out_path
