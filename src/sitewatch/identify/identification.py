"""Identify detections: metric measurement plus ranked type candidates from the reference library."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sitewatch.identify.candidates import UNKNOWN_ID, UNKNOWN_ROLE, Ranking, rank_types
from sitewatch.identify.library import Library, load_library
from sitewatch.identify.measurement import Georef, measure_box
from sitewatch.types import Candidate, Detection, Measurement

log = logging.getLogger(__name__)

#: Relative 1-sigma of the GSD when the caller gives none: georeferenced products / screenshots.
DEFAULT_GSD_REL_SIGMA_GEOREF = 0.02
DEFAULT_GSD_REL_SIGMA_SCREENSHOT = 0.05


@dataclass(slots=True)
class Identification:
    """The full identification result of one detection.

    Attributes:
        detection: the input detection.
        length_px, width_px: box size, pixels (always available).
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

    def candidates(self, k: int = 5) -> tuple[Candidate, ...]:
        """Top-``k`` types plus the unknown/other mass, sorted by probability (best first)."""
        if self.ranking is None:
            return ()
        out = [
            Candidate(s.type.id, s.type.name + (f" ({s.state})" if s.state else ""), s.type.role, round(s.probability, 4), s.prior_weight)
            for s in self.ranking.top(k)
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
) -> Identification:
    """Measure one detection and rank library types for it (see :func:`identify_detections`)."""
    ident = Identification(det, det.box.length, det.box.width)
    if georef is None and (gsd_m is None or gsd_m <= 0):
        ident.reason = "GSD unknown: size given in pixels only and types not ranked (pass --gsd or a georeferenced scene)"
        return ident
    if gsd_rel_sigma is None:
        gsd_rel_sigma = DEFAULT_GSD_REL_SIGMA_GEOREF if georef is not None else DEFAULT_GSD_REL_SIGMA_SCREENSHOT
    ident.measurement = measure_box(
        det.box,
        det.category,
        gsd_m=gsd_m,
        gsd_rel_sigma=gsd_rel_sigma,
        georef=georef,
        off_nadir_deg=off_nadir_deg,
        view_azimuth_deg=view_azimuth_deg,
    )
    m = ident.measurement
    ident.ranking = rank_types(
        m.length_m, m.width_m, m.length_sigma_m, m.width_sigma_m, det.category, library or load_library(), priors=priors
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
    k: int = 5,
    gsd_rel_sigma: float | None = None,
    library: Library | None = None,
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
        k: number of type candidates kept (the unknown/other candidate is always added).
        gsd_rel_sigma: relative 1-sigma of the GSD (default 0.02 georeferenced, 0.05 otherwise).
        library: reference library (default: the bundled one).

    Returns:
        New detections; unchanged ones (and a logged reason) when no GSD/georeference is known.
    """
    georef = Georef.make(transform, crs) if crs is not None and transform is not None else None
    if georef is None and (gsd_m is None or gsd_m <= 0):
        if detections:
            log.warning("identify: GSD unknown, %d detections left unmeasured and unranked", len(detections))
        return list(detections)
    out = []
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
        )
        out.append(replace(det, measurement=ident.measurement, candidates=ident.candidates(k)))
    return out


def role_probabilities(det: Detection) -> dict[str, float]:
    """Role-group probabilities from a detection's stored candidates (top-k only), best first."""
    roles: dict[str, float] = {}
    for c in det.candidates:
        roles[c.role] = roles.get(c.role, 0.0) + c.probability
    return dict(sorted(roles.items(), key=lambda kv: -kv[1]))


def inventory_by(
    detections: Iterable[Detection], by: Literal["type", "role"] = "type", *, min_probability: float = 0.0
) -> dict[str, int]:
    """Count detections by best type or by role group (most frequent first).

    A detection counts under its best type id (or, with ``by="role"``, the role with the most
    probability mass). Detections without candidates, whose best answer is unknown/other, or whose
    best probability is below ``min_probability`` count as ``"unidentified <category>"``.
    """
    if by not in ("type", "role"):
        raise ValueError(f"inventory_by: by must be 'type' or 'role', got {by!r}")
    counts: Counter[str] = Counter()
    for d in detections:
        key = None
        if by == "type" and d.candidates:
            best = d.candidates[0]
            if best.type_id != UNKNOWN_ID and best.probability >= min_probability:
                key = best.type_id
        elif by == "role" and d.candidates:
            role, p = next(iter(role_probabilities(d).items()))
            if role != UNKNOWN_ROLE and p >= min_probability:
                key = role
        counts[key or f"unidentified {d.category}"] += 1
    return dict(counts.most_common())
