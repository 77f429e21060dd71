"""Identify detections: metric measurement plus ranked type candidates from the reference library."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sitewatch.identify.candidates import (
    UNKNOWN_ID,
    UNKNOWN_ROLE,
    Ranking,
    calibrated_temperature,
    rank_types,
)
from sitewatch.identify.hierarchy import LEVELS, label_detection
from sitewatch.identify.library import Library, load_library
from sitewatch.identify.measurement import box_fit, combine_boxes, measure_box, refined_categories
from sitewatch.identify.refine import refine_box
from sitewatch.identify.settings import IdentifySettings
from sitewatch.imagery.base import CHIP_READ_CACHE_MB, Scene, read_cache
from sitewatch.imagery.georef import Georef
from sitewatch.types import Candidate, Detection, Measurement, OrientedBox

log = logging.getLogger(__name__)

#: Relative 1-sigma of the GSD when the caller gives none: georeferenced products / screenshots.
DEFAULT_GSD_REL_SIGMA_GEOREF = 0.02
DEFAULT_GSD_REL_SIGMA_SCREENSHOT = 0.05
#: Type candidates always kept with a detection.
DEFAULT_TOP_K = 5


@dataclass(slots=True)
class Identification:
    """The full identification result of one detection.

    Attributes:
        detection: the input detection.
        length_px, width_px: box size, pixels (always available).
        measured_box: the box measured (scene pixels): the detector's box, or where a silhouette
            was refined on the chip the two combined (:func:`~sitewatch.identify.measurement.combine_boxes`);
            None when nothing was measured.
        box_source: ``"silhouette"`` (refined, combined with the detector's box) or ``"detector"``.
        measurement: metric size, or None when no GSD/georeference is known.
        ranking: type posteriors, or None when not ranked.
        reason: why there is no measurement/ranking (None when both are there).
    """

    detection: Detection
    length_px: float
    width_px: float
    measurement: Measurement | None = None
    ranking: Ranking | None = None
    reason: str | None = None
    measured_box: OrientedBox | None = None
    box_source: str | None = None

    def candidates(self, k: int = 5, min_probability: float | None = None) -> tuple[Candidate, ...]:
        """Top-``k`` types plus the unknown/other mass, sorted by probability (best first).

        Args:
            k: types always kept.
            min_probability: also keep every further type at least this probable (None: none).
        """
        if self.ranking is None:
            return ()
        kept = [
            s
            for n, s in enumerate(self.ranking.types)
            if n < k or (min_probability is not None and s.probability >= min_probability)
        ]
        out = [
            Candidate(
                s.type.id,
                s.type.name + (f" ({s.state})" if s.state else ""),
                s.type.role,
                round(s.probability, 4),
                s.prior_weight,
            )
            for s in kept
        ]
        out.append(Candidate(UNKNOWN_ID, "unknown/other", UNKNOWN_ROLE, round(self.ranking.unknown, 4)))
        out.sort(key=lambda c: -c.probability)
        return tuple(out)


def identify_detection(
    det: Detection,
    *,
    gsd_m: float | None,
    georef: Georef | None = None,
    gsd_rel_sigma: float | None = None,
    off_nadir_deg: float | None = None,
    view_azimuth_deg: float | None = None,
    priors: Mapping[str, Any] | None = None,
    library: Library | None = None,
    scene: Scene | None = None,
) -> Identification:
    """Measure one detection and rank library types for it (see :func:`identify_detections`).

    With a ``scene`` (the one detected on), boxes of the categories that have a silhouette
    box-fit model (:func:`~sitewatch.identify.measurement.refined_categories`: aircraft) are
    refined on its pixels first (:func:`~sitewatch.identify.refine.refine_box`) and the silhouette
    and detector boxes are measured as one, each weighed by its box-fit model
    (:func:`~sitewatch.identify.measurement.combine_boxes`); where no plausible silhouette is
    found the detector box is measured with the detector's model (its bias divided out). The
    ranking takes the calibrated temperature of the box source measured
    (:func:`~sitewatch.identify.candidates.calibrated_temperature`).

    Raises:
        SceneError: the scene's pixels cannot be read.
    """
    ident = Identification(det, det.box.length, det.box.width)
    if georef is None and (gsd_m is None or gsd_m <= 0):
        ident.reason = (
            "GSD unknown: size given in pixels only and types not ranked (pass --gsd or a georeferenced "
            "scene)"
        )
        return ident
    if gsd_rel_sigma is None:
        gsd_rel_sigma = (
            DEFAULT_GSD_REL_SIGMA_GEOREF if georef is not None else DEFAULT_GSD_REL_SIGMA_SCREENSHOT
        )
    box, source, fit = det.box, "detector", box_fit(det.category)
    if scene is not None and det.category in refined_categories():
        silhouette = refine_box(scene, det.box)
        if silhouette is not None:
            box, fit = combine_boxes(det.box, silhouette.box, det.category)
            source = "silhouette"
    ident.measured_box, ident.box_source = box, source
    ident.measurement = measure_box(
        box,
        det.category,
        gsd_m=gsd_m,
        gsd_rel_sigma=gsd_rel_sigma,
        georef=georef,
        off_nadir_deg=off_nadir_deg,
        view_azimuth_deg=view_azimuth_deg,
        fit=fit,
    )
    m = ident.measurement
    ident.ranking = rank_types(
        m.length_m,
        m.width_m,
        m.length_sigma_m,
        m.width_sigma_m,
        det.category,
        library or load_library(),
        priors=priors,
        temperature=calibrated_temperature(det.category, source),
    )
    return ident


def identify_detections(
    detections: Sequence[Detection],
    *,
    gsd_m: float | None,
    crs: Any = None,
    transform: Any = None,
    off_nadir_deg: float | None = None,
    view_azimuth_deg: float | None = None,
    priors: Mapping[str, Any] | None = None,
    k: int | None = None,
    gsd_rel_sigma: float | None = None,
    library: Library | None = None,
    settings: IdentifySettings | None = None,
    scene: Scene | None = None,
) -> list[Detection]:
    """New detections with ``measurement`` and ``candidates`` set.

    Args:
        detections: detections in the pixel frame of ``transform``.
        gsd_m: ground sample distance, metres per pixel, or None.
        crs, transform: the scene's CRS (any pyproj input) and affine transform (rasterio ``Affine``
            or its 6 numbers). With both, sizes are geodesic and headings are degrees clockwise
            from true north (grid convergence included); without, sizes are ``gsd_m * pixels``
            and heading is left None.
        off_nadir_deg, view_azimuth_deg: view geometry (degrees; azimuth clockwise from north).
        priors: site priors (``{"operators": [...], "types": {id: weight}}``), or None.
        k: number of type candidates kept (the unknown/other candidate is always added); None
            (default): the top 5 and every further type at least ``settings.keep_min_probability``
            probable, so that family/role/size-class sums (:mod:`~sitewatch.identify.hierarchy`)
            can be taken from the stored candidates.
        gsd_rel_sigma: relative 1-sigma of the GSD (default 0.02 georeferenced, 0.05 otherwise).
        library: reference library (default: the bundled one).
        settings: identification settings (default: from the environment).
        scene: the scene detected on (pixels of ``detections``): aircraft boxes are refined on
            its pixels before measuring (:mod:`~sitewatch.identify.refine`) unless
            ``settings.refine`` is False. None: the detector boxes are measured as they are.

    Returns:
        New detections; unchanged ones (and a logged reason) when no GSD/georeference is known.

    Raises:
        SceneError: the scene's pixels cannot be read.
    """
    georef = Georef.make(transform, crs) if crs is not None and transform is not None else None
    if georef is None and (gsd_m is None or gsd_m <= 0):
        if detections:
            log.warning("identify: GSD unknown, %d detections left unmeasured and unranked", len(detections))
        return list(detections)
    settings = settings or IdentifySettings()
    pixels = scene if settings.refine else None
    out = []
    with read_cache(CHIP_READ_CACHE_MB if pixels is not None else None):
        for det in detections:
            ident = identify_detection(
                det,
                gsd_m=gsd_m,
                georef=georef,
                gsd_rel_sigma=gsd_rel_sigma,
                off_nadir_deg=off_nadir_deg,
                view_azimuth_deg=view_azimuth_deg,
                priors=priors,
                library=library,
                scene=pixels,
            )
            if k is None:
                keep_min = settings.keep_min_probability
                cands = ident.candidates(DEFAULT_TOP_K, keep_min)
            else:
                cands = ident.candidates(k)
            out.append(replace(det, measurement=ident.measurement, candidates=cands))
    return out


def role_probabilities(det: Detection) -> dict[str, float]:
    """Role-group probabilities from a detection's stored candidates (top-k only), best first."""
    roles: dict[str, float] = {}
    for c in det.candidates:
        roles[c.role] = roles.get(c.role, 0.0) + c.probability
    return dict(sorted(roles.items(), key=lambda kv: -kv[1]))


def inventory_by(
    detections: Iterable[Detection],
    by: Literal["type", "role"] = "type",
    *,
    threshold: float | None = None,
    library: Library | None = None,
) -> dict[str, int]:
    """Count detections by what may be said of them (most frequent first).

    ``by="type"`` counts under each detection's label (:func:`~sitewatch.identify.hierarchy.label_detection`):
    the most specific of type, family, role and size class whose calibrated probability reaches
    ``threshold`` ("Il-76 family", "medium airliner-sized aircraft (33–45 m)"); ``by="role"`` the
    same from the role level down. Detections where no level reaches it, or without candidates,
    count as ``"unidentified <category>"``; a bare most-probable type below the threshold is never a key.

    Args:
        detections: identified detections.
        by: ``"type"`` or ``"role"``.
        threshold: probability a level needs (default: ``IdentifySettings().label_threshold``).
        library: the library the candidates refer to (default: bundled).

    Raises:
        ValueError: ``by`` is neither.
    """
    if by not in ("type", "role"):
        raise ValueError(f"inventory_by: by must be 'type' or 'role', got {by!r}")
    levels = LEVELS if by == "type" else ("role", "size", "category")
    counts: Counter[str] = Counter(
        label_detection(d, library=library, threshold=threshold, levels=levels).text for d in detections
    )
    return dict(counts.most_common())
