"""Render :class:`~sitewatch.report.model.ReportData` as HTML, PDF (WeasyPrint, A4) or JSON.

Renderers only read the report model. Output is written to a temporary file beside the target
and moved into place, so a failed render never leaves a half-written report.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import jinja2

from sitewatch.errors import ReportError
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


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise ReportError(f"{path}: cannot write report ({e.strerror or e})") from None
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise ReportError(f"{path}: cannot write report ({e.strerror or e})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: Output formats by file extension.
FORMATS: dict[str, str] = {".html": "html", ".htm": "html", ".pdf": "pdf", ".json": "json"}


def check_output_path(out_path: Path) -> str:
    """The format of ``out_path`` after checking it can be written.

    Raises:
        ReportError: unsupported extension, missing or unwritable folder, or the path is a folder.
    """
    fmt = FORMATS.get(out_path.suffix.lower())
    if fmt is None:
        raise ReportError(f"{out_path}: unsupported report format {out_path.suffix or '(none)'!r}; use .html, .pdf or .json")
    parent = out_path.parent
    if not parent.is_dir():
        raise ReportError(f"{out_path}: folder {parent} does not exist")
    if out_path.is_dir():
        raise ReportError(f"{out_path}: is a folder, not a file")
    if not os.access(parent, os.W_OK) or (out_path.exists() and not os.access(out_path, os.W_OK)):
        raise ReportError(f"{out_path}: not writable")
    return fmt


def save_report(data: ReportData, out_path: Path) -> Path:
    """Write ``data`` to ``out_path`` (.html, .pdf or .json) and its JSON twin beside it.

    Returns:
        ``out_path``.

    Raises:
        ReportError: the format is unsupported or the file cannot be written.
    """
    out_path = Path(out_path)
    fmt = check_output_path(out_path)
    twin = out_path.with_suffix(".json")
    if fmt == "html":
        html = render_html(data)
        _atomic_write(out_path, lambda p: p.write_text(html, encoding="utf-8"))
    elif fmt == "pdf":
        pdf = html_to_pdf(render_html(data))
        _atomic_write(out_path, lambda p: p.write_bytes(pdf))
    text = report_json(data)
    _atomic_write(twin, lambda p: p.write_text(text, encoding="utf-8"))
    log.info("report written to %s (JSON twin %s)", out_path, twin)
    return out_path
