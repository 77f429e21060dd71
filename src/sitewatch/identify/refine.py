"""Refine a detector's oriented box on the image chip before measuring it.

The detector's box is loose for aircraft (thin wingtips, probes and tail planes left out or padded
in; docs/identify.md "Detector boxes"). :func:`refine_box` reads a chip around the box, segments
the object's silhouette against the local background and fits the oriented extent of the
silhouette:

1. **Background**: the chip is converted to CIE Lab (OpenCV); the background colour is the median
   of a ring of pixels outside the detector box (enlarged by :attr:`RefineSettings.ring_inner`)
   and its spread the MAD of their colour distance to it.
2. **Silhouettes**, one per cue (:attr:`RefineSettings.polarities`): pixels whose Lab distance
   (``"any"``), lightness above (``"light"``) or below (``"dark"``) the background exceeds
   :attr:`RefineSettings.min_contrast` background spreads after a light Gaussian smoothing; and
   OpenCV's GrabCut (``"grabcut"``) seeded with the box as probable object and the outside of the
   enlarged box as background (colour models of both, so white airliners on a light apron and
   grey aircraft with dark shadows both separate). Each is closed (a kernel of a few percent of the
   box), its holes filled (SciPy), and the connected component that holds most of the box's core
   is kept, taken after an opening so that taxi lines and cables do not join it to the background.
3. **Axis**: the principal axis of the silhouette (image moments: a mirror-symmetric object's
   symmetry axis is a principal axis), taken modulo 90 degrees, kept when it lies within
   :attr:`RefineSettings.max_turn_deg` of the detector's axis, else the detector's axis.
4. **Extent**: the silhouette's extent along the axis and across it (pixel centres projected, plus
   one pixel), centred on the extent's midpoint.

A silhouette is implausible when it touches the chip edge, fills too little or too much of its
own box (:attr:`RefineSettings.fill_range`: aircraft fill 25-45 %), or its sides differ from the
detector's by more than :attr:`RefineSettings.size_change` allows. Of the plausible ones the one
whose box overlaps the detector's most is kept (a merged shadow or neighbour moves the box off
it); with none the result is ``None`` and the caller keeps the detector box and its bias
correction.
Frames: boxes in scene pixels (x right, y down), headings in degrees clockwise from image-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from rasterio.windows import Window
from scipy import ndimage
from skimage.filters import threshold_otsu

from sitewatch.geometry import rotated_iou
from sitewatch.imagery.base import Scene
from sitewatch.types import OrientedBox


@dataclass(frozen=True, slots=True)
class RefineSettings:
    """Thresholds of the silhouette refinement (relative to the detector box, so GSD-free).

    Attributes:
        margin: chip margin around the box, as a fraction of its long side (plus 8 pixels).
        ring_inner: background ring starts outside the box scaled by this factor.
        min_contrast: a silhouette pixel differs from the background by at least this many
            background spreads (1.4826 MAD of the ring's colour distance).
        smooth_px: Gaussian sigma (pixels) applied to the distance image before thresholding.
        close_frac: closing kernel size as a fraction of the box's short side (at least 3 pixels).
        core_frac: the component kept is the one with the most pixels inside the box scaled by this.
        fill_range: plausible silhouette area / area of its own fitted box.
        size_change: plausible range of the refined / detector side ratio. Wider upwards: the
            detector's aircraft boxes are short on average (box-fit bias about -5 %) and at one
            site can be 25-30 % short (wingtips and nose left out: the Hamburg airliners of
            allplanes, site bias -13.5 % / -12.7 %), so a silhouette up to 35 % longer (about 2.5
            times the detector model's total relative sigma in width, 13.8 %) is plausible; one
            more than 25 % shorter has lost part of the aircraft (a jet bridge or a shadow across
            it; docs/identify.md).
        max_turn_deg: the silhouette's axis is used when within this of the detector's axis
            (modulo 90 degrees).
        otsu: also require Otsu's threshold (scikit-image) of the chip's contrast.
        open_frac: opening kernel (components) as a fraction of the box's short side.
        grabcut_outer: GrabCut's sure background is outside the box scaled by this.
        grabcut_iter: GrabCut iterations.
        grabcut_px: GrabCut runs with the box's long side resampled to at most this many pixels.
        polarities: the cues tried (:data:`POLARITIES`).
        min_length_px: boxes with a shorter long side are not refined. On the DOTA and FAIR1M
            aircraft (not identification targets) silhouettes of shorter boxes were no better
            than the detector's box (length spread 11 % either way below 100 px; 7 % against
            10 % from 120 px; docs/identify.md).
    """

    margin: float = 0.3
    ring_inner: float = 1.15
    min_contrast: float = 3.0
    smooth_px: float = 1.0
    close_frac: float = 0.04
    core_frac: float = 0.5
    fill_range: tuple[float, float] = (0.15, 0.6)
    size_change: tuple[float, float] = (0.75, 1.35)
    max_turn_deg: float = 15.0
    otsu: bool = False
    open_frac: float = 0.03
    grabcut_outer: float = 1.3
    grabcut_iter: int = 3
    grabcut_px: float = 128.0
    polarities: tuple[str, ...] = ("any", "light", "dark", "grabcut")
    min_length_px: float = 120.0


@dataclass(frozen=True, slots=True)
class Silhouette:
    """A refined box and how it was found.

    Attributes:
        box: the silhouette's oriented box, scene pixels (``length >= width``).
        fill: silhouette area / box area.
        axis_from: ``"silhouette"`` or ``"detector"``: where the box's axis came from.
    """

    box: OrientedBox
    fill: float
    axis_from: str


def chip_window(box: OrientedBox, margin: float) -> Window:
    """The pixel window around ``box`` enlarged by ``margin`` of its long side plus 8 pixels."""
    x0, y0, x1, y1 = box.envelope()
    pad = margin * box.length + 8.0
    c0, r0 = math.floor(x0 - pad), math.floor(y0 - pad)
    return Window(c0, r0, math.ceil(x1 + pad) - c0, math.ceil(y1 + pad) - r0)


def _box_frame(box: OrientedBox, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along the box's length and width axes, pixels from its centre."""
    ux, uy = box.axis
    dx, dy = xs - box.cx, ys - box.cy
    return dx * ux + dy * uy, -dx * uy + dy * ux


def _inside(box: OrientedBox, s: np.ndarray, t: np.ndarray, scale: float) -> np.ndarray:
    return (np.abs(s) <= scale * box.length / 2.0) & (np.abs(t) <= scale * box.width / 2.0)


#: Cues for the object's pixels: any colour difference, lighter only, darker only, GrabCut.
POLARITIES = ("any", "light", "dark", "grabcut")


def _contrast(lab: np.ndarray, ring: np.ndarray, polarity: str, smooth_px: float) -> np.ndarray:
    """Difference from the ring's median colour, in ring spreads (1.4826 MAD), per pixel."""
    bg = np.median(lab[ring], axis=0)
    if polarity == "any":
        d = np.linalg.norm(lab - bg, axis=2)
    else:
        d = lab[..., 0] - bg[0] if polarity == "light" else bg[0] - lab[..., 0]
    if smooth_px > 0:
        d = cv2.GaussianBlur(d, (0, 0), smooth_px)
    med = float(np.median(d[ring]))
    spread = 1.4826 * float(np.median(np.abs(d[ring] - med))) + 1.0
    return (d - med) / spread


def _grabcut(
    rgb: np.ndarray,
    valid: np.ndarray,
    box: OrientedBox,
    s: np.ndarray,
    t: np.ndarray,
    settings: RefineSettings,
) -> np.ndarray:
    """GrabCut (OpenCV) seeded by the box: background outside it scaled by ``grabcut_outer``,
    probably background between, probably object inside."""
    full: np.ndarray = np.full(valid.shape, cv2.GC_PR_BGD, np.uint8)
    full[_inside(box, s, t, 1.0)] = cv2.GC_PR_FGD
    full[~_inside(box, s, t, settings.grabcut_outer) | ~valid] = cv2.GC_BGD
    # GrabCut's cost grows with the pixel count: run it with the box's long side at most
    # ``grabcut_px`` pixels and scale the result back (one working pixel is then ~1 % of the length).
    h, w = valid.shape
    f = min(1.0, settings.grabcut_px / box.length)
    small = (max(8, round(w * f)), max(8, round(h * f)))
    img = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), small, interpolation=cv2.INTER_AREA)
    seed: Any = cv2.resize(full, small, interpolation=cv2.INTER_NEAREST)
    bgd, fgd = np.zeros((1, 65), float), np.zeros((1, 65), float)
    # GrabCut seeds its colour models with k-means on OpenCV's thread RNG: without a fixed seed
    # the same chip gives a different silhouette depending on what ran before.
    cv2.setRNGSeed(0)
    cv2.grabCut(img, seed, None, bgd, fgd, settings.grabcut_iter, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    fg = ((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)).astype(np.uint8)
    return (cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST) > 0) & valid


def segment(
    rgb: np.ndarray, valid: np.ndarray, box: OrientedBox, settings: RefineSettings, polarity: str = "any"
) -> np.ndarray | None:
    """The silhouette mask of the object in ``box`` (chip pixels, box in chip pixels), or None.

    Args:
        polarity: ``"any"`` (colour distance), ``"light"`` or ``"dark"`` (lightness above or below
            the background), or ``"grabcut"``: which cue selects the object's pixels.

    None when the chip has too little valid background to tell the object from it.
    """
    h, w = valid.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(float) + 0.5
    s, t = _box_frame(box, xs, ys)
    ring = valid & ~_inside(box, s, t, settings.ring_inner)
    if ring.sum() < 50:
        return None
    if polarity == "grabcut":
        mask = _grabcut(rgb, valid, box, s, t, settings)
    else:
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(float)
        z = _contrast(lab, ring, polarity, settings.smooth_px)
        thr = settings.min_contrast
        if settings.otsu:
            thr = max(thr, float(threshold_otsu(z[valid])))
        mask = (z > thr) & valid
    k = max(3, int(round(settings.close_frac * box.width)) | 1)
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)) > 0
    mask = ndimage.binary_fill_holes(mask)
    # Thin structures (taxi lines, cables) must not join the object to the background: components
    # are taken after an opening; the kept one regains the one-pixel rim the opening rounds off.
    ko = max(3, int(round(settings.open_frac * box.width)) | 1)
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((ko, ko), np.uint8)) > 0
    labels, n = ndimage.label(opened)
    if n == 0:
        return None
    core = _inside(box, s, t, settings.core_frac)
    counts = np.bincount(labels[core], minlength=n + 1)
    counts[0] = 0
    best = int(np.argmax(counts))
    if counts[best] == 0:
        return None
    near = cv2.dilate((labels == best).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return mask & near


def _principal_heading(mask: np.ndarray) -> float:
    """Heading (degrees clockwise from image-up) of the mask's principal axis (image moments)."""
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    theta = 0.5 * math.atan2(2.0 * m["mu11"], m["mu20"] - m["mu02"])  # angle from +x, y down
    return (math.degrees(theta) + 90.0) % 180.0


def fit_extent(mask: np.ndarray, heading_deg: float) -> tuple[OrientedBox, float]:
    """The box of the mask along ``heading_deg`` (chip pixels) and the mask's fill of it."""
    rows, cols = np.nonzero(mask)
    xs, ys = cols + 0.5, rows + 0.5
    t = math.radians(heading_deg)
    ux, uy = math.sin(t), -math.cos(t)
    s = xs * ux + ys * uy
    q = -xs * uy + ys * ux
    s0, s1, q0, q1 = s.min() - 0.5, s.max() + 0.5, q.min() - 0.5, q.max() + 0.5
    sc, qc = (s0 + s1) / 2.0, (q0 + q1) / 2.0
    cx, cy = sc * ux - qc * uy, sc * uy + qc * ux
    length, width = s1 - s0, q1 - q0
    return OrientedBox.make(cx, cy, length, width, heading_deg), len(xs) / (length * width)


def _turn(a: float, b: float) -> float:
    """Smallest angle between two axes modulo 90 degrees (a rectangle's sides are interchangeable)."""
    return abs((a - b + 45.0) % 90.0 - 45.0)


def _fit(mask: np.ndarray, box: OrientedBox, settings: RefineSettings) -> Silhouette | None:
    """The silhouette's box when plausible for the detector's ``box``, else None."""
    if mask[0, :].any() or mask[-1, :].any() or mask[:, 0].any() or mask[:, -1].any():
        return None  # the silhouette runs out of the chip: background merged with it
    heading, axis_from = box.heading_deg, "detector"
    principal = _principal_heading(mask)
    if _turn(principal, box.heading_deg) <= settings.max_turn_deg:
        # Keep the detector's choice of which axis is the length; turn it onto the silhouette's.
        d = (principal - box.heading_deg + 45.0) % 90.0 - 45.0
        heading, axis_from = box.heading_deg + d, "silhouette"
    fitted, fill = fit_extent(mask, heading)
    lo, hi = settings.fill_range
    if not lo <= fill <= hi:
        return None
    for new, old in ((fitted.length, box.length), (fitted.width, box.width)):
        if not settings.size_change[0] <= new / old <= settings.size_change[1]:
            return None
    return Silhouette(fitted, fill, axis_from)


def refine_chip(
    rgb: np.ndarray, valid: np.ndarray, box: OrientedBox, settings: RefineSettings | None = None
) -> Silhouette | None:
    """Refine ``box`` (chip pixels) on a chip; None when no silhouette is plausible.

    Each cue (:attr:`RefineSettings.polarities`) gives a silhouette; of the plausible ones the one whose box
    overlaps the detector's most (rotated IoU) is kept: a shadow or a neighbour merged into a
    silhouette moves its box off the detector's.
    """
    settings = settings or RefineSettings()
    if box.length < settings.min_length_px:
        return None
    found = []
    for polarity in settings.polarities:
        mask = segment(rgb, valid, box, settings, polarity)
        if mask is not None and (sil := _fit(mask, box, settings)) is not None:
            found.append(sil)
    if not found:
        return None
    iou = rotated_iou([f.box for f in found], [box])[:, 0]
    return found[int(np.argmax(iou))]


def refine_box(scene: Scene, box: OrientedBox, settings: RefineSettings | None = None) -> Silhouette | None:
    """Refine a detector box (scene pixels) on the scene's pixels; None when implausible.

    Raises:
        SceneError: the pixels cannot be read.
    """
    settings = settings or RefineSettings()
    if box.length < settings.min_length_px:
        return None
    win = chip_window(box, settings.margin)
    rgb, valid = scene.read_rgb(win)
    c0, r0 = float(win.col_off), float(win.row_off)
    local = OrientedBox(box.cx - c0, box.cy - r0, box.length, box.width, box.heading_deg)
    found = refine_chip(rgb, valid, local, settings)
    if found is None:
        return None
    b = found.box
    return Silhouette(
        OrientedBox(b.cx + c0, b.cy + r0, b.length, b.width, b.heading_deg), found.fill, found.axis_from
    )
