"""Compare two passes of a site: registration, object change, pixel change, one plain sentence.

:func:`compare_images` does the work on arrays and detections (no store, no files);
:func:`compare_passes` reads the passes' scenes onto a working grid and calls it.

Working grid: pass A's pixels resampled to ``working_gsd_m`` (never finer than either pass, at most
``max_working_px`` a side). Pass B is resampled onto it with :func:`rasterio.warp.reproject` when
both passes are georeferenced (any CRSs), else scaled by the GSD ratio; the residual
misregistration is then estimated (:mod:`sitewatch.compare.registration`).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from sitewatch.compare import _grid
from sitewatch.compare._sentence import summary_sentence
from sitewatch.compare.change import ChangeMap, change_map, cloud_mask, summarise
from sitewatch.compare.matching import STATUSES, ObjectChange, Visibility, match_detections
from sitewatch.compare.registration import Registration, register, to_grey, warp_to_a
from sitewatch.compare.settings import CompareSettings
from sitewatch.errors import CompareError, SitewatchError
from sitewatch.types import CATEGORIES, Detection, Pass

log = logging.getLogger(__name__)

#: Key of :attr:`Comparison.not_compared` when the passes share no observed ground.
NOT_OBSERVED = "not observed"


@dataclass(slots=True)
class PassImage:
    """One pass's pixels on its working grid.

    Attributes:
        rgb: uint8 (rows, cols, 3).
        valid: bool (rows, cols), False for nodata/outside.
        scale: working pixels per scene pixel (detections are in scene pixels).
        gsd_m: metres per working pixel, or None.
        crs, transform: georeference of the working grid (None for pixel-space passes).
    """

    rgb: np.ndarray
    valid: np.ndarray
    scale: float = 1.0
    gsd_m: float | None = None
    crs: Any = None
    transform: Affine | None = None


@dataclass(slots=True)
class Comparison:
    """The result of comparing pass A (earlier) with pass B (later).

    Attributes:
        pass_a, pass_b: short descriptions (id, acquired, scene, gsd_m, detections).
        registration: A-scene-pixel → B-scene-pixel transform, or None when not registered.
        objects: one :class:`ObjectChange` per object seen in both passes' views.
        unobserved: objects whose spot the other pass could not see (cloud, nodata, outside).
        counts: category → status → number (all categories and statuses), plus "a"/"b" totals.
        by_group: type group → status → number.
        by_zone: zone → status → number.
        pixel_change: zone → summary (see :func:`sitewatch.compare.change.summarise`); empty
            when pixel change was not assessed.
        sentence: one plain-English summary.
        warnings: what limits the comparison, one line each.
        not_compared: what could not be compared and why, e.g. ``{"pixel change": "..."}``.
        observed: fractions 0..1 of the site seen by valid pixels: ``{"a", "b", "both"}`` (None
            where unknown); counts and changes are stated only for ground both passes observed.
        change: the change map on the working grid, or None (not serialised).
    """

    pass_a: dict[str, Any]
    pass_b: dict[str, Any]
    registration: Registration | None
    objects: list[ObjectChange] = field(default_factory=list)
    unobserved: list[ObjectChange] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    by_group: dict[str, dict[str, int]] = field(default_factory=dict)
    by_zone: dict[str, dict[str, int]] = field(default_factory=dict)
    pixel_change: dict[str, dict[str, Any]] = field(default_factory=dict)
    sentence: str = ""
    warnings: list[str] = field(default_factory=list)
    not_compared: dict[str, str] = field(default_factory=dict)
    observed: dict[str, float | None] = field(default_factory=dict)
    change: ChangeMap | None = None
    change_crs: Any = None
    change_transform: Affine | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the change map itself is left out; see :func:`write_change_map`)."""
        return {
            "pass_a": self.pass_a,
            "pass_b": self.pass_b,
            "registration": self.registration.to_dict() if self.registration else None,
            "counts": self.counts,
            "by_group": self.by_group,
            "by_zone": self.by_zone,
            "pixel_change": self.pixel_change,
            "objects": [o.to_dict() for o in self.objects],
            "unobserved": [o.to_dict() for o in self.unobserved],
            "sentence": self.sentence,
            "warnings": list(self.warnings),
            "not_compared": dict(self.not_compared),
            "observed": dict(self.observed),
        }

    @property
    def not_observed(self) -> bool:
        """True when the passes share no observed ground: nothing about change can be stated."""
        return NOT_OBSERVED in self.not_compared


def _describe(p: Pass | None, label: str) -> dict[str, Any]:
    if p is None:
        return {"label": label}
    return {
        "label": label,
        "id": p.id,
        "site": p.site,
        "acquired": p.acquired.isoformat() if isinstance(p.acquired, datetime) else None,
        "scene": p.scene_path,
        "gsd_m": p.gsd_m,
        "model": p.model,
        "detections": len(p.detections),
    }


def _tally(changes: Sequence[ObjectChange], key: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    for c in changes:
        k = getattr(c, key) or "outside zones"
        out[k][c.status] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def _counts(changes: Sequence[ObjectChange]) -> dict[str, dict[str, int]]:
    """Per category: each status, and "a"/"b" = objects of each pass on ground both passes observed."""
    na = Counter(c.category for c in changes if c.det_a is not None)
    nb = Counter(c.category for c in changes if c.det_b is not None)
    out = {c: {**dict.fromkeys(STATUSES, 0), "a": na[c], "b": nb[c]} for c in CATEGORIES}
    for ch in changes:
        out[ch.category][ch.status] += 1
    return out


def compare_images(
    a: PassImage | None,
    b: PassImage | None,
    dets_a: Sequence[Detection],
    dets_b: Sequence[Detection],
    *,
    gsd_m: float | None = None,
    zones: dict[str, np.ndarray] | None = None,
    registration: Registration | None = None,
    settings: CompareSettings | None = None,
    pass_a: Pass | None = None,
    pass_b: Pass | None = None,
    since: str | None = None,
    b_to_scene: np.ndarray | None = None,
    ground_a: Visibility | None = None,
    ground_b: Visibility | None = None,
    observed: dict[str, float | None] | None = None,
) -> Comparison:
    """Compare two passes given as working-grid images and scene-pixel detections.

    Args:
        a, b: the passes' pixels; B must already be on A's working grid (same shape), or either
            may be None (no pixels: no registration by image, no pixel change).
        dets_a, dets_b: detections in each pass's scene pixels.
        gsd_m: metres per scene pixel of A, or None.
        zones: zone name → bool mask on A's working grid (None: one zone "image", zones unknown).
        registration: a known A-scene → B-scene transform (skips image registration), or None.
        settings: thresholds (:class:`CompareSettings`).
        pass_a, pass_b: the passes, for provenance in the result.
        since: how to name A's date in the sentence (default from ``pass_a.acquired``).
        b_to_scene: 3x3 affine from B's working-grid pixels (``b``) to B's scene pixels; default
            ``1 / a.scale`` (B resampled like A).
        ground_a, ground_b: whether a point (scene pixels of A) lies on ground pass A / B observed
            (from their stored observed areas); None: as far as the pixels tell.
        observed: the passes' observed fractions of the site (``{"a", "b", "both"}``); a "both" at
            or below ``settings.min_observed_fraction`` makes the comparison "not observed".

    Raises:
        CompareError: the images do not overlap or cannot be registered.
    """
    s = settings or CompareSettings()
    warnings: list[str] = []
    not_compared: dict[str, str] = {}
    observed = dict(observed or {})
    blind = _blind(a, b, observed, s)
    if blind:
        return _not_observed(blind, dets_a, dets_b, observed, pass_a, pass_b)
    if a is not None and b is not None and a.rgb.shape[:2] != b.rgb.shape[:2]:
        raise ValueError("compare_images needs B on A's working grid (same shape)")
    scale = a.scale if a is not None else 1.0
    visible_a = visible_b = None
    cm: ChangeMap | None = None
    if a is not None and b is not None:
        cloud_a = cloud_mask(a.rgb, a.valid, gsd_m=a.gsd_m, settings=s)
        cloud_b = cloud_mask(b.rgb, b.valid, gsd_m=a.gsd_m, settings=s)
        seen_a, seen_b = a.valid & ~cloud_a, b.valid & ~cloud_b
        to_scene = (
            np.diag([1.0 / scale, 1.0 / scale, 1.0]) if b_to_scene is None else np.asarray(b_to_scene, float)
        )
        a_scale = np.diag([scale, scale, 1.0])
        if registration is None:
            work = register(to_grey(a.rgb), to_grey(b.rgb), seen_a, seen_b, s)
            spread = None if work.local_spread_px is None else work.local_spread_px / scale
            registration = work.with_matrix(
                to_scene @ work.as_array() @ a_scale, error_px=work.error_px / scale, local_spread_px=spread
            )
            if spread is not None and gsd_m and 3 * spread * gsd_m > s.remain_tolerance_min_m:
                warnings.append(
                    f"the passes are locally misregistered by about {spread * gsd_m:.1f} m (1 sigma: "
                    "different parts of the scene shift differently); moves shorter than "
                    f"{3 * spread * gsd_m:.1f} m cannot be told from it"
                )
        work_m = np.linalg.inv(to_scene) @ registration.as_array() @ np.linalg.inv(a_scale)
        b_rgb = warp_to_a(b.rgb, work_m, a.valid.shape)
        b_seen = warp_to_a(seen_b, work_m, a.valid.shape, nearest=True)
        b_valid = warp_to_a(b.valid, work_m, a.valid.shape, nearest=True)
        compared = seen_a & b_seen
        overlap = a.valid & b_valid
        hidden = 1.0 - compared.sum() / max(overlap.sum(), 1)
        for name, cl, v in (("A", cloud_a, a.valid), ("B", cloud_b, b.valid)):
            frac = cl.sum() / max(v.sum(), 1)
            if frac > 0.01:
                warnings.append(
                    f"pass {name} is {100 * frac:.0f} % cloud-covered (bright flat areas); objects there "
                    "are unobserved"
                )
        if hidden > s.max_cloud_fraction:
            not_compared["pixel change"] = (
                f"{100 * hidden:.0f} % of the overlap is hidden by cloud or nodata (limit "
                f"{100 * s.max_cloud_fraction:.0f} %)"
            )
        else:
            cm = change_map(a.rgb, b_rgb, compared, gsd_m=a.gsd_m, settings=s)
        visible_a = _mask_lookup(seen_a, scale)
        visible_b = _mask_lookup(b_seen, scale)
        if a.crs is None:  # pixel space: the share of A's image both passes observed
            observed.setdefault("both", round(float(compared.mean()), 4))
    else:
        gone = [n for n, img in (("A", a), ("B", b)) if img is None]
        not_compared["pixel change"] = (
            f"no pixels for pass {gone[0]} (only its stored detections are available)"
            if len(gone) == 1
            else "no pixels for passes A and B (only their stored detections are available)"
        )
        if registration is None:
            registration = Registration.translation(0.0, 0.0, quality=0.0, method="identity", error_px=5.0)
            warnings.append("passes not co-registered: pixel frames assumed aligned")
    zone_masks = (
        zones if zones is not None else ({"image": np.ones(a.valid.shape, bool)} if a is not None else {})
    )
    if zones is None:
        warnings.append("zones unknown: pass not georeferenced or no site given")
    zone_of = _zone_lookup(zone_masks, scale) if zones else None

    if pass_a is not None and pass_b is not None and pass_a.model != pass_b.model:
        warnings.append(
            f"the passes were detected differently (A: {pass_a.model}; B: {pass_b.model}): some "
            "arrivals and departures may be the detectors', not the ground's"
        )
    if not dets_a and not dets_b:
        not_compared["objects"] = "no detections in either pass"
        changes: list[ObjectChange] = []
    else:
        for name, dets in (("A", dets_a), ("B", dets_b)):
            if not dets:
                warnings.append(
                    f"pass {name} has no detections: its changes may be detector misses, not real"
                )
        changes = match_detections(
            dets_a,
            dets_b,
            registration,
            gsd_m=gsd_m,
            settings=s,
            visible_a=_both(visible_a, ground_a),
            visible_b=_both(visible_b, ground_b),
            zone_of=zone_of,
        )
    objects = [c for c in changes if c.status != "unobserved"]
    unobserved = [c for c in changes if c.status == "unobserved"]
    if unobserved:
        warnings.append(f"{len(unobserved)} object(s) not compared: the other pass could not see their spot")
    pixel = {}
    if cm is not None:
        object_mask = _object_mask(objects + unobserved, registration, scale, cm.changed.shape)
        pixel = summarise(cm, zone_masks, object_mask)
    comparison = Comparison(
        pass_a=_describe(pass_a, "A"),
        pass_b=_describe(pass_b, "B"),
        registration=registration,
        objects=objects,
        unobserved=unobserved,
        counts=_counts(objects),
        by_group=_tally(objects, "group"),
        by_zone=_tally(objects, "zone") if zones else {},
        pixel_change=pixel,
        warnings=warnings,
        not_compared=not_compared,
        change=cm,
        change_crs=a.crs if a is not None else None,
        change_transform=a.transform if a is not None else Affine.scale(1.0 / scale),
        observed=observed,
    )
    both = observed.get("both")
    if both is not None and both < 1.0 - s.min_observed_fraction:
        warnings.append(
            f"only {100 * both:.0f} % of the site was observed by valid pixels in both passes: counts and "
            "changes are for that part; the rest is not observed"
        )
    if since is None and pass_a is not None and pass_a.acquired is not None:
        since = pass_a.acquired.date().isoformat()
    comparison.sentence = summary_sentence(comparison, s, since=since)
    return comparison


def _both(pixels: Visibility | None, ground: Visibility | None) -> Visibility | None:
    """A point is visible when both the pixels and the stored observed area say so."""
    if pixels is None or ground is None:
        return pixels or ground

    def lookup(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return np.asarray(pixels(xs, ys), bool) & np.asarray(ground(xs, ys), bool)

    return lookup


def _blind(
    a: PassImage | None, b: PassImage | None, observed: dict[str, float | None], s: CompareSettings
) -> str | None:
    """Why the passes share no observed ground, or None when they do."""
    for name, img in (("A", a), ("B", b)):
        frac = observed.get(name.lower())
        if frac is None and img is not None:
            frac = float(img.valid.mean()) if img.valid.size else 0.0
            if frac > s.min_observed_fraction:  # the file's own masks: blank blocks are checked below
                from sitewatch.imagery.validity import observed_mask

                frac = float(observed_mask(img.rgb, img.valid).mean())
        if frac is not None and frac <= s.min_observed_fraction:
            return f"pass {name} observed {100 * frac:.0f} % of the site (nodata, masked or blank pixels)"
    both = observed.get("both")
    if both is not None and both <= s.min_observed_fraction:
        return f"the passes observed only {100 * both:.1f} % of the site in common"
    return None


def _not_observed(why: str, dets_a: Sequence[Detection], dets_b: Sequence[Detection],
                  observed: dict[str, float | None], pass_a: Pass | None,
                  pass_b: Pass | None) -> Comparison:  # fmt: skip
    """A comparison of passes with no ground in common: every object unobserved, no counts, no change."""
    from sitewatch.compare.matching import group_of

    unobserved = [ObjectChange("unobserved", d.category, group_of(d), None, d, None) for d in dets_a]
    unobserved += [ObjectChange("unobserved", d.category, group_of(d), None, None, d) for d in dets_b]
    text = f"not observed: {why}; no count or change can be stated"
    return Comparison(
        pass_a=_describe(pass_a, "A"),
        pass_b=_describe(pass_b, "B"),
        registration=None,
        unobserved=unobserved,
        counts=_counts([]),
        sentence=f"Not observed: {why}; no count or change can be stated.",
        warnings=[f"{len(unobserved)} object(s) not compared: the other pass did not observe their spot"]
        if unobserved
        else [],
        not_compared={NOT_OBSERVED: why, "objects": text, "pixel change": text},
        observed=observed,
    )


def _mask_lookup(mask: np.ndarray, scale: float):  # noqa: ANN202
    h, w = mask.shape

    def lookup(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        c = np.floor(np.asarray(xs) * scale).astype(int)
        r = np.floor(np.asarray(ys) * scale).astype(int)
        inside = (c >= 0) & (c < w) & (r >= 0) & (r < h)
        out = np.zeros(c.shape, bool)
        out[inside] = mask[r[inside], c[inside]]
        return out

    return lookup


def _zone_lookup(zones: dict[str, np.ndarray], scale: float):  # noqa: ANN202
    named = {k: _mask_lookup(v, scale) for k, v in zones.items() if k != "site"}

    def zone_of(x: float, y: float) -> str | None:
        for name, look in named.items():
            if look(np.array([x]), np.array([y]))[0]:
                return name
        return None

    return zone_of


def _object_mask(
    changes: Sequence[ObjectChange], reg: Registration, scale: float, shape: tuple[int, int]
) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    for c in changes:
        for det, in_b in ((c.det_a, False), (c.det_b, True)):
            if det is None:
                continue
            pts = det.box.corners()
            if in_b:
                xs, ys = reg.inverse_apply(pts[:, 0], pts[:, 1])
                pts = np.stack([xs, ys], axis=1)
            cv2.fillPoly(mask, [np.round(pts * scale).astype(np.int32)], 1)
    return mask.astype(bool)


def compare_passes(
    a: Pass,
    b: Pass,
    site: Any = None,
    *,
    settings: CompareSettings | None = None,
    read_pixels: bool = True,
) -> Comparison:
    """Compare an earlier pass ``a`` with a later pass ``b`` of the same site.

    Args:
        a, b: the passes (detections in their scenes' pixels).
        site: the :class:`~sitewatch.sites.Site` (AOI and zones), or None.
        settings: thresholds (:class:`CompareSettings`).
        read_pixels: read the scenes for registration and pixel change; False compares the
            detections only (registration from the georeference, or none).

    Raises:
        CompareError: GSDs differ more than ``max_gsd_ratio``, footprints do not overlap, or
            the images cannot be registered.
    """
    s = settings or CompareSettings()
    _grid.check_compatible(a, b, s)
    observed, ground_a, ground_b = _grid.observed_ground(a, b, site)
    a_img = b_img = None
    warnings: list[str] = []
    registration = None
    zones = None
    b_to_scene = None
    if read_pixels and _blind(None, None, observed, s) is None:
        try:
            a_img, b_img, zones, b_to_scene = _grid.load_pair(a, b, site, s)
        except CompareError:
            raise
        except SitewatchError as e:
            warnings.append(f"pixels not compared: {e}")
            a_img = b_img = None
    if a_img is None and _blind(None, None, observed, s) is None:
        registration = _grid.georef_registration(a, b)
        if registration is not None:
            warnings.append("registration from the georeference only (pixels not read)")
    result = compare_images(
        a_img,
        b_img,
        a.detections,
        b.detections,
        gsd_m=a.gsd_m,
        zones=zones,
        registration=registration,
        settings=s,
        pass_a=a,
        pass_b=b,
        b_to_scene=b_to_scene,
        ground_a=ground_a,
        ground_b=ground_b,
        observed=observed,
    )
    result.warnings[:0] = warnings
    return result


def write_change_map(comparison: Comparison, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the change map as a GeoTIFF: 1 changed, 0 unchanged, 255 not compared.

    In pass A's CRS when georeferenced, else in A's pixel frame (transform from working to scene
    pixels, no CRS).

    Raises:
        CompareError: the comparison has no change map (pixel change not assessed).
        ReportError: the file cannot be written.
    """
    import rasterio

    from sitewatch.errors import ReportError

    cm = comparison.change
    if cm is None:
        why = comparison.not_compared.get("pixel change", "pixels not compared")
        raise CompareError(f"no change map to write: {why}")
    data = np.where(cm.compared, cm.changed.astype(np.uint8), 255).astype(np.uint8)
    path = Path(path)
    profile = {
        "driver": "GTiff",
        "height": data.shape[0],
        "width": data.shape[1],
        "count": 1,
        "dtype": "uint8",
        "nodata": 255,
        "compress": "deflate",
        "transform": comparison.change_transform or Affine.identity(),
    }
    if comparison.change_crs is not None:
        profile["crs"] = comparison.change_crs
    from sitewatch.output import atomic_output

    try:
        with (
            atomic_output(path, overwrite=overwrite, what="change map") as tmp,
            rasterio.open(tmp, "w", **profile) as dst,
        ):
            dst.write(data, 1)
            dst.update_tags(description="sitewatch change map: 1 changed, 0 unchanged, 255 not compared")
    except (OSError, rasterio.errors.RasterioError) as e:
        raise ReportError(f"{path}: cannot write change map ({e})") from e
    return path
