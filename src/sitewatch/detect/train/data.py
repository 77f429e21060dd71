"""Training data: decoded image cache, balanced sampling, augmentation and CenterNet targets.

Every labelled image is decoded once, resampled to the working GSD when its GSD is known and
finer than :data:`WORKING_GSD_M` (never upsampled), and kept in RAM as uint8 RGB together with
its objects as arrays. A sample is drawn from an integer index with its own random generator, so
a run is reproducible and resumes at any step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sitewatch.dota import LabelledImage, LabelledObject, iter_dataset, load_class_map
from sitewatch.types import CATEGORIES

log = logging.getLogger(__name__)

#: Metres per pixel the model is trained around: images with a finer known GSD are resampled to it.
WORKING_GSD_M = 0.3
STRIDE = 4
MAX_OBJECTS = 160

#: Labelled datasets used for training, with their share of the samples.
DATASET_WEIGHTS: dict[str, float] = {
    "airbus-pleiades": 0.15,
    "hrplanes": 0.08,
    "gdit-airport": 0.05,
    "ships-google-earth": 0.20,
    "fair1m": 0.22,
    "vedai": 0.08,
    "dota": 0.13,
    "ucas-aod": 0.02,
    "allplanes": 0.02,
    "mar20-sample": 0.01,
    "hrsc2016-samples": 0.04,
    "simd-helicopters": 0.03,
}
#: Share of all samples centred on a labelled helicopter (helicopters are rare: 2 training images).
HELICOPTER_SHARE = 0.06
#: Share of samples that are a background (airfield, apron) with real helicopter chips pasted in
#: (see :mod:`sitewatch.detect.train.paste`), and how many chips each gets at most.
PASTE_SHARE = 0.08
PASTE_MAX = 3
#: Share of samples centred on a hard region (:mod:`sitewatch.detect.train.hard`: a false detection
#: or a missed object of an earlier model), when the run is given some.
HARD_SHARE = 0.15
#: Largest offset of a hard region's crop centre from the region, as a fraction of the crop side.
HARD_JITTER = 0.25
#: Scale jitter for images without a known GSD (screenshots: aircraft from ~12 px to ~250 px) and
#: a milder one for those with one.
SCALE_JITTER_NO_GSD = (0.5, 1.6)
SCALE_JITTER_GSD = (0.8, 1.25)
#: Zoomed-out crops (``CropSampler(zoom_out=share)``, ``sitewatch train --zoom-out``): that share
#: of the crops of images with a known GSD that label aircraft is drawn at a scale in
#: :data:`ZOOM_OUT`, so the aircraft of 0.5 m scenes (60–140 px) also appear at the 18–80 px of
#: GSD-unknown screenshots; the image is low-passed first (no aliasing a real screenshot lacks).
ZOOM_OUT = (0.3, 0.6)
#: Objects shorter than this (crop pixels) after zooming out are zero-loss regions, not targets.
ZOOM_OUT_MIN_PX = 8.0
#: Labels that name a vehicle but no size class, trained as zero-loss regions (like difficult
#: objects): FAIR1M's ``other-vehicle`` is mapped to large-vehicle by classes.csv, yet most of its
#: objects are car-sized (of the 84 in the validation split, 50 are found as small vehicles), so as
#: a large-vehicle target it teaches the model that cars are large vehicles.
NO_SIZE_CLASS: frozenset[tuple[str, str]] = frozenset({("fair1m", "other-vehicle")})


def zero_loss(dataset: str, obj: LabelledObject) -> bool:
    """Whether ``obj`` of ``dataset`` is trained as a zero-loss region rather than a target: a
    difficult object, or a vehicle without a size class (:data:`NO_SIZE_CLASS`)."""
    return obj.difficult or (dataset, obj.fine_class) in NO_SIZE_CLASS


@dataclass(slots=True)
class CachedImage:
    """One decoded image and its objects, in the pixels of the (resampled) array.

    ``boxes``: float32 ``[K, 5]`` (cx, cy, length, width, heading_deg); ``cats``: int ``[K]``
    index into CATEGORIES; ``difficult``: bool ``[K]`` (zero-loss region, no target).
    ``channels``: bool ``[5]``, the categories this dataset labels (others get no heatmap loss).
    """

    name: str
    dataset: str
    rgb: np.ndarray
    boxes: np.ndarray
    cats: np.ndarray
    difficult: np.ndarray
    axis_aligned: bool
    has_gsd: bool
    channels: np.ndarray
    scale: float = 1.0
    helicopters: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    #: Metres per pixel of ``rgb`` (after resampling), None when unknown.
    gsd_m: float | None = None


def labelled_channels(classes_csv: Path, dataset: str) -> np.ndarray:
    """Which categories ``dataset`` labels (from classes.csv); helicopters count as labelled
    wherever aircraft are (an aircraft dataset would have labelled or omitted them as aircraft)."""
    cmap = load_class_map(classes_csv)
    cats = {c for (d, _), c in cmap.items() if d == dataset}
    if "aircraft" in cats:
        cats.add("helicopter")
    return np.array([c in cats for c in CATEGORIES], dtype=bool)


def working_scale(gsd_m: float | None) -> float:
    """Resampling factor (new pixels per old pixel) that brings ``gsd_m`` to the working GSD; ≤ 1."""
    if gsd_m is None or gsd_m >= WORKING_GSD_M:
        return 1.0
    return gsd_m / WORKING_GSD_M


def cache_image(item: LabelledImage, channels: np.ndarray) -> CachedImage:
    """Decode, resample and convert one labelled image."""
    bgr = cv2.imread(str(item.image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"{item.image_path}: cannot decode image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    s = working_scale(item.gsd_m)
    if s < 1.0:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    keep = [o for o in item.objects if o.category in CATEGORIES]
    boxes = np.array(
        [[o.box.cx * s, o.box.cy * s, o.box.length * s, o.box.width * s, o.box.heading_deg] for o in keep],
        dtype=np.float32,
    ).reshape(-1, 5)
    cats = np.array([CATEGORIES.index(o.category) for o in keep], dtype=np.int64)
    difficult = np.array([zero_loss(item.dataset, o) for o in keep], dtype=bool)
    heli = np.flatnonzero((cats == CATEGORIES.index("helicopter")) & ~difficult)
    return CachedImage(
        item.name,
        item.dataset,
        np.ascontiguousarray(rgb),
        boxes,
        cats,
        difficult,
        item.axis_aligned,
        item.gsd_m is not None,
        channels,
        s,
        heli,
        None if item.gsd_m is None else item.gsd_m / s,
    )


def load_split(
    data_root: Path, split: str, datasets: Iterable[str] | None = None, limit: int | None = None
) -> list[CachedImage]:
    """Decode every image of ``split`` ("train"/"val") of the given datasets under ``data_root``."""
    from sitewatch.detect.train.splits import split_of

    data_root = Path(data_root)
    out: list[CachedImage] = []
    for ds in datasets or DATASET_WEIGHTS:
        root = data_root / ds
        if not root.is_dir():
            log.warning("%s: dataset folder missing, skipped", root)
            continue
        channels = labelled_channels(data_root / "classes.csv", ds)
        n = 0
        for item in iter_dataset(root):
            if split_of(item) != split:
                continue
            try:
                out.append(cache_image(item, channels))
            except OSError as e:
                log.warning(
                    "%s: unreadable image, skipped (%s)",
                    item.image_path,
                    str(e).removeprefix(f"{item.image_path}: "),
                )
                continue
            n += 1
            if limit and n >= limit:
                break
    return out


# --------------------------------------------------------------------------- geometry


def envelope_dims(
    length: np.ndarray, width: np.ndarray, heading_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned extent (x, y) of oriented boxes: ``l|sinθ|+w|cosθ|``, ``l|cosθ|+w|sinθ|``."""
    t = np.radians(heading_deg)
    s, c = np.abs(np.sin(t)), np.abs(np.cos(t))
    return length * s + width * c, length * c + width * s


def transform_boxes(boxes: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a similarity transform (2x3, rotation·scale, possibly mirrored) to ``[K, 5]`` boxes."""
    if len(boxes) == 0:
        return boxes.copy()
    lin = m[:, :2]
    scale = math.sqrt(abs(np.linalg.det(lin)))
    centres = boxes[:, :2] @ lin.T + m[:, 2]
    t = np.radians(boxes[:, 4])
    axis = np.stack([np.sin(t), -np.cos(t)], axis=1) @ lin.T
    heading = np.degrees(np.arctan2(axis[:, 0], -axis[:, 1])) % 180.0
    return np.column_stack([centres, boxes[:, 2] * scale, boxes[:, 3] * scale, heading]).astype(np.float32)


# --------------------------------------------------------------------------- sampling


@dataclass(slots=True)
class Sample:
    """One augmented crop and its targets (numpy, ready for collation)."""

    image: np.ndarray  # float32 [3, S, S], 0..255
    hm: np.ndarray  # float32 [5, S/4, S/4]
    hm_mask: np.ndarray  # float32 [5, S/4, S/4] (0 = no loss)
    ind: np.ndarray  # int64 [K] flat index into S/4 x S/4
    reg_mask: np.ndarray  # float32 [K]
    oriented: np.ndarray  # float32 [K] 1 = full supervision, 0 = envelope only
    offset: np.ndarray  # float32 [K, 2]
    logsize: np.ndarray  # float32 [K, 2] log(length), log(width)
    angle: np.ndarray  # float32 [K, 2] cos 2θ, sin 2θ
    logenv: np.ndarray  # float32 [K, 2] log envelope x, y


class CropSampler:
    """Draws augmented, balanced crops from cached images.

    Args:
        images: the cached training images.
        size: crop side in pixels (multiple of 32).
        seed: base seed; sample ``i`` uses ``default_rng([seed, i])``.
        augment: random rotations, flips, scale and colour jitter (False: plain centred crops).
        weights: per-dataset sampling shares overriding :data:`DATASET_WEIGHTS`.
        chips, backgrounds: copy-paste augmentation (:mod:`~sitewatch.detect.train.paste`):
            :data:`PASTE_SHARE` of the samples are crops of a background with up to
            :data:`PASTE_MAX` chips pasted in; none when either is empty.
        hard: hard regions (:class:`~sitewatch.detect.train.hard.HardRegion`) of these images:
            :data:`HARD_SHARE` of the samples are crops around one of them (a kind, false or missed,
            drawn evenly; then a dataset by its sampling share; then a region of it). Regions of
            images not in ``images`` are left out.
        zoom_out: share of the crops of images with a known GSD that label aircraft drawn zoomed
            out (:data:`ZOOM_OUT`); 0 draws none.
    """

    def __init__(
        self,
        images: list[CachedImage],
        size: int = 384,
        seed: int = 0,
        augment: bool = True,
        weights: dict[str, float] | None = None,
        chips: list | None = None,
        backgrounds: list | None = None,
        hard: list | None = None,
        zoom_out: float = 0.0,
    ):
        if not 0.0 <= zoom_out <= 1.0:
            raise ValueError(f"zoom_out must be a share in [0, 1], not {zoom_out}")
        if not images:
            raise ValueError("no training images")
        self.images = images
        self.size = size
        self.seed = seed
        self.augment = augment
        self.zoom_out = zoom_out
        by_ds: dict[str, list[int]] = {}
        for i, im in enumerate(images):
            by_ds.setdefault(im.dataset, []).append(i)
        self.by_dataset = by_ds
        names = sorted(by_ds)
        table = {**DATASET_WEIGHTS, **(weights or {})}
        w = np.array([table.get(n, 0.02) for n in names], dtype=float)
        self.dataset_names = names
        self.dataset_p = w / w.sum()
        self.heli_images = [i for i, im in enumerate(images) if len(im.helicopters)]
        self.chips = list(chips or [])
        self.backgrounds = list(backgrounds or []) if self.chips else []
        self.hard = self._index_hard(hard or [], table)

    def _index_hard(self, regions: list, table: dict[str, float]) -> list[tuple[list, np.ndarray, list]]:
        """Per kind: its datasets, their sampling probabilities, and per dataset the regions as
        ``(image index, x, y)`` in the cached image's pixels."""
        where = {(im.dataset, im.name): i for i, im in enumerate(self.images)}
        grouped: dict[str, dict[str, list[tuple[int, float, float]]]] = {}
        for r in regions:
            i = where.get((r.dataset, r.image))
            if i is None:
                continue
            s = self.images[i].scale
            grouped.setdefault(r.kind, {}).setdefault(r.dataset, []).append((i, r.x * s, r.y * s))
        out = []
        for kind in sorted(grouped):
            names = sorted(grouped[kind])
            w = np.array([table.get(n, 0.02) for n in names], dtype=float)
            out.append((names, w / w.sum(), [grouped[kind][n] for n in names]))
        return out

    def __len__(self) -> int:  # nominal epoch
        return len(self.images)

    def sample(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, index])
        if self.backgrounds and self.augment and rng.random() < PASTE_SHARE:
            bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
            return self.crop(bg.image, rng, paste_gsd_m=bg.gsd_m)
        if self.hard and self.augment and rng.random() < HARD_SHARE:
            _, p, pools = self.hard[int(rng.integers(len(self.hard)))]
            pool = pools[rng.choice(len(p), p=p)]
            i, x, y = pool[int(rng.integers(len(pool)))]
            return self.crop(self.images[i], rng, centre=(x, y))
        ds = self.dataset_names[rng.choice(len(self.dataset_names), p=self.dataset_p)]
        if self.heli_images and rng.random() < HELICOPTER_SHARE:
            im = self.images[self.heli_images[rng.integers(len(self.heli_images))]]
            focus = int(rng.choice(im.helicopters))
        else:
            pool = self.by_dataset[ds]
            im = self.images[pool[rng.integers(len(pool))]]
            focus = None
        return self.crop(im, rng, focus)

    def crop(
        self,
        im: CachedImage,
        rng: np.random.Generator,
        focus: int | None = None,
        paste_gsd_m: float | None = None,
        centre: tuple[float, float] | None = None,
    ) -> Sample:
        """An augmented crop of ``im`` (near object ``focus``, near pixel ``centre``, or chosen at
        random); with ``paste_gsd_m`` (metres per pixel of ``im``) chips are pasted into it."""
        s = self.size
        h, w = im.rgb.shape[:2]
        targets = np.flatnonzero(~im.difficult)
        if focus is None and centre is None and len(targets) and rng.random() < 0.7:
            focus = int(rng.choice(targets))
        if centre is not None:
            # Within a disc, so the region stays inside the crop at any rotation and zoom ≤ 2.
            r, t = HARD_JITTER * s * math.sqrt(rng.random()), rng.uniform(0.0, 2 * math.pi)
            cx, cy = centre[0] + r * math.cos(t), centre[1] + r * math.sin(t)
        elif focus is not None:
            cx, cy = im.boxes[focus, :2] + rng.uniform(-s / 3, s / 3, 2)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        zoomed = (
            self.augment
            and self.zoom_out > 0.0
            and paste_gsd_m is None
            and im.has_gsd
            and bool(im.channels[CATEGORIES.index("aircraft")])
            and rng.random() < self.zoom_out
        )
        if self.augment:
            lo, hi = ZOOM_OUT if zoomed else SCALE_JITTER_GSD if im.has_gsd else SCALE_JITTER_NO_GSD
            scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            angle = float(rng.integers(4) * 90.0) if im.axis_aligned else float(rng.uniform(0.0, 360.0))
            flip = bool(rng.random() < 0.5)
        else:
            scale, angle, flip = 1.0, 0.0, False
        if zoomed:
            # A zoomed-out crop spans 1.7-3.3 times the image pixels: kept inside the image where
            # it fits, not half padding.
            half = s / (2 * scale)
            cx = float(np.clip(cx, half, w - half)) if w > 2 * half else w / 2
            cy = float(np.clip(cy, half, h - half)) if h > 2 * half else h / 2
        # dst = T(s/2) · R(angle) · S(scale) · F · T(-c); rotation clockwise on screen (y down).
        a = math.radians(angle)
        ca, sa = math.cos(a), math.sin(a)
        lin = scale * np.array([[ca, -sa], [sa, ca]])
        if flip:
            lin = lin @ np.array([[-1.0, 0.0], [0.0, 1.0]])
        m = np.zeros((2, 3))
        m[:, :2] = lin
        m[:, 2] = np.array([s / 2, s / 2]) - lin @ np.array([cx, cy])
        exact = abs(scale - 1.0) < 1e-9 and angle % 90 == 0
        src, warp = im.rgb, m
        if zoomed:
            src, warp = _low_passed_region(im.rgb, m, s, scale)
        img = cv2.warpAffine(
            src,
            warp,
            (s, s),
            flags=cv2.INTER_NEAREST if exact else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        boxes = transform_boxes(im.boxes, m)
        img = img.astype(np.float32)
        cats, difficult = im.cats, im.difficult
        if zoomed:
            difficult = difficult | (boxes[:, 2] < ZOOM_OUT_MIN_PX)
        if paste_gsd_m:
            from sitewatch.detect.train.paste import paste_chips

            count = int(rng.integers(1, PASTE_MAX + 1))
            img, boxes, cats, difficult = paste_chips(
                img, boxes, cats, difficult, self.chips, rng, paste_gsd_m / scale, count
            )
        if self.augment:
            img = _photometric(img, rng)
        return _targets(img, boxes, cats, difficult, im.channels, im.axis_aligned, s)


def _low_passed_region(
    rgb: np.ndarray, m: np.ndarray, size: int, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``rgb`` that the affine ``m`` (scale ``scale`` < 1) maps into a ``size`` crop,
    Gaussian-blurred with σ = 0.5 / ``scale`` source pixels, and ``m`` for that part."""
    h, w = rgb.shape[:2]
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=float) @ inv.T
    pad = int(math.ceil(3 * 0.5 / scale)) + 2
    x0, y0 = (max(0, int(math.floor(v)) - pad) for v in corners.min(axis=0))
    x1, y1 = (
        min(w, int(math.ceil(corners[:, 0].max())) + pad),
        min(h, int(math.ceil(corners[:, 1].max())) + pad),
    )
    shifted = m.copy()
    shifted[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=float)
    if x1 <= x0 or y1 <= y0:
        return rgb[:1, :1] * 0, shifted
    part = cv2.GaussianBlur(rgb[y0:y1, x0:x1], (0, 0), 0.5 / scale)
    return part, shifted


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation, haze and blur jitter on float RGB 0..255.

    Per-pixel reductions over the three bands are written band by band: numpy's reduction along
    a last axis of length 3 is several times slower, and this runs once per training crop.
    """
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    valid = ((r > 0) | (g > 0) | (b > 0))[..., None]  # keep padding black
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.75, 1.25)
    gray = ((img[..., 0] + img[..., 1] + img[..., 2]) / np.float32(3.0))[..., None]
    img = gray + (img - gray) * rng.uniform(0.6, 1.4)
    if rng.random() < 0.25:  # haze
        a = rng.uniform(0.1, 0.4)
        img = img * (1 - a) + a * rng.uniform(180, 235)
    if rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    if rng.random() < 0.2:
        # OpenCV's generator, seeded from ``rng`` (same crop, same noise): 4x faster than numpy's.
        sd = rng.uniform(2, 6)
        cv2.setRNGSeed(int(rng.integers(2**31)))
        noise = np.empty(img.shape, np.float32)
        cv2.randn(noise, (0.0,) * img.shape[2], (sd,) * img.shape[2])
        img = img + noise
    img = np.clip(img, 0, 255) * valid
    return img.astype(np.float32)


def _targets(
    img: np.ndarray,
    boxes: np.ndarray,
    cats: np.ndarray,
    difficult: np.ndarray,
    channels: np.ndarray,
    axis_aligned: bool,
    s: int,
) -> Sample:
    o = s // STRIDE
    hm = np.zeros((len(CATEGORIES), o, o), np.float32)
    ignore = np.zeros((o, o), bool)
    k = MAX_OBJECTS
    ind = np.zeros(k, np.int64)
    reg_mask = np.zeros(k, np.float32)
    offset = np.zeros((k, 2), np.float32)
    logsize = np.zeros((k, 2), np.float32)
    angle = np.zeros((k, 2), np.float32)
    logenv = np.zeros((k, 2), np.float32)
    n = 0
    yy, xx = np.mgrid[0:o, 0:o].astype(np.float32)
    xx += 0.5
    yy += 0.5
    for b, c, d in zip(boxes, cats, difficult, strict=True):
        cx, cy, length, width, heading = (float(v) for v in b)
        gx, gy = cx / STRIDE, cy / STRIDE
        if not (0 <= gx < o and 0 <= gy < o):
            continue
        t = math.radians(heading)
        ux, uy = math.sin(t), -math.cos(t)
        lc, wc = length / STRIDE, width / STRIDE
        if d:
            # Zero-loss region: the box grown by one cell.
            dx, dy = xx - gx, yy - gy
            along, across = np.abs(dx * ux + dy * uy), np.abs(-dx * uy + dy * ux)
            ignore |= (along <= lc / 2 + 1) & (across <= wc / 2 + 1)
            continue
        if axis_aligned:
            ex, ey = envelope_dims(np.array(length), np.array(width), np.array(heading))
            sx, sy = max(0.8, float(ex) / STRIDE / 6), max(0.8, float(ey) / STRIDE / 6)
            r = 3 * max(sx, sy)
            x0, x1 = max(0, int(gx - r)), min(o, int(gx + r) + 2)
            y0, y1 = max(0, int(gy - r)), min(o, int(gy + r) + 2)
            dx, dy = xx[y0:y1, x0:x1] - gx, yy[y0:y1, x0:x1] - gy
            g = np.exp(-(dx * dx / (2 * sx * sx) + dy * dy / (2 * sy * sy)))
        else:
            sl, sw = max(0.8, lc / 6), max(0.8, wc / 6)
            r = 3 * max(sl, sw)
            x0, x1 = max(0, int(gx - r)), min(o, int(gx + r) + 2)
            y0, y1 = max(0, int(gy - r)), min(o, int(gy + r) + 2)
            dx, dy = xx[y0:y1, x0:x1] - gx, yy[y0:y1, x0:x1] - gy
            along, across = dx * ux + dy * uy, -dx * uy + dy * ux
            g = np.exp(-(along * along / (2 * sl * sl) + across * across / (2 * sw * sw)))
        np.maximum(hm[c, y0:y1, x0:x1], g, out=hm[c, y0:y1, x0:x1])
        col, row = int(gx), int(gy)
        hm[c, row, col] = 1.0
        if n >= k:
            continue
        ind[n] = row * o + col
        reg_mask[n] = 1.0
        offset[n] = (gx - col, gy - row)
        logsize[n] = (math.log(max(length, 1.0)), math.log(max(width, 1.0)))
        angle[n] = (math.cos(2 * t), math.sin(2 * t))
        ex, ey = envelope_dims(np.array(length), np.array(width), np.array(heading))
        logenv[n] = (math.log(max(float(ex), 1.0)), math.log(max(float(ey), 1.0)))
        n += 1
    oriented = np.full(k, 0.0 if axis_aligned else 1.0, np.float32)
    mask = np.repeat(channels.astype(np.float32)[:, None, None], o, 1).repeat(o, 2)
    mask[:, ignore & (hm.max(axis=0) < 1.0)] = 0.0
    image = np.ascontiguousarray(img.transpose(2, 0, 1))
    return Sample(image, hm, mask, ind, reg_mask, oriented, offset, logsize, angle, logenv)


def collate(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Stack samples into a batch of numpy arrays keyed by field name."""
    return {f: np.stack([getattr(s, f) for s in samples]) for f in Sample.__slots__}
