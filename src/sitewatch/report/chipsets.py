"""Which chips a report shows: before/after crops around the changes of each comparison, or around
the detections of a single pass, drawn by :mod:`sitewatch.report.chips` from the re-read pass scenes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rasterio.windows import Window

from sitewatch.errors import SitewatchError
from sitewatch.identify.hierarchy import label_detection
from sitewatch.imagery.base import Scene
from sitewatch.report import chips
from sitewatch.report.model import ChipImage, ChipPair, ComparisonSummary, PassSummary, png_base64
from sitewatch.types import Detection, Pass

if TYPE_CHECKING:
    from sitewatch.compare import Comparison, ObjectChange

SceneOpener = Callable[[str], Scene]


def _shift_ab(comp_summary: ComparisonSummary, objects: Sequence[ObjectChange]) -> tuple[float, float]:
    """Pixel offset (dx, dy) that takes a point in scene A to the same ground in scene B.

    Taken from the matched objects (median of their centre offsets) when there are any, so it does
    not depend on the sign convention of the registration; otherwise from the registration.
    """
    import numpy as np

    offs = [
        (o.det_b.box.cx - o.det_a.box.cx, o.det_b.box.cy - o.det_a.box.cy)
        for o in objects
        if o.det_a is not None and o.det_b is not None
    ]
    if offs:
        arr = np.array(offs)
        return float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))
    reg = comp_summary.registration
    return float(reg.get("shift_x_px") or 0.0), float(reg.get("shift_y_px") or 0.0)


def _label(d: Detection) -> str:
    label = label_detection(d)
    return label.text if label.identified else d.category


def _clusters(items: Sequence[tuple[Detection, Any]], radius_px: float) -> list[list[tuple[Detection, Any]]]:
    """Greedy grouping of (focus detection, payload) whose centres lie within ``radius_px`` of a group
    seed."""
    groups: list[list[tuple[Detection, Any]]] = []
    for it in items:
        d = it[0]
        for g in groups:
            s = g[0][0]
            if abs(s.box.cx - d.box.cx) <= radius_px and abs(s.box.cy - d.box.cy) <= radius_px:
                g.append(it)
                break
        else:
            groups.append([it])
    return groups


class SceneCache:
    """Opens pass scenes once each; a scene that cannot be opened is noted, not fatal."""

    def __init__(self, opener: SceneOpener | None) -> None:
        self.opener = opener
        self.cache: dict[str, Scene | None] = {}
        self.problems: list[str] = []

    def get(self, path: str) -> Scene | None:
        if self.opener is None:
            return None
        if path not in self.cache:
            try:
                self.cache[path] = self.opener(path)
            except (SitewatchError, OSError) as e:
                self.problems.append(f"{path}: scene could not be re-read for chips ({e})")
                self.cache[path] = None
        return self.cache[path]

    def close(self) -> None:
        for s in self.cache.values():
            if s is not None:
                s.close()


def _chip_image(
    scene: Scene, window, boxes: list[chips.ChipBox], p: PassSummary, ids: list[int]
) -> ChipImage:  # noqa: ANN001
    png = chips.render_chip(scene, window, boxes)
    return ChipImage(
        pass_id=p.id,
        pass_label=p.label,
        date=p.date,
        png_b64=png_base64(png),
        detection_ids=ids,
        colours={s: chips.hex_colour(s) for s in sorted({b.status for b in boxes})},
    )


def _in_window(box, window) -> bool:  # noqa: ANN001
    return (
        window.col_off <= box.cx <= window.col_off + window.width
        and window.row_off <= box.cy <= window.row_off + window.height
    )


def comparison_chips(
    comp: Comparison,
    summary: ComparisonSummary,
    pa: PassSummary,
    pb: PassSummary,
    scenes: SceneCache,
    limit: int,
) -> list[ChipPair]:
    """Before/after chips around the changed objects of one comparison (changes first, then remained)."""
    objects = comp.objects
    sa, sb = scenes.get(pa.scene_path), scenes.get(pb.scene_path)
    if sa is None or sb is None or not objects:
        return []
    dx, dy = _shift_ab(summary, objects)
    scale = (pa.gsd_m / pb.gsd_m) if pa.gsd_m and pb.gsd_m else 1.0
    # Every object placed in A's pixel frame (arrivals mapped back from B).
    placed: list[tuple[Detection, ObjectChange]] = []
    for o in objects:
        da, db = o.det_a, o.det_b
        if da is not None:
            placed.append((da, o))
        elif db is not None:
            placed.append((Detection(db.box.translated(-dx, -dy), db.category, db.score), o))
    order = {"arrived": 0, "departed": 0, "moved": 1, "remained": 2}
    placed.sort(key=lambda it: order.get(it[1].status, 3))
    out: list[ChipPair] = []
    for group in _clusters(placed, radius_px=150.0)[:limit]:
        win_a = chips.chip_window([d.box for d, _ in group])
        win_b = Window(
            int(win_a.col_off + dx),
            int(win_a.row_off + dy),
            max(1, int(win_a.width * scale)),
            max(1, int(win_a.height * scale)),
        )
        boxes_a, boxes_b, ids_a, ids_b = [], [], [], []
        statuses: Counter[str] = Counter()
        for o in objects:
            status, da, db = o.status, o.det_a, o.det_b
            if da is not None and _in_window(da.box, win_a) and status != "arrived":
                boxes_a.append(chips.ChipBox(da.box, status, _label(da)))
                ids_a += [da.id] if da.id is not None else []
                statuses[status] += 1
            if db is not None and _in_window(db.box, win_b) and status != "departed":
                boxes_b.append(chips.ChipBox(db.box, status, _label(db)))
                ids_b += [db.id] if db.id is not None else []
                statuses[status] += 0 if da is not None and _in_window(da.box, win_a) else 1
        desc = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        out.append(
            ChipPair(
                title=f"{summary.label}: {pa.label} {pa.date} → {pb.label} {pb.date}",
                caption=desc,
                statuses=dict(statuses),
                before=_chip_image(sa, win_a, boxes_a, pa, ids_a),
                after=_chip_image(sb, win_b, boxes_b, pb, ids_b),
            )
        )
    return out


def single_pass_chips(p: Pass, summary: PassSummary, scenes: SceneCache, limit: int) -> list[ChipPair]:
    """Chips around the detections of one pass (status ``observed``), largest groups first."""
    scene = scenes.get(p.scene_path)
    if scene is None or not p.detections:
        return []
    groups = sorted(_clusters([(d, None) for d in p.detections], radius_px=150.0), key=len, reverse=True)[
        :limit
    ]
    out = []
    for g in groups:
        win = chips.chip_window([d.box for d, _ in g])
        inside = [d for d in p.detections if _in_window(d.box, win)]
        boxes = [chips.ChipBox(d.box, "observed", _label(d)) for d in inside]
        ids = [d.id for d in inside if d.id is not None]
        cats = Counter(d.category for d in inside)
        out.append(
            ChipPair(
                title=f"{summary.label} {summary.date}",
                caption=", ".join(f"{n} {c}" for c, n in sorted(cats.items())),
                statuses={"observed": len(inside)},
                after=_chip_image(scene, win, boxes, summary, ids),
            )
        )
    return out


def overview_chips(
    passes: Sequence[Pass], summaries: Sequence[PassSummary], scenes: SceneCache
) -> list[ChipPair]:
    """Whole-scene views of the last two passes (or the only one), for reports with nothing to box."""
    shown = [(p, s, scenes.get(p.scene_path)) for p, s in zip(passes[-2:], summaries[-2:], strict=True)]
    images = [
        _chip_image(
            scene, Window(0, 0, max(scene.width, scene.height), max(scene.width, scene.height)), [], s, []
        )
        for _, s, scene in shown
        if scene is not None
    ]
    if not images:
        return []
    return [
        ChipPair(
            title="Overview: " + " → ".join(f"{i.pass_label} {i.date}" for i in images),
            caption="Whole scenes; no detections to annotate.",
            before=images[0] if len(images) == 2 else None,
            after=images[-1],
        )
    ]
