"""Image chips of what arrived and departed between two passes, written beside an alert's report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sitewatch.errors import SitewatchError
from sitewatch.types import Pass

log = logging.getLogger(__name__)


def change_chips(
    comparison: Any, previous: Pass, new: Pass, folder: Path, limit: int = 6
) -> list[dict[str, Any]]:
    """PNG chips of up to ``limit`` arrived objects (in the new pass) and departed ones (in the previous
    pass).

    Returns:
        ``[{"status", "category", "label", "pass_id", "path"}]``; empty when the scenes cannot be read
        (logged, never raised: chips illustrate an alert, they do not decide it).
    """
    from sitewatch.identify.hierarchy import label_detection
    from sitewatch.imagery import open_scene
    from sitewatch.report.chips import ChipBox, chip_window, render_chip

    out: list[dict[str, Any]] = []
    for status, p, side in (("arrived", new, "det_b"), ("departed", previous, "det_a")):
        dets = [
            getattr(o, side)
            for o in comparison.objects
            if o.status == status and getattr(o, side) is not None
        ][:limit]
        if not dets:
            continue
        try:
            with open_scene(p.scene_path) as scene:
                for i, d in enumerate(dets, 1):
                    label = label_detection(d)
                    text = label.text if label.identified else d.category
                    png = render_chip(
                        scene, chip_window([d.box]), [ChipBox(d.box, status, text)], size_px=256
                    )
                    path = folder / f"pass{new.id}-{status}-{i}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(png)
                    out.append(
                        {
                            "status": status,
                            "category": d.category,
                            "label": text,
                            "pass_id": p.id,
                            "path": str(path),
                        }
                    )
        except (SitewatchError, OSError) as e:
            log.warning("no %s chips for pass %s: %s", status, new.id, e)
    return out
