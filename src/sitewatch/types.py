"""Value objects that cross stages: oriented boxes, detections, candidates, passes.

Frames and units
----------------
* Pixel coordinates: x to the right (columns), y down (rows), origin at the top-left
  corner of the top-left pixel, in pixels of the image the detection was made on.
* ``heading_deg`` of an :class:`OrientedBox`: the direction of the box's *length* axis,
  degrees clockwise from image-up (the -y direction), folded into ``[0, 180)`` because a
  box has no front. On a north-up image this is degrees clockwise from north.
* Geographic values are WGS84 (EPSG:4326) longitude/latitude; metric sizes are metres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

#: The five object categories sitewatch detects, in model-output order.
CATEGORIES: tuple[str, ...] = ("aircraft", "helicopter", "ship", "large-vehicle", "small-vehicle")
#: The categories in running text, plural.
CATEGORY_PLURAL: dict[str, str] = {
    "aircraft": "aircraft",
    "helicopter": "helicopters",
    "ship": "ships",
    "large-vehicle": "large vehicles",
    "small-vehicle": "small vehicles",
}


@dataclass(frozen=True, slots=True)
class OrientedBox:
    """A rotated rectangle in pixel coordinates.

    Attributes:
        cx, cy: centre, pixels.
        length: extent along the length axis, pixels (``length >= width``).
        width: extent across it, pixels.
        heading_deg: direction of the length axis, degrees clockwise from image-up, in [0, 180).
    """

    cx: float
    cy: float
    length: float
    width: float
    heading_deg: float

    @classmethod
    def make(cls, cx: float, cy: float, length: float, width: float, heading_deg: float) -> OrientedBox:
        """Build a box, swapping sides so ``length >= width`` and folding the heading into [0, 180)."""
        if width > length:
            length, width = width, length
            heading_deg += 90.0
        return cls(float(cx), float(cy), float(length), float(width), float(heading_deg) % 180.0)

    @classmethod
    def from_corners(cls, corners: np.ndarray | Sequence[Sequence[float]]) -> OrientedBox:
        """Fit a box to four corners given in order around the rectangle (pixels, shape (4, 2))."""
        pts = np.asarray(corners, dtype=float).reshape(4, 2)
        centre = pts.mean(axis=0)
        e1 = pts[1] - pts[0]
        e2 = pts[2] - pts[1]
        # Average opposite edges: robust to slightly non-rectangular labels.
        e1 = (e1 + (pts[2] - pts[3])) / 2.0
        e2 = (e2 + (pts[3] - pts[0])) / 2.0
        l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
        axis = e1 if l1 >= l2 else e2
        heading = math.degrees(math.atan2(axis[0], -axis[1]))
        return cls.make(centre[0], centre[1], max(l1, l2), min(l1, l2), heading)

    @property
    def axis(self) -> tuple[float, float]:
        """Unit vector of the length axis in pixel coordinates (x right, y down)."""
        t = math.radians(self.heading_deg)
        return (math.sin(t), -math.cos(t))

    def corners(self) -> np.ndarray:
        """The four corners, shape (4, 2), in order around the box (pixels)."""
        ux, uy = self.axis
        vx, vy = -uy, ux  # perpendicular (width axis)
        hl, hw = self.length / 2.0, self.width / 2.0
        c = np.array([self.cx, self.cy])
        u = np.array([ux, uy]) * hl
        v = np.array([vx, vy]) * hw
        return np.stack([c + u + v, c + u - v, c - u - v, c - u + v])

    def corner_list(self, decimals: int = 2) -> list[list[float]]:
        """The four corners as ``[[x, y], ...]`` rounded to ``decimals`` pixels, as records publish them."""
        return [[round(float(x), decimals), round(float(y), decimals)] for x, y in self.corners()]

    def envelope(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounds ``(xmin, ymin, xmax, ymax)`` of the box, pixels."""
        pts = self.corners()
        return (
            float(pts[:, 0].min()),
            float(pts[:, 1].min()),
            float(pts[:, 0].max()),
            float(pts[:, 1].max()),
        )

    def translated(self, dx: float, dy: float) -> OrientedBox:
        """The same box moved by ``(dx, dy)`` pixels."""
        return replace(self, cx=self.cx + dx, cy=self.cy + dy)

    def scaled(self, factor: float) -> OrientedBox:
        """The box in an image resampled by ``factor`` (new pixels per old pixel)."""
        return replace(
            self,
            cx=self.cx * factor,
            cy=self.cy * factor,
            length=self.length * factor,
            width=self.width * factor,
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OrientedBox:
        return cls(
            float(d["cx"]), float(d["cy"]), float(d["length"]), float(d["width"]), float(d["heading_deg"])
        )


@dataclass(frozen=True, slots=True)
class Measurement:
    """Metric size of a detection with 1-sigma uncertainties.

    Attributes:
        length_m, width_m: metres (for aircraft: nose-to-tail length and wingspan).
        length_sigma_m, width_sigma_m: 1-sigma uncertainty, metres.
        heading_deg: degrees clockwise from true north in [0, 180), or None when not georeferenced.
        heading_sigma_deg: 1-sigma uncertainty of the heading, degrees.
        gsd_m: ground sample distance used, metres per pixel.
    """

    length_m: float
    width_m: float
    length_sigma_m: float
    width_sigma_m: float
    heading_deg: float | None = None
    heading_sigma_deg: float | None = None
    gsd_m: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ranked type hypothesis for a detection.

    Attributes:
        type_id: reference-library key (e.g. ``"an-124"``), or ``"unknown"`` for the other/unknown mass.
        name: display name (e.g. ``"An-124 Ruslan"``).
        role: role group (e.g. ``"heavy transport"``).
        probability: normalised likelihood in [0, 1]; candidates of one detection sum to <= 1.
        prior_weight: site-prior multiplier applied to this type before normalising (1.0 = none).
    """

    type_id: str
    name: str
    role: str
    probability: float
    prior_weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object.

    Attributes:
        box: oriented box in pixels of the image it was detected on.
        category: one of :data:`CATEGORIES`.
        score: detector confidence in [0, 1].
        footprint: WGS84 polygon corners ``[(lon, lat), ...]`` (4 points), or None when not georeferenced.
        measurement: metric size, or None when the GSD is unknown.
        candidates: ranked type candidates (best first), empty when not identified.
        id: identifier assigned by the store, or None.
    """

    box: OrientedBox
    category: str
    score: float
    footprint: tuple[tuple[float, float], ...] | None = None
    measurement: Measurement | None = None
    candidates: tuple[Candidate, ...] = ()
    id: int | None = None

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}; expected one of {', '.join(CATEGORIES)}")

    @property
    def best_type(self) -> Candidate | None:
        """The most likely identified type, or None."""
        return self.candidates[0] if self.candidates else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see docs/schema.md); round-trips through :meth:`from_dict`."""
        return {
            "id": self.id,
            "category": self.category,
            "score": round(float(self.score), 4),
            "corners": self.box.corner_list(),
            "center": [round(self.box.cx, 2), round(self.box.cy, 2)],
            "length_px": round(self.box.length, 2),
            "width_px": round(self.box.width, 2),
            "heading_px_deg": round(self.box.heading_deg, 2),
            "heading_deg": None
            if self.measurement is None or self.measurement.heading_deg is None
            else round(self.measurement.heading_deg, 2),
            "footprint": [list(p) for p in self.footprint] if self.footprint else None,
            "measurement": self.measurement.to_dict() if self.measurement else None,
            "candidates": [c.to_dict() for c in self.candidates],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Detection:
        box = OrientedBox(
            float(d["center"][0]),
            float(d["center"][1]),
            float(d["length_px"]),
            float(d["width_px"]),
            float(d["heading_px_deg"] if "heading_px_deg" in d else d["heading_deg"]),
        )
        return cls(
            box=box,
            category=d["category"],
            score=float(d["score"]),
            footprint=tuple(tuple(p) for p in d["footprint"]) if d.get("footprint") else None,
            measurement=Measurement.from_dict(d["measurement"]) if d.get("measurement") else None,
            candidates=tuple(Candidate.from_dict(c) for c in d.get("candidates") or ()),
            id=d.get("id"),
        )


@dataclass(slots=True)
class Pass:
    """One image of one watched site at one time, with its detections.

    Attributes:
        site: site name (key into the watchlist).
        scene_path: path or URL of the source scene.
        acquired: acquisition time (timezone-aware UTC), or None when unknown.
        footprint_wkt: WGS84 footprint of the scanned area (image outline within the AOI) as WKT, or
            None when not georeferenced.
        aoi_coverage: fraction of the site's AOI inside the image outline, 0..1.
        gsd_m: ground sample distance, metres per pixel, or None.
        model: detector name and version, e.g. ``"sitewatch-det 1.0.0"``, followed by the extra
            passes it ran in brackets when there were any (``"sitewatch-det 1.6.0 (×0.5 scale,
            mirrored)"``).
        crs: CRS of the scene (WKT or EPSG string), or None for pixel-space screenshots.
        transform: affine transform (6 GDAL-order numbers of rasterio's Affine a,b,c,d,e,f) of the
            pixel frame detections are in, or None.
        simulated: True for imagery made by the scenario generator.
        metadata: free-form scene metadata (platform, off_nadir_deg, sun_elevation_deg, ...).
        detections: the detections of this pass.
        id: identifier assigned by the store.
        created: when the pass was stored (UTC).
        observed_wkt: the part of the AOI seen by *valid* pixels (no nodata, mask, alpha, blank
            block), WGS84 WKT; None when unknown (pixel space, or stored before it was measured).
        observed_coverage: fraction 0..1 of the AOI seen by valid pixels (pixel space: of the
            image); None when not measured.
        zone_coverage: zone name → fraction 0..1 of that zone seen by valid pixels.
        scene_hash: ``"sha256:<hex>"`` of the scene file's bytes (its identity beside its resolved
            path), or None for remote scenes.
    """

    site: str
    scene_path: str
    acquired: datetime | None
    footprint_wkt: str | None
    aoi_coverage: float
    gsd_m: float | None
    model: str
    crs: str | None = None
    transform: tuple[float, ...] | None = None
    simulated: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    detections: list[Detection] = field(default_factory=list)
    id: int | None = None
    created: datetime | None = None
    observed_wkt: str | None = None
    observed_coverage: float | None = None
    zone_coverage: dict[str, float] = field(default_factory=dict)
    scene_hash: str | None = None

    @property
    def seen_coverage(self) -> float | None:
        """Fraction 0..1 of the AOI observed: by valid pixels when measured, else the outline coverage."""
        return self.observed_coverage if self.observed_coverage is not None else self.aoi_coverage

    def counts(self) -> dict[str, int]:
        """Number of detections per category (all categories present, zeros included)."""
        out = dict.fromkeys(CATEGORIES, 0)
        for d in self.detections:
            out[d.category] += 1
        return out
