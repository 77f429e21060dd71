"""The :class:`Site` value object: a watched place with an AOI, zones and priors, and its GeoJSON form.

Geometry is WGS84 longitude/latitude (EPSG:4326, degrees). A site's GeoJSON form is a
FeatureCollection with one ``role: "aoi"`` feature carrying the site's properties and one
``role: "zone"`` feature per zone; a watchlist file is the concatenation of such features.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pyproj import Geod
from shapely.geometry import Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import SiteError
from sitewatch.imagery.base import Scene

#: Kinds of watched site.
KINDS: tuple[str, ...] = ("airbase", "naval-base", "air-defence-site", "depot", "other")

#: A zone may stick out of its AOI by at most this fraction of its own area.
ZONE_OUTSIDE_TOLERANCE = 0.10

#: Largest accepted AOI, km² (larger areas are regions, not sites).
MAX_AOI_KM2 = 2500.0

#: Longest site name, characters (names become file names of reports).
MAX_NAME_LEN = 64

#: Widest accepted AOI extent in longitude or latitude, degrees (2500 km² is well under 1° a side
#: except near the poles; the check stops whole-world boxes whose geodesic area degenerates).
MAX_SPAN_DEG = 10.0

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_GEOD = Geod(ellps="WGS84")


def lookup_key(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a name: ``"Ḥmeimim  Air-Base"`` ->
    ``"hmeimimairbase"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c for c in stripped.casefold() if c.isalnum())


def slugify(text: str) -> str:
    """A site name from free text: ``"Al Udeid"`` -> ``"al-udeid"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = decomposed.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def area_km2(geom: BaseGeometry) -> float:
    """Geodesic area of a lon/lat geometry on the WGS84 ellipsoid, km² (edges densified to 0.1°)."""
    import shapely

    return abs(_GEOD.geometry_area_perimeter(shapely.segmentize(geom, 0.1))[0]) / 1e6


def _as_polygon(geom: Any, what: str) -> Polygon:
    if not isinstance(geom, Polygon):
        kind = getattr(geom, "geom_type", type(geom).__name__)
        raise SiteError(f"{what}: expected a Polygon, got {kind}")
    if geom.is_empty or not geom.is_valid:
        from shapely.validation import explain_validity

        raise SiteError(f"{what}: invalid polygon ({explain_validity(geom)})")
    x0, y0, x1, y1 = geom.bounds
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise SiteError(f"{what}: coordinates are not WGS84 longitude/latitude degrees")
    if x1 - x0 > 180:
        raise SiteError(f"{what}: spans {x1 - x0:.0f}° of longitude: an area across the 180° meridian is "
                        "not supported (split it into parts east and west of 180°)")  # fmt: skip
    if x1 - x0 > MAX_SPAN_DEG or y1 - y0 > MAX_SPAN_DEG:
        raise SiteError(
            f"{what}: spans {x1 - x0:.1f}° x {y1 - y0:.1f}°: too large for a site (max {MAX_AOI_KM2:.0f} km²)"
        )
    return geom


@dataclass(eq=True)
class Site:
    """A watched site.

    Attributes:
        name: slug key, e.g. ``"hmeimim"``.
        title: display name, e.g. ``"Hmeimim (Khmeimim) Air Base"``.
        aliases: alternative names and spellings (lookup is case- and accent-insensitive).
        kind: one of :data:`KINDS`.
        country: ISO 3166-1 alpha-2 code of the territory.
        aoi: area of interest, WGS84 lon/lat polygon.
        zones: named parts of the site (runway, apron, piers ...), WGS84 lon/lat polygons.
        priors: expectations that inform identification, e.g.
            ``{"operators": ["RU", "SY"], "types": {"su-24": 2.0}}`` (type weights are relative; 1 = neutral).
        notes: free text (accuracy caveats, context).
        sources: public references for the location and priors.

    Raises:
        SiteError: invalid name, kind or geometry, or a zone well outside the AOI.
    """

    name: str
    title: str
    kind: str
    country: str
    aoi: Polygon
    aliases: list[str] = field(default_factory=list)
    zones: dict[str, Polygon] = field(default_factory=dict)
    priors: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _SLUG.match(self.name):
            raise SiteError(
                f"site name {self.name!r}: use lower-case letters, digits and hyphens (e.g. 'al-udeid')"
            )
        if len(self.name) > MAX_NAME_LEN:
            raise SiteError(
                f"site name {self.name[:24]}…: {len(self.name)} characters; at most {MAX_NAME_LEN}"
            )
        if self.kind not in KINDS:
            raise SiteError(
                f"site {self.name!r}: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}"
            )
        self.aoi = _as_polygon(self.aoi, f"site {self.name!r} AOI")
        km2 = area_km2(self.aoi)
        if km2 > MAX_AOI_KM2:
            raise SiteError(
                f"site {self.name!r} AOI: {km2:.0f} km² is too large for a site (max {MAX_AOI_KM2:.0f} km²)"
            )
        for zname, zone in self.zones.items():
            what = f"site {self.name!r} zone {zname!r}"
            _as_polygon(zone, what)
            outside = zone.difference(self.aoi).area / zone.area
            if outside > ZONE_OUTSIDE_TOLERANCE:
                raise SiteError(f"{what}: {outside:.0%} of it lies outside the AOI")
        self.aliases = [str(a) for a in self.aliases]
        self.sources = [str(s) for s in self.sources]

    @property
    def names(self) -> list[str]:
        """Name, title and aliases: every string the site can be looked up by."""
        return [self.name, self.title, *self.aliases]

    def matches(self, query: str) -> bool:
        """True when ``query`` is this site's name, title or an alias
        (case/accent/punctuation-insensitive)."""
        key = lookup_key(query)
        return bool(key) and any(lookup_key(n) == key for n in self.names)

    def zone_at(self, lon: float, lat: float) -> str | None:
        """The first zone containing a WGS84 point, or None."""
        from shapely.geometry import Point

        p = Point(lon, lat)
        return next((z for z, poly in self.zones.items() if poly.covers(p)), None)

    def coverage_of(self, scene: Scene) -> float | None:
        """Fraction (0..1) of the AOI the scene covers; None for pixel-space scenes (unknown, not zero)."""
        from sitewatch.imagery.georef import coverage

        return coverage(scene, self.aoi)

    def to_features(self) -> list[dict[str, Any]]:
        """GeoJSON features: the AOI (with the site's properties) then one per zone."""
        props = {
            "site": self.name,
            "role": "aoi",
            "title": self.title,
            "kind": self.kind,
            "country": self.country,
            "aliases": list(self.aliases),
            "priors": self.priors,
            "notes": self.notes,
            "sources": list(self.sources),
        }
        feats = [{"type": "Feature", "properties": props, "geometry": mapping(self.aoi)}]
        for zname, zone in self.zones.items():
            feats.append(
                {
                    "type": "Feature",
                    "properties": {"site": self.name, "role": "zone", "zone": zname},
                    "geometry": mapping(zone),
                }
            )
        return [_plain(f) for f in feats]

    def to_geojson(self) -> dict[str, Any]:
        """This site as a GeoJSON FeatureCollection (round-trips through :meth:`from_geojson`)."""
        return {"type": "FeatureCollection", "features": self.to_features()}

    @classmethod
    def from_geojson(cls, obj: dict[str, Any]) -> Site:
        """The one site in a FeatureCollection (or a single AOI Feature).

        Raises:
            SiteError: not exactly one site, or an invalid definition.
        """
        sites = sites_from_geojson(obj)
        if len(sites) != 1:
            raise SiteError(f"expected one site in the GeoJSON, found {len(sites)}")
        return sites[0]


def _plain(obj: Any) -> Any:
    """Tuples (as shapely's ``mapping`` gives) to lists, so dicts compare equal to parsed JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def sites_from_geojson(obj: dict[str, Any], *, source: str = "GeoJSON") -> list[Site]:
    """All sites in a FeatureCollection (or one Feature), in order of their AOI features.

    A feature's site is its ``site`` property (or ``name``); ``role`` is ``"aoi"`` (default) or
    ``"zone"`` (with a ``zone`` name). AOI properties: ``title``, ``kind`` (required), ``country``,
    ``aliases``, ``priors``, ``notes``, ``sources``.

    Raises:
        SiteError: malformed GeoJSON, a zone of an unknown site, duplicate sites, or an invalid site.
    """
    if (
        not isinstance(obj, dict)
        or not isinstance(obj.get("type"), str)
        or obj["type"] not in {"FeatureCollection", "Feature"}
    ):
        raise SiteError(f"{source}: not a GeoJSON Feature or FeatureCollection")
    features = obj.get("features") if obj["type"] == "FeatureCollection" else [obj]
    if not isinstance(features, list):
        raise SiteError(f"{source}: 'features' is not a list")
    aois: dict[str, dict[str, Any]] = {}
    zones: dict[str, dict[str, Polygon]] = {}
    for i, feat in enumerate(features):
        if not isinstance(feat, dict):
            raise SiteError(f"{source}: feature {i} is not a GeoJSON object")
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            raise SiteError(f"{source}: feature {i} has 'properties' that are not an object")
        raw = props.get("site") or props.get("name")
        if not raw:
            raise SiteError(f"{source}: feature {i} has no 'site' (or 'name') property")
        name = str(raw) if _SLUG.match(str(raw)) else slugify(str(raw))
        try:
            geom = shape(feat["geometry"])
        except Exception as e:  # noqa: BLE001 - shapely raises several kinds on bad GeoJSON geometry
            raise SiteError(f"{source}: feature {i} ({name}) has no valid geometry ({e})") from e
        role = props.get("role", "aoi")
        if not isinstance(role, str):
            raise SiteError(f"{source}: feature {i} has a role that is not text ({role!r})")
        if role == "zone":
            zname = props.get("zone")
            if not zname:
                raise SiteError(f"{source}: zone feature {i} of site {name!r} has no 'zone' name")
            zones.setdefault(name, {})[str(zname)] = geom
        elif role == "aoi":
            if name in aois:
                raise SiteError(f"{source}: site {name!r} is defined twice")
            aois[name] = {"props": props, "geom": geom, "raw": str(raw)}
        else:
            raise SiteError(f"{source}: feature {i} has unknown role {role!r} (expected 'aoi' or 'zone')")
    orphans = sorted(set(zones) - set(aois))
    if orphans:
        raise SiteError(f"{source}: zones of site(s) without an AOI feature: {', '.join(orphans)}")
    sites = []
    for name, entry in aois.items():
        props = entry["props"]
        if not props.get("kind"):
            raise SiteError(f"{source}: site {name!r} has no 'kind' (one of {', '.join(KINDS)})")
        try:
            sites.append(
                Site(
                    name=name,
                    title=str(props.get("title") or entry["raw"]),
                    kind=str(props["kind"]),
                    country=str(props.get("country") or ""),
                    aoi=entry["geom"],
                    aliases=list(props.get("aliases") or []),
                    zones=zones.get(name, {}),
                    priors=dict(props.get("priors") or {}),
                    notes=str(props.get("notes") or ""),
                    sources=list(props.get("sources") or []),
                )
            )
        except SiteError as e:
            raise SiteError(f"{source}: {e}") from e
        except (TypeError, ValueError) as e:
            raise SiteError(f"{source}: site {name!r} has malformed properties ({e})") from None
    return sites


def sites_to_geojson(sites: list[Site], **members: Any) -> dict[str, Any]:
    """Sites as one FeatureCollection (extra top-level ``members`` such as a ``note`` are kept)."""
    return {"type": "FeatureCollection", **members, "features": [f for s in sites for f in s.to_features()]}
