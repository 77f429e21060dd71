"""Reading text reports from files and URLs (plain text or HTML) for claim extraction."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from sitewatch.errors import ClaimsError

log = logging.getLogger(__name__)
_SKIP_TAGS = {"script", "style", "noscript", "nav", "footer", "header", "aside", "svg", "form"}
_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "article",
    "section",
    "tr",
    "blockquote",
}


@dataclass(frozen=True, slots=True)
class Report:
    """A fetched report: its text, where it came from and its title (if any)."""

    text: str
    location: str
    url: str | None = None
    title: str | None = None


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: str | None = None
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        elif tag == "title":
            self._in_title = False
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data.strip()
        elif not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of an HTML page (scripts, navigation and styles dropped) and its title."""
    p = _TextOfHtml()
    p.feed(html)
    p.close()
    lines = (" ".join(line.split()) for line in "".join(p.parts).splitlines())
    return "\n".join(line for line in lines if line), p.title


def _decode(data: bytes, charset: str | None, where: str) -> str:
    try:
        return data.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as e:
        raise ClaimsError(
            f"{where}: cannot decode text as {charset or 'UTF-8'} ({e.reason if hasattr(e, 'reason') else e})"
        ) from e


def fetch_url(url: str, *, timeout_s: float = 20.0) -> Report:
    """Download a report over HTTP(S) with urllib.

    Raises:
        ClaimsError: unreachable, HTTP error, or undecodable content.
    """
    req = urllib.request.Request(url, headers={"User-Agent": "sitewatch (+https://github.com/sitewatch)"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - http(s) only, checked by caller
            data = resp.read()
            ctype = resp.headers.get_content_type()
            charset = resp.headers.get_content_charset()
    except urllib.error.HTTPError as e:
        raise ClaimsError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ClaimsError(f"{url}: cannot fetch ({reason})") from e
    text = _decode(data, charset, url)
    title = None
    if ctype in ("text/html", "application/xhtml+xml") or text.lstrip()[:15].lower().startswith(
        ("<!doctype html", "<html")
    ):
        text, title = html_to_text(text)
    log.info("fetched %s: %d characters", url, len(text))
    return Report(text, url, url, title)


def read_report(location: str | Path) -> Report:
    """Read a report from a local file (text or HTML) or an ``http(s)://`` URL.

    Raises:
        ClaimsError: missing/unreadable file, unreachable URL, undecodable text.
    """
    loc = str(location)
    if loc.startswith(("http://", "https://")):
        return fetch_url(loc)
    path = Path(loc)
    if not path.exists():
        raise ClaimsError(f"{path}: no such file")
    if path.is_dir():
        raise ClaimsError(f"{path}: is a folder, not a text file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ClaimsError(f"{path}: cannot read ({e.strerror})") from e
    text = _decode(data, "utf-8", str(path))
    title = None
    if path.suffix.lower() in (".html", ".htm"):
        text, title = html_to_text(text)
    return Report(text, str(path), None, title)
