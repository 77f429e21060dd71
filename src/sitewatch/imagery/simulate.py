"""SIMULATED imagery: georeferenced GeoTIFF passes of a site with objects at known places.

For tests and the no-data demo only. Each pass is a north-up GeoTIFF in the site's UTM zone at a
chosen GSD, showing grass, a runway and a concrete apron with aircraft silhouettes (fuselage, swept
wings, tailplane, shadow), helicopters (body, tail boom, rotor disc) and vehicles (rectangles).
Pass 2 shows the same ground on a grid shifted by a known number of pixels, with some aircraft
departed and others arrived. Everything made here is labelled SIMULATED: the GeoTIFF tags
(``SITEWATCH_SIMULATED=true``, image description), the truth JSON, and — through
:func:`is_simulated` — the passes stored from it.

Frames: ground positions are easting/northing metres in the UTM CRS of the scenario and WGS84
lon/lat; pixel positions are in the pixel frame of each pass (x right, y down); headings are
degrees clockwise from true north (= from image-up, the rasters are north-up) in [0, 180).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from rasterio.crs import CRS
from shapely.geometry import LineString, Polygon, box
from shapely.ops import transform as transform_geometry

from sitewatch.imagery.base import Scene
from sitewatch.types import OrientedBox

#: GeoTIFF tag that marks simulated imagery.
SIMULATED_TAG = "SITEWATCH_SIMULATED"


@dataclass(frozen=True)
class SimType:
    """Drawing parameters of one simulated object type (overall length and width/span, metres)."""

    type_id: str
    category: str
    length_m: float
    width_m: float
    sweep: float = 0.0  # wing sweep as a fraction of the length (aircraft)


#: Object types the simulator draws; sizes follow published overall dimensions of the named types.
SIM_TYPES: dict[str, SimType] = {
    t.type_id: t
    for t in (
        SimType("su-24", "aircraft", 22.67, 17.64, sweep=0.22),
        SimType("su-34", "aircraft", 23.34, 14.70, sweep=0.20),
        SimType("il-76", "aircraft", 46.59, 50.50, sweep=0.12),
        SimType("an-26", "aircraft", 23.80, 29.20, sweep=0.02),
        SimType("mi-8", "helicopter", 25.35, 21.29),
        SimType("car", "small-vehicle", 4.8, 2.0),
        SimType("truck", "large-vehicle", 10.5, 2.5),
    )
}


@dataclass(frozen=True)
class SimObject:
    """One object on the ground in one pass, with its box in that pass's pixels."""

    id: int
    type_id: str
    category: str
    length_m: float
    width_m: float
    easting: float
    northing: float
    lon: float
    lat: float
    heading_deg: float
    box: OrientedBox


@dataclass
class SimPass:
    """One simulated pass: the GeoTIFF written and the objects it shows."""

    path: Path
    acquired: datetime
    crs: str
    transform: tuple[float, ...]
    shift_px: tuple[int, int]
    objects: list[SimObject] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of objects per category."""
        out: dict[str, int] = {}
        for o in self.objects:
            out[o.category] = out.get(o.category, 0) + 1
        return out


@dataclass
class Scenario:
    """A SIMULATED site scenario: passes and their ground truth."""

    site: str
    gsd_m: float
    passes: list[SimPass]
    truth_path: Path
    simulated: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "SIMULATED": True,
            "site": self.site,
            "gsd_m": self.gsd_m,
            "passes": [
                {
                    "path": str(p.path),
                    "acquired": p.acquired.isoformat(),
                    "crs": p.crs,
                    "transform": list(p.transform),
                    "shift_px": list(p.shift_px),
                    "counts": p.counts(),
                    "objects": [{**asdict(o), "box": o.box.to_dict()} for o in p.objects],
                }
                for p in self.passes
            ],
        }


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone CRS holding a point."""
    info = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))[0]
    return CRS.from_epsg(int(info.code))


def is_simulated(scene: Scene) -> bool:
    """True when a scene was made by this module (metadata flag or GeoTIFF tag)."""
    if scene.metadata.get("simulated"):
        return True
    ds = getattr(scene, "dataset", None)
    try:
        return ds is not None and str(ds.tags().get(SIMULATED_TAG, "")).lower() == "true"
    except Exception:  # noqa: BLE001 - a reader without tags is not simulated
        return False


def simulate_site(
    out_dir: str | Path,
    aoi: Polygon,
    *,
    site: str = "simulated",
    gsd_m: float = 0.5,
    extent_m: float | None = None,
    n_aircraft: int = 10,
    n_helicopters: int = 3,
    n_vehicles: int = 8,
    departed: int = 4,
    arrived: int = 2,
    shift_px: tuple[int, int] = (6, -4),
    start: datetime = datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
    seed: int = 0,
    zones: dict[str, Polygon] | None = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> Scenario:
    """Write two SIMULATED GeoTIFF passes of a site and return their ground truth.

    Args:
        out_dir: folder for ``pass1.tif``, ``pass2.tif`` and ``truth.json`` (created).
        aoi: the site's AOI, WGS84 lon/lat; the scene covers its bounds (plus 5 % margin).
        site: site name recorded in the truth.
        gsd_m: metres per pixel.
        extent_m: if given, the scene is a square of this side (metres) centred on the AOI
            instead of its whole bounds (smaller, faster scenes for tests).
        n_aircraft, n_helicopters, n_vehicles: objects in pass 1.
        departed: aircraft of pass 1 gone in pass 2.
        arrived: aircraft new in pass 2 (on free stands).
        shift_px: ``(dx, dy)``: a ground point at pixel (x, y) in pass 1 is at (x + dx, y + dy) in pass 2.
        start: acquisition time of pass 1 (pass 2 is three days later).
        seed: random seed (same seed, same scenario).
        zones: the site's zones (WGS84 lon/lat polygons). When given, the zones whose name holds
            "runway", "apron" or "helicopter" are drawn where they are on the ground; aircraft
            stand on the aprons, helicopters in the helicopter zone and vehicles along the
            southern edge of the first apron. Without zones a schematic airfield fills the scene.
        bounds: ``(west, south, east, north)`` WGS84 degrees of the scene, instead of the AOI's
            bounds or ``extent_m`` (e.g. the part of a large AOI that holds the aprons).

    Returns:
        The :class:`Scenario` (also written to ``truth.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    c = aoi.centroid
    crs = utm_crs_for(c.x, c.y)
    to_utm = Transformer.from_crs("EPSG:4326", crs.to_wkt(), always_xy=True)
    to_geo = Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True)
    if bounds is not None:
        west, south, east, north = bounds
        xs, ys = to_utm.transform([west, east, west, east], [south, south, north, north])
        w_m, h_m = max(xs) - min(xs), max(ys) - min(ys)
        cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    elif extent_m is None:
        xs, ys = to_utm.transform(*np.asarray(aoi.exterior.coords).T)
        w_m, h_m = (max(xs) - min(xs)) * 1.05, (max(ys) - min(ys)) * 1.05
        cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    else:
        w_m = h_m = float(extent_m)
        cx, cy = to_utm.transform(c.x, c.y)
    width, height = int(math.ceil(w_m / gsd_m)), int(math.ceil(h_m / gsd_m))
    x0, y0 = cx - width * gsd_m / 2, cy + height * gsd_m / 2
    layout: _Layout | _ZoneLayout = _Layout(x0, y0, width * gsd_m, height * gsd_m)
    if zones:
        layout = _ZoneLayout.from_zones(zones, to_utm, box(x0, y0 - height * gsd_m, x0 + width * gsd_m, y0))
    ground = _place_objects(layout, rng, n_aircraft, n_helicopters, n_vehicles, departed, arrived)
    bg_seed = int(rng.integers(1 << 31))
    passes = []
    for i, (objs, shift) in enumerate(zip(ground, [(0, 0), shift_px], strict=True)):
        t = Affine(gsd_m, 0, x0 - shift[0] * gsd_m, 0, -gsd_m, y0 + shift[1] * gsd_m)
        acquired = start + timedelta(days=3 * i)
        sim = [_sim_object(o, t, to_geo) for o in objs]
        rgb = _background(width, height, t, layout, gsd_m, bg_seed, brightness=1.0 + 0.06 * i, shift=shift)
        for o in sim:
            _draw(rgb, o, gsd_m, rng)
        path = out / f"pass{i + 1}.tif"
        _write_geotiff(path, rgb, crs, t, acquired, site)
        passes.append(SimPass(path, acquired, crs.to_string(), tuple(t)[:6], shift, sim))
    scenario = Scenario(site, gsd_m, passes, out / "truth.json")
    scenario.truth_path.write_text(json.dumps(scenario.to_dict(), indent=1))
    return scenario


@dataclass(frozen=True)
class _Layout:
    """Airfield layout in UTM metres: scene origin (top-left) and size."""

    x0: float
    y0: float
    w: float
    h: float

    def runway(self) -> tuple[float, float, float, float]:
        """(east0, north0, east1, north1) of the runway: a 45 m strip at 65 % of the height."""
        n = self.y0 - 0.65 * self.h
        return self.x0 + 0.05 * self.w, n - 22.5, self.x0 + 0.95 * self.w, n + 22.5

    def apron(self) -> tuple[float, float, float, float]:
        """(east0, north0, east1, north1) of the apron, north of the runway."""
        top = self.y0 - 0.12 * self.h
        bottom = self.y0 - 0.52 * self.h
        return self.x0 + 0.1 * self.w, bottom, self.x0 + 0.9 * self.w, top


@dataclass(frozen=True)
class _ZoneLayout:
    """Airfield layout from a site's zones, in UTM metres, clipped to the scene."""

    runways: list[Polygon]
    aprons: list[Polygon]
    helipads: list[Polygon]
    scene: Polygon

    @classmethod
    def from_zones(cls, zones: dict[str, Polygon], to_utm: Transformer, scene: Polygon) -> _ZoneLayout:
        def pick(word: str) -> list[Polygon]:
            out = []
            for name in sorted(zones):
                if word in name.lower():
                    g = transform_geometry(to_utm.transform, zones[name]).intersection(scene)
                    if isinstance(g, Polygon) and g.area > 0:
                        out.append(g)
            return out

        aprons = pick("apron")
        if not aprons:
            raise ValueError("no zone named '*apron*' inside the simulated scene: aircraft need an apron")
        return cls(pick("runway"), aprons, pick("helicopter"), scene)

    def vehicle_strip(self) -> Polygon:
        """The southern 30 m of the first apron (vehicles park there, aircraft do not)."""
        a = self.aprons[0]
        x0, y0, x1, _ = a.bounds
        return a.intersection(box(x0, y0, x1, y0 + 30.0))

    def spots(
        self, cell: float
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]]]:
        """(aircraft stands, helicopter spots, vehicle spots): (easting, northing) in the zones."""

        def grid(
            polys: list[Polygon], step: float, exclude: Polygon | None = None
        ) -> list[tuple[float, float]]:
            out = []
            for poly in polys:
                inner = poly.buffer(-step / 2)
                if exclude is not None:
                    inner = inner.difference(exclude.buffer(step / 2))
                x0, y0, x1, y1 = poly.bounds
                xs, ys = np.meshgrid(np.arange(x0 + step / 2, x1, step), np.arange(y1 - step / 2, y0, -step))
                keep = shapely.contains_xy(inner, xs.ravel(), ys.ravel())
                out += [(float(x), float(y)) for x, y in zip(xs.ravel()[keep], ys.ravel()[keep], strict=True)]
            return out

        strip = self.vehicle_strip()
        stands = grid(self.aprons, cell, exclude=strip)
        helis = grid(self.helipads, 40.0) or grid(self.aprons, 40.0, exclude=strip)[-6:]
        line = LineString([(strip.bounds[0], strip.centroid.y), (strip.bounds[2], strip.centroid.y)])
        vehicles = [
            (line.interpolate(d).x, line.interpolate(d).y) for d in np.arange(20.0, line.length - 10.0, 23.0)
        ]
        vehicles = [v for v in vehicles if strip.buffer(-1.0).contains(shapely.Point(v))]
        return stands, helis, vehicles


def _place_objects(
    layout: _Layout | _ZoneLayout,
    rng: np.random.Generator,
    n_ac: int,
    n_heli: int,
    n_veh: int,
    departed: int,
    arrived: int,
) -> tuple[list[dict], list[dict]]:
    """Ground positions of the objects of pass 1 and pass 2."""
    cell = 60.0
    if isinstance(layout, _ZoneLayout):
        stands, heli_spots, vehicle_spots = layout.spots(cell)
    else:
        e0, n0, e1, n1 = layout.apron()
        # aircraft stands: a grid of 60 m x 60 m cells on the western 75 % of the apron
        stands = [
            (e0 + cell * (i + 0.5), n1 - cell * (j + 0.5))
            for j in range(max(int((n1 - n0) // cell), 1))
            for i in range(max(int(((e1 - e0) * 0.75) // cell), 1))
        ]
        heli_e = e0 + (e1 - e0) * 0.82
        heli_spots = [(heli_e + 30 * (k % 2), n1 - 35 - 35 * k) for k in range(n_heli)]
        vehicle_spots = [(e0 + 20 + k * 23.0, n0 + 12) for k in range(n_veh)]
    if n_heli > len(heli_spots) or n_veh > len(vehicle_spots):
        raise ValueError(f"the zones hold {len(heli_spots)} helicopter and {len(vehicle_spots)} vehicle "
                         f"spots; {n_heli} and {n_veh} asked")  # fmt: skip
    rng.shuffle(stands)
    need = n_ac + arrived
    if need > len(stands):
        raise ValueError(
            f"the apron holds {len(stands)} aircraft stands; {need} asked (larger extent_m or fewer aircraft)"
        )
    ac_types = ["su-24", "su-24", "su-34", "an-26", "il-76"]
    objs: list[dict] = []
    oid = 0
    for k in range(need):
        e, n = stands[k]
        oid += 1
        t = ac_types[int(rng.integers(len(ac_types)))] if k < n_ac else "il-76" if k % 2 else "an-26"
        objs.append(
            {"id": oid, "type": t, "e": e, "n": n, "heading": float(rng.choice([0.0, 90.0, 135.0, 45.0]))}
        )
    # helicopters on the eastern quarter of the apron (or their zone), vehicles along its southern edge
    helis = [
        {"id": oid + 1 + k, "type": "mi-8", "e": heli_spots[k][0], "n": heli_spots[k][1], "heading": 30.0}
        for k in range(n_heli)
    ]
    oid += n_heli
    vehicles = [
        {
            "id": oid + 1 + k,
            "type": "truck" if k % 3 == 0 else "car",
            "e": vehicle_spots[k][0],
            "n": vehicle_spots[k][1],
            "heading": 90.0,
        }
        for k in range(n_veh)
    ]
    aircraft_1, aircraft_new = objs[:n_ac], objs[n_ac:]
    gone = {o["id"] for o in aircraft_1[:departed]}
    pass1 = aircraft_1 + helis + vehicles
    pass2 = (
        [o for o in aircraft_1 if o["id"] not in gone]
        + aircraft_new
        + helis[1:]
        + vehicles[: max(n_veh - 2, 0)]
    )
    return pass1, pass2


def _sim_object(o: dict, t: Affine, to_geo: Transformer) -> SimObject:
    st = SIM_TYPES[o["type"]]
    x, y = ~t * (o["e"], o["n"])
    lon, lat = to_geo.transform(o["e"], o["n"])
    gsd = t.a
    box = OrientedBox.make(x, y, st.length_m / gsd, st.width_m / gsd, o["heading"])
    return SimObject(
        o["id"],
        st.type_id,
        st.category,
        st.length_m,
        st.width_m,
        o["e"],
        o["n"],
        float(lon),
        float(lat),
        box.heading_deg,
        box,
    )


def _noise(shape: tuple[int, int], rng: np.random.Generator, sigma_px: float) -> np.ndarray:
    n = rng.standard_normal(shape).astype(np.float32)
    return cv2.GaussianBlur(n, (0, 0), sigma_px) * sigma_px


def _fill_ground_rect(
    rgb: np.ndarray, t: Affine, rect: tuple[float, float, float, float], color: tuple[int, int, int]
) -> None:
    e0, n0, e1, n1 = rect
    (c0, r0), (c1, r1) = ~t * (e0, n1), ~t * (e1, n0)
    rgb[max(int(r0), 0) : max(int(r1), 0), max(int(c0), 0) : max(int(c1), 0)] = color


def _fill_ground_polygon(rgb: np.ndarray, t: Affine, poly: Polygon, color: tuple[int, int, int]) -> None:
    ring = np.asarray(poly.exterior.coords)
    cols, rows = ~t * (ring[:, 0], ring[:, 1])
    pts = (np.column_stack([cols, rows]) * 16).round().astype(np.int32)
    cv2.fillPoly(rgb, [pts], color, cv2.LINE_AA, shift=4)


def _background(
    w: int,
    h: int,
    t: Affine,
    layout: _Layout | _ZoneLayout,
    gsd: float,
    seed: int,
    brightness: float,
    shift: tuple[int, int],
) -> np.ndarray:
    """Grass, runway with centre-line dashes and a slabbed concrete apron, with texture."""
    rng = np.random.default_rng(seed)
    m = max(abs(shift[0]), abs(shift[1]))
    rgb = np.empty((h, w, 3), dtype=np.float32)
    rgb[:] = (120, 128, 92)
    if isinstance(layout, _ZoneLayout):
        for poly in layout.runways:
            _fill_ground_polygon(rgb, t, poly, (88, 88, 90))
        for poly in layout.aprons + layout.helipads:
            _fill_ground_polygon(rgb, t, poly, (168, 165, 158))
    else:
        _fill_ground_rect(rgb, t, layout.runway(), (88, 88, 90))
        _fill_ground_rect(rgb, t, layout.apron(), (168, 165, 158))
    # the texture belongs to the ground: drawn in pass 1's frame (padded), cropped at the shift
    tex = (
        _noise((h + 2 * m, w + 2 * m), rng, 1.5 / gsd) * 6
        + rng.standard_normal((h + 2 * m, w + 2 * m)).astype(np.float32) * 4
    )
    rgb += tex[m - shift[1] : m - shift[1] + h, m - shift[0] : m - shift[0] + w, None]
    if isinstance(layout, _ZoneLayout):
        for poly in layout.runways:  # centre-line dashes along the runway's long axis
            rect = np.asarray(poly.minimum_rotated_rectangle.exterior.coords)[:4]
            sides = [(rect[i], rect[(i + 1) % 4]) for i in range(4)]
            (p0, p1), (q0, q1) = sorted(sides, key=lambda s: -float(np.hypot(*(s[1] - s[0]))))[:2]
            axis = LineString([(p0 + q1) / 2, (p1 + q0) / 2])
            for d in np.arange(10.0, axis.length - 30.0, 60.0):
                a, b = axis.interpolate(d), axis.interpolate(d + 30.0)
                _fill_ground_polygon(
                    rgb,
                    t,
                    LineString([(a.x, a.y), (b.x, b.y)]).buffer(0.5, cap_style="flat"),
                    (235, 235, 235),
                )
        return np.clip(rgb * brightness, 0, 255).astype(np.uint8)
    e0, n0, e1, n1 = layout.runway()
    nm = (n0 + n1) / 2
    for e in np.arange(e0 + 10, e1 - 30, 60.0):
        _fill_ground_rect(rgb, t, (e, nm - 0.5, e + 30, nm + 0.5), (235, 235, 235))
    a0, b0, a1, b1 = layout.apron()
    for e in np.arange(a0, a1, 7.5):  # expansion joints between concrete slabs
        _fill_ground_rect(rgb, t, (e, b0, e + gsd, b1), (140, 138, 132))
    return np.clip(rgb * brightness, 0, 255).astype(np.uint8)


def _ring(
    points: list[tuple[float, float]], o: SimObject, gsd: float, dx_m: float = 0.0, dy_m: float = 0.0
) -> np.ndarray:
    """Object-frame points (metres forward, metres right) to pixel coordinates (cv2 fixed point)."""
    th = math.radians(o.heading_deg)
    fx, fy = math.sin(th), -math.cos(th)  # forward unit vector in pixels
    rx, ry = -fy, fx  # right
    pts = [
        (o.box.cx + (f * fx + r * rx + dx_m) / gsd, o.box.cy + (f * fy + r * ry - dy_m) / gsd)
        for f, r in points
    ]
    return (np.asarray(pts) * 16).round().astype(np.int32)


def _shapes(st: SimType) -> list[list[tuple[float, float]]]:
    """Top-view outline polygons of a type, in metres (forward, right) about its centre."""
    L, S = st.length_m, st.width_m
    if st.category == "aircraft":
        wf = 0.11 * L
        sw = st.sweep * L
        root_le, root_c, tip_c = 0.12 * L, 0.26 * L, 0.07 * L
        tail_x, tail_s = -0.36 * L, 0.36 * S
        fus = [
            (0.5 * L, 0),
            (0.38 * L, wf / 2),
            (-0.42 * L, wf / 3),
            (-0.5 * L, 0),
            (-0.42 * L, -wf / 3),
            (0.38 * L, -wf / 2),
        ]
        shapes = [fus]
        for s in (1, -1):
            shapes.append(
                [
                    (root_le, s * wf / 2),
                    (root_le - sw, s * S / 2),
                    (root_le - sw - tip_c, s * S / 2),
                    (root_le - root_c, s * wf / 2),
                ]
            )
            shapes.append(
                [
                    (tail_x, s * wf / 3),
                    (tail_x - 0.08 * L, s * tail_s / 2),
                    (tail_x - 0.13 * L, s * tail_s / 2),
                    (tail_x - 0.12 * L, 0),
                ]
            )
        return shapes
    if st.category == "helicopter":
        return [
            [
                (0.5 * L * math.cos(a), 0.5 * S * math.sin(a))
                for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)
            ]
        ]
    return [[(L / 2, S / 2), (L / 2, -S / 2), (-L / 2, -S / 2), (-L / 2, S / 2)]]


def _draw(rgb: np.ndarray, o: SimObject, gsd: float, rng: np.random.Generator) -> None:
    """Draw an object and its shadow (sun from the south-west: shadow to the north-east)."""
    st = SIM_TYPES[o.type_id]
    shadow = (1.6, 1.6) if st.category != "aircraft" else (2.5, 2.5)
    if st.category == "helicopter":
        L, W = st.length_m, st.width_m
        body = [
            (0.28 * L * math.cos(a) + 0.1 * L, 0.09 * L * math.sin(a))
            for a in np.linspace(0, 2 * math.pi, 20, endpoint=False)
        ]
        boom = [(-0.05 * L, 0.02 * L), (-0.5 * L, 0.015 * L), (-0.5 * L, -0.015 * L), (-0.05 * L, -0.02 * L)]
        disc = _shapes(st)[0]
        cv2.fillPoly(
            rgb, [_ring(p, o, gsd, *shadow) for p in (body, boom)], (60, 60, 58), cv2.LINE_AA, shift=4
        )
        overlay = rgb.copy()
        cv2.fillPoly(overlay, [_ring(disc, o, gsd)], (100, 104, 96), cv2.LINE_AA, shift=4)
        cv2.addWeighted(overlay, 0.45, rgb, 0.55, 0, dst=rgb)
        cv2.fillPoly(rgb, [_ring(p, o, gsd) for p in (body, boom)], (86, 98, 74), cv2.LINE_AA, shift=4)
        for k in range(5):  # rotor blades
            a = math.radians(72 * k + 10)
            blade = [(0.1 * L, 0), (0.1 * L + 0.5 * W * math.cos(a), 0.5 * W * math.sin(a))]
            cv2.polylines(
                rgb, [_ring(blade, o, gsd)], False, (50, 52, 50), max(1, int(0.4 / gsd)), cv2.LINE_AA, shift=4
            )
        return
    shapes = _shapes(st)
    cv2.fillPoly(rgb, [_ring(p, o, gsd, *shadow) for p in shapes], (62, 62, 60), cv2.LINE_AA, shift=4)
    tone = int(rng.integers(175, 225)) if st.category == "aircraft" else int(rng.integers(40, 220))
    color = (
        (tone, tone, min(tone + 6, 255))
        if st.category == "aircraft"
        else (tone, int(tone * 0.8), int(tone * 0.6))
    )
    cv2.fillPoly(rgb, [_ring(p, o, gsd) for p in shapes], color, cv2.LINE_AA, shift=4)


def _write_geotiff(path: Path, rgb: np.ndarray, crs: CRS, t: Affine, acquired: datetime, site: str) -> None:
    h, w = rgb.shape[:2]
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": 3, "dtype": "uint8", "crs": crs, "transform": t,
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate", "photometric": "RGB",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(rgb, -1, 0))
        dst.update_tags(
            **{SIMULATED_TAG: "true"},
            TIFFTAG_DATETIME=acquired.strftime("%Y:%m:%d %H:%M:%S"),
            TIFFTAG_IMAGEDESCRIPTION=(
                f"SIMULATED imagery of site {site} made by sitewatch; not a real observation"
            ),
            TIFFTAG_SOFTWARE="sitewatch simulate",
        )
