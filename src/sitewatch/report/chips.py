"""Annotated image chips: a crop of a pass scene with oriented boxes, a scale bar and a north arrow.

Boxes are coloured by change status (:data:`STATUS_COLOURS`) and labelled with the category or
identified type. The scale bar is drawn only when the GSD is known; the north arrow points where
the scene's transform and CRS say north is, and a pixel-space scene says "north unknown".
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rasterio.windows import Window

from sitewatch.imagery.base import Scene
from sitewatch.imagery.georef import Georef
from sitewatch.types import OrientedBox

#: Box colour per change status (RGB). Saturated so they stand out on imagery and can be found in pixels.
STATUS_COLOURS: dict[str, tuple[int, int, int]] = {
    "arrived": (0, 220, 60),
    "departed": (255, 30, 30),
    "remained": (255, 200, 0),
    "moved": (0, 150, 255),
    "observed": (255, 0, 255),
}


def hex_colour(status: str) -> str:
    """The ``#rrggbb`` colour of a status (for legends in HTML)."""
    r, g, b = STATUS_COLOURS[status]
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True, slots=True)
class ChipBox:
    """One box to draw: in scene pixels, with its status and a short label."""

    box: OrientedBox
    status: str
    label: str


def chip_window(boxes: Sequence[OrientedBox], *, pad_px: float = 40.0, min_size_px: float = 96.0) -> Window:
    """A square pixel window around boxes, padded by ``pad_px`` pixels and at least ``min_size_px`` wide."""
    env = np.array([b.envelope() for b in boxes])
    x0, y0 = env[:, 0].min() - pad_px, env[:, 1].min() - pad_px
    x1, y1 = env[:, 2].max() + pad_px, env[:, 3].max() + pad_px
    side = max(x1 - x0, y1 - y0, min_size_px)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return Window(
        int(math.floor(cx - side / 2)),
        int(math.floor(cy - side / 2)),
        int(math.ceil(side)),
        int(math.ceil(side)),
    )


def _north_deg(scene: Scene, col: float, row: float) -> float | None:
    """Direction of true north at a scene pixel, degrees clockwise from image-up, or None in pixel space."""
    if not scene.georeferenced:
        return None
    angle = Georef.of(scene).true_north_deg(col, row)
    return angle if math.isfinite(angle) else None


def nice_length_m(max_m: float) -> float:
    """The largest 1-2-5 x 10^k length not above ``max_m`` metres."""
    if max_m <= 0:
        return 0.0
    k = 10 ** math.floor(math.log10(max_m))
    return max(m * k for m in (1, 2, 5) if m * k <= max_m)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    colour: tuple[int, int, int],
    font,
    *,
    keep_clear: tuple[float, float, float, float] | None = None,
    other_y: float | None = None,
) -> str:
    """Draw ``text`` on a black band at ``xy``, moved left so that it ends inside the chip, and
    shortened with an ellipsis where it is wider than the chip; returns the text drawn.

    Where the band would cover ``keep_clear`` (x0, y0, x1, y1: the north arrow) it goes to
    ``other_y`` instead (below the box)."""
    width = draw.im.size[0]
    while True:
        left, _, right, _ = draw.textbbox((0, 0), text, font=font)
        if right - left + 8 <= width or len(text) <= 2:
            break
        text = text.rstrip("…")[:-1].rstrip() + "…"
    x = max(2.0, min(xy[0], width - (right - left) - 4.0))
    y = xy[1]
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    if keep_clear is not None and other_y is not None:
        x0, y0, x1, y1 = keep_clear
        if left - 2 < x1 and right + 2 > x0 and top - 1 < y1 and bottom + 1 > y0:
            y = other_y
            left, top, right, bottom = draw.textbbox((x, y), text, font=font)
            y -= max(0.0, bottom + 3.0 - draw.im.size[1])  # below the box, but inside the chip
            left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=(0, 0, 0))
    draw.text((x, y), text, fill=colour, font=font)
    return text


def _scale_bar(draw: ImageDraw.ImageDraw, size: int, m_per_px: float, font) -> None:
    length_m = nice_length_m(size * 0.3 * m_per_px)
    if length_m <= 0:
        return
    px = length_m / m_per_px
    x0, y0 = 10, size - 16
    draw.rectangle((x0 - 4, y0 - 16, x0 + px + 4, y0 + 8), fill=(0, 0, 0))
    draw.rectangle((x0, y0, x0 + px, y0 + 4), fill=(255, 255, 255))
    text = f"{length_m:g} m" if length_m < 1000 else f"{length_m / 1000:g} km"
    draw.text((x0, y0 - 15), text, fill=(255, 255, 255), font=font)


def _north_arrow_disc(size: int) -> tuple[float, float, float]:
    """Centre and radius of the north arrow's disc in a chip of ``size`` pixels."""
    return size - 24.0, 30.0, 16.0


def _north_arrow(draw: ImageDraw.ImageDraw, size: int, angle_deg: float | None, font) -> None:
    cx, cy, r = _north_arrow_disc(size)
    draw.ellipse((cx - r - 4, cy - r - 4, cx + r + 4, cy + r + 4), fill=(0, 0, 0))
    if angle_deg is None:
        draw.text((cx, cy), "N?", fill=(255, 255, 255), font=font, anchor="mm")
        return
    t = math.radians(angle_deg)
    ux, uy = math.sin(t), -math.cos(t)
    tip = (cx + ux * r, cy + uy * r)
    tail = (cx - ux * r * 0.6, cy - uy * r * 0.6)
    px, py = -uy * 5, ux * 5
    draw.polygon([tip, (tail[0] + px, tail[1] + py), (tail[0] - px, tail[1] - py)], fill=(255, 255, 255))
    draw.text((cx - ux * r * 0.2, cy - uy * r * 0.2), "N", fill=(0, 0, 0), font=font, anchor="mm")


def render_chip(
    scene: Scene,
    window: Window,
    boxes: Sequence[ChipBox],
    *,
    size_px: int = 360,
) -> bytes:
    """Read ``window`` of ``scene`` and draw the annotated chip.

    Args:
        scene: the pass scene (boxes are in its pixel frame).
        window: pixel window of the scene to show (parts outside the scene show black).
        boxes: boxes to draw, in scene pixels.
        size_px: output width and height in pixels (the window is resampled to it).

    Returns:
        PNG bytes of a ``size_px`` x ``size_px`` RGB image.

    Raises:
        SceneError: the scene pixels cannot be read.
    """
    rgb, _valid = scene.read_rgb(window, out_shape=(size_px, size_px))
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    draw = ImageDraw.Draw(img)
    font = _font(12)
    zoom = size_px / float(window.width)
    line = max(2, round(size_px / 160))
    cx, cy, r = _north_arrow_disc(size_px)
    arrow = (cx - r - 4, cy - r - 4, cx + r + 4, cy + r + 4)
    for cb in boxes:
        b = cb.box.translated(-float(window.col_off), -float(window.row_off)).scaled(zoom)
        pts = [tuple(p) for p in b.corners()]
        colour = STATUS_COLOURS[cb.status]
        draw.line(pts + [pts[0]], fill=colour, width=line)
        top = min(pts, key=lambda p: p[1])
        below = max(p[1] for p in pts) + 3
        at = (top[0] + 3, max(top[1] - 16, 0))
        _label(draw, at, cb.label, colour, font, keep_clear=arrow, other_y=below)
    if scene.gsd_m:
        _scale_bar(draw, size_px, scene.gsd_m / zoom, font)
    centre = (float(window.col_off) + window.width / 2.0, float(window.row_off) + window.height / 2.0)
    angle = _north_deg(scene, *centre)
    _north_arrow(draw, size_px, angle, font)
    if angle is None:
        _label(draw, (8, 6), "north unknown", (255, 255, 255), font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
