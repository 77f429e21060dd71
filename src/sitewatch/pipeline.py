"""Scan one scene of one site: window on the AOI, detect, identify, georeference, store a pass.

This module sits above the stages it joins (imagery, sites, detect, identify, store) and below
compare/assess/report, which read the passes it stores. The CLI ``sitewatch scan`` is a thin
wrapper over :func:`scan`, which chains four steps: :func:`plan` (coverage checks, AOI window, GSD,
observed coverage), :func:`detect`, :func:`finish` (AOI filter, identification, footprints: the
:class:`~sitewatch.types.Pass`) and :func:`save`. :mod:`sitewatch.scale` runs the same steps with the
detector's tiles on Dask workers.

Frames: detections stay in the *scene's* pixel frame (the window is only what is read);
footprints are WGS84 lon/lat polygons; the pass's ``transform``/``crs`` map pixels to the ground.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any, Protocol

import shapely
from rasterio.windows import Window
from shapely.geometry import Polygon

from sitewatch.detect.base import Detector, ProgressCallback
from sitewatch.errors import CoverageError, GeoreferenceError, LowCoverageWarning, SceneError
from sitewatch.identify import LEVELS, IdentifySettings, identify_detections, label_detection
from sitewatch.imagery import georef
from sitewatch.imagery.base import Scene
from sitewatch.imagery.simulate import is_simulated
from sitewatch.imagery.validity import Observed, observe
from sitewatch.settings import Settings
from sitewatch.store import Store
from sitewatch.types import Detection, Pass

log = logging.getLogger(__name__)

#: A scene covering less than this fraction of a site's AOI is refused (wrong scene or wrong site).
MIN_COVERAGE = 0.01

#: A scene covering less than this fraction is scanned with a :class:`LowCoverageWarning`.
FULL_COVERAGE = 0.99


class SiteLike(Protocol):
    """What :func:`scan` needs of a site: a :class:`sitewatch.sites.Site` from the watchlist, or a
    same-shaped object for a place the watchlist does not hold (e.g. the demo's pixel-space site)."""

    name: str
    aoi: Polygon
    priors: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ScanPlan:
    """What a scan of one scene for one site reads and records, settled before the detector runs.

    Attributes:
        window: the scene pixels to read, the window holding the site's AOI; None: the whole image
            (a pixel-space scene).
        gsd_m: metres per pixel for the detector and for measuring (the override, else the scene's).
        coverage: fraction 0..1 of the AOI inside the scene's outline; None: unknown (pixel space).
        footprint_wkt: the scene's outline within the AOI, WGS84 lon/lat WKT; None in pixel space.
        observed: what valid pixels observed of the AOI (pixel space: of the image) and of its zones.
    """

    window: Window | None
    gsd_m: float | None
    coverage: float | None
    footprint_wkt: str | None
    observed: Observed

    @property
    def observed_nothing(self) -> bool:
        """The scene observed none of the AOI (blank, nodata or fully masked): the detector must not run."""
        return self.observed.coverage <= 0.0


def scan(
    scene: Scene,
    site: SiteLike,
    detector: Detector,
    store: Store | None,
    *,
    gsd_m: float | None = None,
    progress: ProgressCallback | None = None,
    min_coverage: float = MIN_COVERAGE,
) -> Pass:
    """Detect and identify objects on a site's AOI in a scene and store the result as a pass.

    A georeferenced scene is read only on the window holding the site's AOI; detections whose
    centre falls outside the AOI are dropped and the rest get WGS84 footprints. A pixel-space
    scene (a screenshot without anchor) is scanned whole, measured with ``gsd_m``, and stored with
    ``crs``/``aoi_coverage``/``footprint`` None. Rescanning the same scene replaces its pass.

    The pass records what the scene *observed*: the share of the AOI (and of each zone) seen by valid
    pixels (not nodata, masked, alpha-transparent, or in an all-black / all-saturated block) and that
    area as a polygon (:mod:`sitewatch.imagery.validity`). A scene that observed none of the AOI is
    stored without running the detector, as *not observed* (never as an empty site).

    The steps, each usable alone (the Dask scale-out runs :func:`detect` as tiles on workers):
    :func:`plan` → :func:`detect` → :func:`finish` → :func:`save`.

    Args:
        scene: the image (see :func:`sitewatch.imagery.open_scene`).
        site: the watched site (name, WGS84 AOI polygon, type priors).
        detector: the detector to run.
        store: where to save the pass, or None to only return it.
        gsd_m: metres per pixel, overriding the scene's.
        progress: called with (tiles done, tiles total).
        min_coverage: smallest fraction (0..1) of the AOI the scene must cover.

    Returns:
        The stored pass (with ids when ``store`` is given).

    Raises:
        CoverageError: the scene covers less than ``min_coverage`` of the AOI.
        GeoreferenceError: a pixel-space scene without any GSD.
        StoreError: the pass cannot be stored (the store is left unchanged).
    """
    planned = plan(scene, site, gsd_m=gsd_m, min_coverage=min_coverage)
    found = detect(scene, planned, detector, progress=progress)
    p = finish(scene, site, planned, found, detector.label)
    return p if store is None else save(store, p)


def plan(
    scene: Scene, site: SiteLike, *, gsd_m: float | None = None, min_coverage: float = MIN_COVERAGE
) -> ScanPlan:
    """Check a scene against a site and settle what to read: the AOI window, the GSD, the coverage.

    Warns with :class:`LowCoverageWarning` when the scene's outline covers less than
    :data:`FULL_COVERAGE` of the AOI, or when invalid pixels hide part of what it covers.

    Args:
        scene: the image.
        site: the watched site (its WGS84 AOI and, when it has them, zones).
        gsd_m: metres per pixel, overriding the scene's.
        min_coverage: smallest fraction (0..1) of the AOI the scene must cover.

    Raises:
        CoverageError: the scene covers less than ``min_coverage`` of the AOI.
        GeoreferenceError: a pixel-space scene without any GSD.
        SceneError: the pixels cannot be read (to measure what they observed).
    """
    gsd = gsd_m if gsd_m is not None else georef.gsd_of(scene)
    window = None
    cover: float | None = None
    footprint: str | None = None
    if scene.georeferenced:
        cover = georef.coverage(scene, site.aoi)
        if cover is None or cover < min_coverage:
            raise CoverageError(
                f"{scene.path} covers {100 * (cover or 0):.2f}% of the AOI of site '{site.name}' "
                f"(at least {100 * min_coverage:g}% needed): wrong scene or wrong site?"
            )
        if cover < FULL_COVERAGE:
            warnings.warn(
                LowCoverageWarning(
                    f"{scene.path} covers only {100 * cover:.1f}% of the AOI of site '{site.name}'"
                ),
                stacklevel=2,
            )
        window = georef.window_for_polygon(scene, site.aoi)
        footprint = georef.footprint_wgs84(scene).intersection(site.aoi).wkt
    elif gsd is None:
        raise GeoreferenceError(
            f"{scene.path}: no CRS and no GSD: pass --gsd METRES_PER_PIXEL (e.g. --gsd 0.5), "
            "or --center LAT,LON with --gsd to place it on the ground"
        )
    seen = _observed(scene, site, window, cover)
    log.info(
        "scanning %s for site %s (window %s, GSD %s m, %.1f %% observed)",
        scene.path,
        site.name,
        window,
        gsd,
        100 * seen.coverage,
    )
    return ScanPlan(window, gsd, cover, footprint, seen)


def detect(
    scene: Scene, planned: ScanPlan, detector: Detector, *, progress: ProgressCallback | None = None
) -> list[Detection]:
    """Run the detector on the plan's window; boxes in scene pixels.

    A plan that observed nothing returns no detections without running the detector: nothing could
    be seen, which is not "nothing is there" (the pass records it as not observed).

    Raises:
        SceneError: the scene cannot be read.
        ModelError: the detector fails.
    """
    if planned.observed_nothing:
        return []
    return detector.detect(scene, window=planned.window, gsd_m=planned.gsd_m, progress=progress)


def finish(
    scene: Scene, site: SiteLike, planned: ScanPlan, detections: list[Detection], detector_label: str
) -> Pass:
    """The pass of a scan: detections on the AOI, identified with the site's priors, placed on the ground.

    Detections whose box centre falls outside the AOI are dropped (georeferenced scenes) and the
    rest get measurements, type candidates and WGS84 footprints.

    Args:
        scene: the image the plan was made on.
        site: the site the plan was made for.
        planned: the scene's :class:`ScanPlan`.
        detections: what the detector found on the plan's window, boxes in scene pixels.
        detector_label: the detector's name and version, and its extra passes if any
            (:attr:`Detector.label`).

    Raises:
        ValueError: detections for a plan that observed nothing.
        SceneError: the scene's file cannot be read (to hash it).
    """
    if planned.observed_nothing and detections:
        raise ValueError(f"{scene.path}: detections on a scene that observed none of the AOI")
    kept = _inside_aoi(scene, detections, site.aoi) if scene.georeferenced else detections
    kept = _identify(scene, kept, planned.gsd_m, site)
    if scene.georeferenced:
        kept = _with_footprints(scene, kept)
    window = planned.window
    meta = {
        **scene.metadata,
        "scene_size_px": [scene.width, scene.height],
        "window_px": None
        if window is None
        else [int(window.col_off), int(window.row_off), int(window.width), int(window.height)],
        "detections_outside_aoi": len(detections) - len(kept),
    }
    scene_path, scene_hash = scene_identity(scene.path)
    seen = planned.observed
    return Pass(
        site=site.name,
        scene_path=scene_path,
        acquired=scene.acquired,
        footprint_wkt=planned.footprint_wkt,
        aoi_coverage=planned.coverage,  # type: ignore[arg-type]  # None: unknown (pixel space)
        gsd_m=planned.gsd_m,
        model=detector_label,
        crs=scene.crs.to_string() if scene.crs is not None else None,
        transform=tuple(float(v) for v in scene.transform[:6]) if scene.transform is not None else None,
        simulated=is_simulated(scene),
        metadata=meta,
        detections=kept,
        observed_wkt=seen.area_wkt,
        observed_coverage=seen.coverage,
        zone_coverage=dict(seen.zones),
        scene_hash=scene_hash,
    )


def save(store: Store, p: Pass) -> Pass:
    """Store a pass in one transaction (replacing any pass of the same scene); read back with ids.

    Raises:
        StoreError: the pass cannot be stored (the store is left unchanged).
    """
    return store.get_pass(store.save_pass(p))


def scene_identity(path: str) -> tuple[str, str | None]:
    """The identity of a scene: its resolved real path and the SHA-256 of its bytes.

    Local files are named by their absolute real path (symlinks, ``..`` and doubled slashes resolved),
    so a pass can be read back from any folder and one file has one name; the content hash lets a copy
    of the same bytes under another name replace, not add, a pass. URLs are kept as given, unhashed.

    Raises:
        SceneError: the file cannot be read.
    """
    from sitewatch.imagery import stac

    if stac.is_url(path) or not Path(path).is_file():
        return path, None
    real = Path(path).resolve()
    try:
        with real.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise SceneError(f"{path}: cannot read the file to identify it ({e.strerror or e})") from e
    return str(real), f"sha256:{digest}"


def _observed(scene: Scene, site: SiteLike, window: Window | None, outline: float | None) -> Observed:
    """What the scene observed of the site, with a warning when invalid pixels hide part of what its outline
    covers."""
    if scene.georeferenced:
        seen = observe(scene, site.aoi, getattr(site, "zones", None) or {}, window=window)
        what = f"of the AOI of site '{site.name}'"
    else:
        seen = observe(scene)
        what = "of the image"
    if seen.coverage < FULL_COVERAGE and seen.coverage < (1.0 if outline is None else outline) - 0.01:
        warnings.warn(
            LowCoverageWarning(
                f"{scene.path}: valid pixels observe {100 * seen.coverage:.1f}% {what} (nodata, masked or "
                "blank elsewhere); the rest is recorded as not observed"
            ),
            stacklevel=3,
        )
    return seen


def _inside_aoi(scene: Scene, detections: list[Detection], aoi: Polygon) -> list[Detection]:
    """The detections whose box centre lies inside the AOI."""
    if not detections:
        return detections
    lons, lats = georef.pixel_to_lonlat(scene, [d.box.cx for d in detections], [d.box.cy for d in detections])
    inside = shapely.contains_xy(aoi, lons, lats)
    return [d for d, keep in zip(detections, inside, strict=True) if keep]


def _with_footprints(scene: Scene, detections: list[Detection]) -> list[Detection]:
    """Detections with their oriented boxes mapped to WGS84 corner polygons."""
    if not detections:
        return detections
    lonlat = georef.box_corners_lonlat(scene, [d.box for d in detections])
    return [
        dataclasses.replace(d, footprint=tuple((float(x), float(y)) for x, y in ring))
        for d, ring in zip(detections, lonlat, strict=True)
    ]


def _identify(
    scene: Scene, detections: list[Detection], gsd: float | None, site: SiteLike
) -> list[Detection]:
    """Measurements and type candidates (with the site's type priors)."""
    return identify_detections(
        detections,
        gsd_m=gsd,
        crs=scene.crs,
        transform=scene.transform,
        off_nadir_deg=scene.metadata.get("off_nadir_deg"),
        view_azimuth_deg=scene.metadata.get("view_azimuth_deg"),
        priors=getattr(site, "priors", None) or None,
        scene=scene,
    )


def load_default_detector(model: str | None = None, settings: Settings | None = None) -> Detector:
    """The configured detector of scans, watches and the web API: ``model`` (name or .onnx path),
    else ``SITEWATCH_MODEL``, else the bundled model; in the thorough mode
    (:data:`~sitewatch.detect.sliced.THOROUGH`) when the setting ``detect_thorough`` is on."""
    from sitewatch.detect.onnx import OnnxDetector  # onnxruntime loads only when a scan needs it
    from sitewatch.detect.sliced import THOROUGH

    settings = settings or Settings()
    options: dict[str, Any] = dict(THOROUGH) if settings.detect_thorough else {}
    return OnnxDetector(model, settings=settings, **options)


def _group_key(d: Detection, by: str, threshold: float | None) -> str:
    """The inventory group of ``d``: its category, or its label (type → family → role → size class)."""
    if by == "category":
        return d.category
    if not d.candidates:
        return f"{d.category} (unidentified)"
    levels = LEVELS if by == "type" else ("role", "size", "category")
    return label_detection(d, threshold=threshold, levels=levels).text


def inventory(passes: list[Pass], by: str = "category", *, threshold: float | None = None) -> dict[str, Any]:
    """Counts per group per pass (oldest → newest) and the change from the previous pass.

    Args:
        passes: passes of one site, oldest first (as :meth:`Store.list_passes` returns them).
        by: ``"category"``; ``"type"``: each detection's label, the most specific of type, family,
            role and size class whose calibrated probability reaches ``threshold`` ("Il-76
            family", "medium airliner-sized aircraft (33–45 m)", else "unidentified aircraft"),
            never a most-probable type below it; ``"role"``: the same from the role level down.
        threshold: probability a level needs (default ``IdentifySettings().label_threshold``).

    Returns:
        ``{"by", "groups": [names], "passes": [{"id", "acquired", "scene", "simulated",
        "counts": {group: n}, "deltas": {group: n - previous n or None}}]}``, plus ``"threshold"``
        for ``by`` type or role.
    """
    if by not in ("category", "type", "role"):
        raise ValueError(f"inventory by {by!r}: use category, type or role")
    from sitewatch.types import CATEGORIES

    per_pass = []
    for p in passes:
        counts: dict[str, int] = {}
        for d in p.detections:
            k = _group_key(d, by, threshold)
            counts[k] = counts.get(k, 0) + 1
        per_pass.append(counts)
    seen = {k for c in per_pass for k in c}
    groups = [c for c in CATEGORIES if c in seen or by == "category"] + sorted(seen - set(CATEGORIES))
    rows: list[dict[str, Any]] = []
    prev: dict[str, int] | None = None
    for p, counts in zip(passes, per_pass, strict=True):
        full = {g: counts.get(g, 0) for g in groups}
        rows.append(
            {
                "id": p.id,
                "acquired": p.acquired.isoformat() if p.acquired else None,
                "scene": p.scene_path,
                "simulated": p.simulated,
                "counts": full,
                "deltas": {g: (full[g] - prev[g]) if prev is not None else None for g in groups},
            }
        )
        prev = full
    out: dict[str, Any] = {"by": by, "groups": groups, "passes": rows}
    if by != "category":
        out["threshold"] = threshold if threshold is not None else IdentifySettings().label_threshold
    return out


def pass_summary(p: Pass) -> dict[str, Any]:
    """A JSON-ready summary of a stored pass (``--json`` of ``sitewatch scan`` and ``passes``, the demo's
    summary.json)."""
    return {
        "id": p.id,
        "site": p.site,
        "scene": p.scene_path,
        "acquired": p.acquired.isoformat() if p.acquired else None,
        "aoi_coverage": p.aoi_coverage,
        "observed_coverage": p.observed_coverage,
        "zone_coverage": p.zone_coverage,
        "gsd_m": p.gsd_m,
        "crs": p.crs,
        "model": p.model,
        "simulated": p.simulated,
        "detections": len(p.detections),
        "counts": p.counts(),
    }
