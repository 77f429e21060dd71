"""Copy-paste augmentation: real chips of rare objects pasted at the right scale onto real ground.

Helicopters are rare in the labelled data (24 in all), so training crops of real airfields and
aprons (airbus-pleiades and hrplanes training images, the empty aprons of
``airbases/empty-aprons``) get real helicopter chips cut from the training images pasted in:

* **scale**: a chip of known GSD keeps its size in metres; a chip without one (Google Earth
  screenshots) is given a long side drawn from :data:`UNKNOWN_GSD_CHIP_M`. The background's metres
  per pixel come from its GSD (the empty aprons' ``sizes.csv``: ground width / pixel width), or,
  for screenshots without one, from its labelled aircraft (median length = :data:`TYPICAL_AIRCRAFT_M`);
* **pose**: any heading for chips with oriented labels, 90° steps for axis-aligned ones (their
  label is exact only then), mirrored at random;
* **blending**: the label box grown by :data:`MASK_GROW`, feathered, alpha-blended; never onto
  the zero padding of a crop, never over another object;
* **label**: the chip's label box through the same similarity transform (exactly the pasted box).

The backgrounds also serve as hard negatives: apron markings, vehicles, shelters and roofs around
the pasted helicopters are trained as "not a helicopter".
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sitewatch.types import CATEGORIES

log = logging.getLogger(__name__)

#: Long side (metres) given to a chip whose source GSD is unknown (helicopter label boxes: 13–24 m).
UNKNOWN_GSD_CHIP_M = (13.0, 24.0)
#: Length (metres) of the median aircraft, to estimate a screenshot's GSD from its labels.
TYPICAL_AIRCRAFT_M = 35.0
#: The pasted region is the label box grown by this factor (a little ground around the object).
MASK_GROW = 1.15
#: Pasted objects smaller or larger than these (long side, crop pixels) are not pasted.
MIN_PASTED_PX, MAX_PASTED_FRACTION = 6.0, 0.5
#: Datasets whose training images serve as backgrounds, besides the empty aprons.
BACKGROUND_DATASETS = ("airbus-pleiades", "hrplanes")


@dataclass(slots=True)
class Chip:
    """A labelled object cut from an image: pixels around it and its box in the chip's frame.

    ``box``: float32 ``(cx, cy, length, width, heading_deg)``; ``gsd_m``: metres per chip pixel or
    None; ``oriented``: the label gives the true heading (else it is an axis-aligned box).
    """

    rgb: np.ndarray
    box: np.ndarray
    category: int
    gsd_m: float | None
    oriented: bool
    source: str


@dataclass(slots=True)
class Background:
    """An image to paste onto (a cached training image or an empty apron) and its metres per pixel."""

    image: object  # CachedImage
    gsd_m: float


def extract_chips(
    images: list, categories: tuple[str, ...] = ("helicopter",), margin: float = 1.4
) -> list[Chip]:
    """Chips of every non-difficult object of ``categories`` that lies whole inside its image."""
    from sitewatch.detect.train.data import envelope_dims

    wanted = [CATEGORIES.index(c) for c in categories]
    chips: list[Chip] = []
    for im in images:
        h, w = im.rgb.shape[:2]
        for k in np.flatnonzero(np.isin(im.cats, wanted) & ~im.difficult):
            cx, cy, length, width, heading = (float(v) for v in im.boxes[k])
            ex, ey = envelope_dims(np.array(length), np.array(width), np.array(heading))
            half = 0.5 * margin * max(float(ex), float(ey)) + 2
            x0, y0, x1, y1 = (
                math.floor(cx - half),
                math.floor(cy - half),
                math.ceil(cx + half),
                math.ceil(cy + half),
            )
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                continue
            box = np.array([cx - x0, cy - y0, length, width, heading], np.float32)
            chips.append(
                Chip(
                    im.rgb[y0:y1, x0:x1].copy(),
                    box,
                    int(im.cats[k]),
                    im.gsd_m,
                    not im.axis_aligned,
                    f"{im.dataset}/{im.name}",
                )
            )
    return chips


def estimated_gsd(image) -> float | None:  # noqa: ANN001 - CachedImage
    """Metres per pixel of a cached image: its own, else from its labelled aircraft, else None."""
    if image.gsd_m:
        return float(image.gsd_m)
    aircraft = image.boxes[(image.cats == CATEGORIES.index("aircraft")) & ~image.difficult]
    if len(aircraft) < 2:
        return None
    return TYPICAL_AIRCRAFT_M / float(np.median(aircraft[:, 2]))


def load_empty_aprons(data_root: Path) -> list:
    """The empty-apron crops as cached images without objects, labelled for helicopters only
    (they are not verified free of aircraft, so the aircraft channel gets no loss there). They
    count as axis-aligned: chips of axis-aligned labels pasted there supervise only the envelope."""
    from sitewatch.detect.train.data import CachedImage

    folder = Path(data_root) / "airbases" / "empty-aprons"
    sizes = folder / "sizes.csv"
    if not sizes.is_file():
        return []
    out = []
    channels = np.array([c == "helicopter" for c in CATEGORIES], dtype=bool)
    with sizes.open(newline="") as f:
        for row in csv.DictReader(f):
            path = folder / row["name"]
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                log.warning("%s: cannot decode image, skipped", path)
                continue
            try:
                gsd = float(row["width_m"]) / bgr.shape[1]
            except (TypeError, ValueError):
                continue
            empty = np.zeros((0, 5), np.float32)
            out.append(
                CachedImage(
                    path.stem,
                    "empty-aprons",
                    cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                    empty,
                    np.zeros(0, np.int64),
                    np.zeros(0, bool),
                    True,
                    True,
                    channels,
                    1.0,
                    np.zeros(0, int),
                    gsd,
                )
            )
    return out


def backgrounds_for(images: list, aprons: list) -> list[Background]:
    """Backgrounds: training images of :data:`BACKGROUND_DATASETS` with a known or estimated GSD, and the
    aprons."""
    out = []
    for im in [*(i for i in images if i.dataset in BACKGROUND_DATASETS), *aprons]:
        gsd = estimated_gsd(im)
        if gsd:
            out.append(Background(im, gsd))
    return out


def paste_chips(
    img: np.ndarray,
    boxes: np.ndarray,
    cats: np.ndarray,
    difficult: np.ndarray,
    chips: list[Chip],
    rng: np.random.Generator,
    crop_gsd_m: float,
    count: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Paste ``count`` random chips into a crop.

    Args:
        img: float32 ``[S, S, 3]`` crop, 0..255 (zero where it is padding).
        boxes, cats, difficult: the crop's objects (``[K, 5]`` boxes in crop pixels).
        chips: the chip bank.
        rng: random generator of this sample.
        crop_gsd_m: metres per crop pixel.
        count: chips to try to paste.

    Returns:
        The crop and its objects with the pasted ones appended.
    """
    from sitewatch.detect.train.data import envelope_dims, transform_boxes

    s = img.shape[0]
    out = img.copy()
    new_boxes, new_cats = [], []
    occupied = [(float(b[0]), float(b[1]), 0.5 * float(max(b[2], b[3]))) for b in boxes]
    valid = out.max(axis=2) > 0
    for _ in range(count):
        chip = chips[int(rng.integers(len(chips)))]
        length = float(chip.box[2])
        if chip.gsd_m:
            f = chip.gsd_m / crop_gsd_m
        else:
            f = rng.uniform(*UNKNOWN_GSD_CHIP_M) / crop_gsd_m / max(length, 1.0)
        if not (MIN_PASTED_PX <= length * f <= MAX_PASTED_FRACTION * s):
            continue
        angle = float(rng.uniform(0.0, 360.0)) if chip.oriented else float(rng.integers(4) * 90.0)
        flip = bool(rng.random() < 0.5)
        radius = 0.5 * MASK_GROW * f * math.hypot(length, float(chip.box[3]))
        placed = None
        for _try in range(8):
            px, py = rng.uniform(radius, s - radius, 2) if s > 2 * radius else (s / 2, s / 2)
            if (
                all(math.hypot(px - ox, py - oy) > radius + orad for ox, oy, orad in occupied)
                and valid[int(py), int(px)]
            ):
                placed = (float(px), float(py))
                break
        if placed is None:
            continue
        a = math.radians(angle)
        lin = f * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        if flip:
            lin = lin @ np.array([[-1.0, 0.0], [0.0, 1.0]])
        m = np.zeros((2, 3))
        m[:, :2] = lin
        m[:, 2] = np.array(placed) - lin @ chip.box[:2].astype(float)
        warped = cv2.warpAffine(
            chip.rgb, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        ).astype(np.float32)
        # The label box grown a little, in the chip's frame, warped like the chip and feathered.
        grown = chip.box.copy()
        grown[2:4] = np.maximum(grown[2:4] * MASK_GROW, grown[2:4] + 2.0)
        mask_chip = np.zeros(chip.rgb.shape[:2], np.float32)
        cv2.fillPoly(mask_chip, [np.round(_corners(grown)).astype(np.int32)], 1.0)
        mask = cv2.warpAffine(mask_chip, m, (s, s), flags=cv2.INTER_LINEAR)
        feather = max(0.8, 0.08 * float(chip.box[3]) * f)
        mask = cv2.GaussianBlur(mask, (0, 0), feather) * valid
        out = out * (1.0 - mask[..., None]) + warped * mask[..., None]
        pasted = transform_boxes(chip.box[None], m)[0]
        new_boxes.append(pasted)
        new_cats.append(chip.category)
        ex, ey = envelope_dims(np.array(pasted[2]), np.array(pasted[3]), np.array(pasted[4]))
        occupied.append((placed[0], placed[1], 0.5 * max(float(ex), float(ey))))
    if not new_boxes:
        return out, boxes, cats, difficult
    return (
        out.astype(np.float32),
        np.concatenate([boxes, np.array(new_boxes, np.float32)]),
        np.concatenate([cats, np.array(new_cats, dtype=cats.dtype)]),
        np.concatenate([difficult, np.zeros(len(new_boxes), bool)]),
    )


def _corners(box: np.ndarray) -> np.ndarray:
    cx, cy, length, width, heading = (float(v) for v in box)
    t = math.radians(heading)
    u = np.array([math.sin(t), -math.cos(t)]) * length / 2
    v = np.array([math.cos(t), math.sin(t)]) * width / 2
    c = np.array([cx, cy])
    return np.stack([c + u + v, c + u - v, c - u - v, c - u + v])
