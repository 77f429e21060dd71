"""One root exception for sitewatch and the hierarchy under it.

Every error a user can cause (a bad file, an unknown site, an unreachable store) is a
:class:`SitewatchError`; the CLI turns it into one line on stderr and a non-zero exit.
Built-in exceptions are mixed in where they fit, so callers may also catch ``OSError`` or
``ValueError``.
"""

from __future__ import annotations


class SitewatchError(Exception):
    """Root of all sitewatch errors."""


class SceneError(SitewatchError, OSError):
    """An image or STAC item cannot be opened or read (missing, corrupt, empty, unsupported)."""


class GeoreferenceError(SitewatchError, ValueError):
    """A scene lacks the georeference or GSD that an operation needs."""


class SiteError(SitewatchError, KeyError):
    """An unknown site, or a site definition that is invalid."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class CoverageError(SitewatchError, ValueError):
    """A scene does not cover (enough of) a site's AOI."""


class StoreError(SitewatchError, OSError):
    """The store is unreachable, read-only, full, or its schema is incompatible."""


class UnknownPassError(StoreError, LookupError):
    """No pass with the given id is stored."""


class ModelError(SitewatchError, OSError):
    """A detector model is missing, corrupt or of an unexpected interface."""


class CompareError(SitewatchError, ValueError):
    """Two passes cannot be compared (no overlap, poor registration, GSDs too different)."""


class ClaimsError(SitewatchError, ValueError):
    """A text report cannot be ingested (empty, not English, unreadable)."""


class SpanError(SitewatchError, ValueError):
    """A ``--from`` / ``--to`` bound that is malformed, names no stored pass, or selects no pass."""


class LibraryError(SitewatchError, ValueError):
    """The reference library (equipment dimensions) is invalid or a type is unknown."""


class ReportError(SitewatchError, OSError):
    """A report or export cannot be written."""


class SitewatchWarning(UserWarning):
    """Root of sitewatch warnings."""


class LowCoverageWarning(SitewatchWarning):
    """A scene covers only part of a site's AOI."""
