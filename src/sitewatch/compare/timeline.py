"""A site's history pass by pass: counts per category and the changes since the previous pass."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sitewatch.compare.comparison import compare_passes
from sitewatch.compare.settings import CompareSettings
from sitewatch.errors import CompareError
from sitewatch.types import Pass

log = logging.getLogger(__name__)


def timeline(
    passes: Sequence[Pass],
    site: Any = None,
    *,
    settings: CompareSettings | None = None,
    read_pixels: bool = False,
) -> list[dict[str, Any]]:
    """One entry per pass (oldest first): counts, and changes since the previous pass.

    Consecutive passes are compared on their detections (``read_pixels=False`` by default: fast,
    registration from the georeference); a pair that cannot be compared gets its reason in
    ``"not_compared"`` instead of change numbers.

    Returns:
        ``[{"pass_id", "acquired", "scene", "counts", "changes" | None, "sentence" | None,
        "not_compared" | None}, ...]``.
    """
    ordered = sorted(passes, key=lambda p: (p.acquired is None, p.acquired or 0, p.id or 0))
    out: list[dict[str, Any]] = []
    for prev, cur in zip([None, *ordered[:-1]], ordered, strict=True):
        entry: dict[str, Any] = {
            "pass_id": cur.id,
            "acquired": cur.acquired.isoformat() if cur.acquired else None,
            "scene": cur.scene_path,
            "counts": {k: v for k, v in cur.counts().items() if v},
            "changes": None,
            "sentence": None,
            "not_compared": None,
        }
        if prev is not None:
            try:
                c = compare_passes(prev, cur, site, settings=settings, read_pixels=read_pixels)
            except CompareError as e:
                entry["not_compared"] = str(e)
            else:
                entry["changes"] = {
                    cat: {k: v[k] for k in ("arrived", "departed", "moved", "remained")}
                    for cat, v in c.counts.items()
                    if v["a"] or v["b"]
                }
                entry["sentence"] = c.sentence
        out.append(entry)
    return out
