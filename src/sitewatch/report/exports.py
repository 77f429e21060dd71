"""Export the detections of passes as GIS files: GeoJSON, GeoParquet, KML, CSV, FlatGeobuf, GeoPackage.

One row per detection: WGS84 footprint polygon (null for pixel-space passes), pass and site
fields, ``acquired`` as a UTC timestamp, category, score, best type and role, metric size
(metres), ``heading_deg`` (degrees clockwise from true north, from the measurement) and
``heading_px_deg`` (degrees clockwise from image-up, the box in the scene's pixel frame), and
``change``: the object's status against the previous pass of the export (arrived, remained,
moved, unobserved; empty for the first pass or when the two passes cannot be compared).

Formats are a registry (:data:`FORMATS`). The GIS formats are written by GDAL through pyogrio
with the driver's own options — GeoJSON per RFC 7946 (7 decimals), FlatGeobuf and GeoPackage with
a spatial index, KML (LIBKML) with one ``<TimeStamp>`` and an inline style per placemark —
GeoParquet 1.1 through geopandas/pyarrow with a covering ``bbox`` column, STAC through pystac
(:mod:`sitewatch.report.stac`). Every file is written beside its target and renamed into place
(:func:`sitewatch.output.atomic_output`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from sitewatch.errors import CompareError, ReportError
from sitewatch.output import atomic_output, neutralise_cell
from sitewatch.records import flat_record, label_fields
from sitewatch.types import Detection, Pass

log = logging.getLogger(__name__)

WGS84 = "EPSG:4326"
#: Decimal places of exported lon/lat (1e-7 degree is about 1 cm).
COORDINATE_DECIMALS = 7


@dataclass(frozen=True)
class ExportJob:
    """What a writer gets: the detections table, and the passes and site it came from."""

    frame: gpd.GeoDataFrame
    passes: Sequence[Pass]
    site: Any = None
    overwrite: bool = False


@dataclass(frozen=True)
class ExportFormat:
    """A registered export format.

    Attributes:
        name: format name (``--format``).
        suffix: the file suffix written by default, e.g. ``".fgb"``; empty for a folder format.
        write: ``(job, path) -> None``, writes the file (or folder) ``path``.
        suffixes: other accepted suffixes (lower case), e.g. ``(".json",)``.
        folder: the output is a folder (STAC), not a file.
        ground_only: rows without a ground position (pixel-space passes) are left out.
    """

    name: str
    suffix: str
    write: Callable[[ExportJob, Path], None]
    suffixes: tuple[str, ...] = field(default=())
    folder: bool = False
    ground_only: bool = False

    @property
    def all_suffixes(self) -> tuple[str, ...]:
        return (self.suffix, *self.suffixes) if self.suffix else self.suffixes


FORMATS: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat, *, replace: bool = False) -> None:
    """Add an export format.

    Raises:
        ValueError: the name is taken and ``replace`` is False.
    """
    if fmt.name in FORMATS and not replace:
        raise ValueError(f"export format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt


def format_for(path: str | Path, fmt: str | None = None) -> ExportFormat:
    """The export format for ``path``: ``fmt`` checked against the suffix, or inferred from it.

    Raises:
        ReportError: unknown format, a suffix no format writes, or a suffix of another format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    by_suffix = next((f for f in FORMATS.values() if suffix and suffix in f.all_suffixes), None)
    if fmt is None:
        if by_suffix is not None:
            return by_suffix
        folders = [f.name for f in FORMATS.values() if f.folder]
        if not suffix and folders:
            raise ReportError(f"{path}: no suffix; give --format ({', '.join(folders)} write a folder)")
        known = ", ".join(s for f in FORMATS.values() for s in f.all_suffixes)
        raise ReportError(
            f"{path}: cannot tell the export format from suffix {suffix or '(none)'!r}; use one of {known} "
            "or --format"
        )
    if fmt not in FORMATS:
        raise ReportError(f"unknown export format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    chosen = FORMATS[fmt]
    if chosen.folder:
        if by_suffix is not None:
            raise ReportError(
                f"{path}: --format {fmt} writes a folder, but the suffix {suffix!r} is that of "
                f"{by_suffix.name}"
            )
        return chosen
    if suffix not in chosen.all_suffixes:
        raise ReportError(
            f"{path}: suffix {suffix or '(none)'!r} does not match --format {fmt}; use "
            f"{' or '.join(chosen.all_suffixes)}"
        )
    return chosen


# --- the detections table ---------------------------------------------------------------------

#: Attribute columns of an export, in order (then ``lon``/``lat`` of the footprint centre, and geometry).
COLUMNS = [
    "site", "pass_id", "acquired", "scene", "simulated", "model", "detection_id", "category", "score",
    "best_type", "type_name", "role", "type_probability", "label", "label_level", "label_probability",
    "length_m", "width_m", "length_sigma_m",
    "width_sigma_m", "heading_deg", "change", "cx_px", "cy_px", "length_px", "width_px", "heading_px_deg",
    "candidates",
]  # fmt: skip


def _key(d: Any) -> int:
    return d.id if d.id is not None else id(d)


def change_status(passes: Sequence[Pass], site: Any = None) -> dict[tuple[int, int], str]:
    """Status of each detection against the previous pass: ``{(pass index, detection key): status}``.

    Passes are compared on their detections only (no pixels read, registration from the
    georeference); a pair that cannot be compared (GSDs too different, no overlap) leaves its
    detections without a status.
    """
    from sitewatch.compare import compare_passes

    out: dict[tuple[int, int], str] = {}
    for i in range(1, len(passes)):
        a, b = passes[i - 1], passes[i]
        if not b.detections:
            continue
        try:
            comparison = compare_passes(a, b, site, read_pixels=False)
        except CompareError as e:
            log.info("pass %s vs %s: no change status (%s)", a.id, b.id, e)
            continue
        for obj in (*comparison.objects, *comparison.unobserved):
            if obj.det_b is not None:
                out[(i, _key(obj.det_b))] = obj.status
    return out


#: Decimals of the published values that exports round (the others are written as measured).
PROPERTY_DECIMALS = {"score": 4, "type_probability": 4}


def detection_properties(d: Detection) -> dict[str, Any]:
    """The attribute fields of one detection as exports write them (no pass fields, no ``change``).

    The columns of :func:`~sitewatch.records.flat_record` and :func:`~sitewatch.records.label_fields`
    that :data:`COLUMNS` names, in its order: ``heading_deg`` is degrees clockwise from true north
    (from the measurement; None when not georeferenced); ``heading_px_deg`` the box's long axis in
    the image, clockwise from image-up. ``candidates`` is the list of candidate dicts.
    """
    fields = flat_record(d) | label_fields(d)
    props = {c: fields[c] for c in COLUMNS if c in fields}
    for c, decimals in PROPERTY_DECIMALS.items():
        if props[c] is not None:
            props[c] = round(props[c], decimals)
    return props


def detections_frame(
    passes: Sequence[Pass], site: Any = None, *, with_change: bool = True
) -> gpd.GeoDataFrame:
    """All detections of ``passes`` as a WGS84 GeoDataFrame, one row per detection.

    ``acquired`` is a UTC timestamp column (NaT when unknown); ``change`` the status against the
    previous pass (see :func:`change_status`), computed when ``with_change``.
    """
    status = change_status(passes, site) if with_change and len(passes) > 1 else {}
    rows: list[dict[str, Any]] = []
    geoms = []
    for i, p in enumerate(passes):
        for d in p.detections:
            props = detection_properties(d)
            rows.append(
                {
                    "site": p.site,
                    "pass_id": p.id,
                    "acquired": p.acquired,
                    "scene": p.scene_path,
                    "simulated": bool(p.simulated),
                    "model": p.model,
                    **props,
                    "change": status.get((i, _key(d))),
                    "candidates": json.dumps(props["candidates"]),
                }
            )
            geoms.append(shapely.Polygon(d.footprint) if d.footprint else None)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["acquired"] = pd.to_datetime(df["acquired"], utc=True).astype("datetime64[ms, UTC]")
    for col in ("pass_id", "detection_id"):
        df[col] = df[col].astype("Int64")
    for col in (
        "length_m",
        "width_m",
        "length_sigma_m",
        "width_sigma_m",
        "heading_deg",
        "type_probability",
        "label_probability",
    ):
        df[col] = df[col].astype("float64")
    df["simulated"] = df["simulated"].astype(bool)
    frame = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)
    # planar centroid of a few-metre polygon: exact enough in lon/lat (sub-millimetre)
    centroids = shapely.centroid(frame.geometry.values)
    frame["lon"] = shapely.get_x(centroids)
    frame["lat"] = shapely.get_y(centroids)
    return frame


def _located(frame: gpd.GeoDataFrame, fmt: str) -> gpd.GeoDataFrame:
    located = frame[frame.geometry.notna()]
    if len(located) < len(frame):
        log.info(
            "%d pixel-space detections left out of %s (no ground position)", len(frame) - len(located), fmt
        )
    return located


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if c != "geometry" and (frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]))
    ]


def _neutralised(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = frame.copy()
    for col in _text_columns(out):
        out[col] = [neutralise_cell(v) if isinstance(v, str) else v for v in out[col]]
    return out


# --- writers ----------------------------------------------------------------------------------


def _write_geojson(job: ExportJob, path: Path) -> None:
    """RFC 7946: WGS84 lon/lat, no ``crs`` member, 7 decimals, polygons wound right-hand."""
    pyogrio.write_dataframe(
        job.frame, path, driver="GeoJSON", layer="detections",
        layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": str(COORDINATE_DECIMALS),
                       "WRITE_NAME": "NO"},
    )  # fmt: skip


def _write_flatgeobuf(job: ExportJob, path: Path) -> None:
    """FlatGeobuf with its packed Hilbert R-tree (which cannot hold null geometries)."""
    frame = _located(job.frame, "FlatGeobuf")
    pyogrio.write_dataframe(
        frame, path, driver="FlatGeobuf", layer="detections", layer_options={"SPATIAL_INDEX": "YES"}
    )


def _write_parquet(job: ExportJob, path: Path) -> None:
    """GeoParquet 1.1: WKB geometry, a covering ``bbox`` struct column, timestamps as timestamps."""
    job.frame.to_parquet(path, index=False, schema_version="1.1.0", write_covering_bbox=True)


def _write_csv(job: ExportJob, path: Path) -> None:
    """Plain CSV: geometry as WKT plus centre lon/lat columns; text cells spreadsheet-safe."""
    frame = _neutralised(job.frame)
    df = pd.DataFrame(frame.drop(columns="geometry"))
    df["acquired"] = [t.isoformat().replace("+00:00", "Z") if pd.notna(t) else "" for t in df["acquired"]]
    df["wkt"] = [
        shapely.to_wkt(g, rounding_precision=COORDINATE_DECIMALS) if g is not None else ""
        for g in frame.geometry
    ]
    df.to_csv(path, index=False)


def _write_gpkg(job: ExportJob, path: Path) -> None:
    """GeoPackage: ``detections`` (with pass columns), ``passes`` (scanned footprints), ``aoi`` and
    ``zones``."""
    # GeoPackage 1.2: what GDAL < 3.8 (e.g. Debian 12's 3.6) reads without a version warning
    pyogrio.write_dataframe(
        job.frame,
        path,
        driver="GPKG",
        layer="detections",
        geometry_type="Polygon",
        dataset_options={"VERSION": "1.2"},
    )
    passes = list(job.passes)
    if passes:
        pframe = gpd.GeoDataFrame(
            {
                "pass_id": pd.array([p.id for p in passes], dtype="Int64"),
                "site": [p.site for p in passes],
                "acquired": pd.to_datetime([p.acquired for p in passes], utc=True).astype(
                    "datetime64[ms, UTC]"
                ),
                "scene": [p.scene_path for p in passes],
                "simulated": [bool(p.simulated) for p in passes],
                "model": [p.model for p in passes],
                "gsd_m": pd.array([p.gsd_m for p in passes], dtype="Float64"),
                "aoi_coverage": pd.array(
                    [p.aoi_coverage for p in passes], dtype="Float64"
                ),  # None in pixel space
                "detections": [len(p.detections) for p in passes],
            },
            geometry=gpd.GeoSeries(
                [shapely.from_wkt(p.footprint_wkt) if p.footprint_wkt else None for p in passes], crs=WGS84
            ),
            crs=WGS84,
        )
        pyogrio.write_dataframe(
            pframe, path, driver="GPKG", layer="passes", append=True, promote_to_multi=True
        )
    site = job.site
    if site is not None and getattr(site, "aoi", None) is not None:
        aoi = gpd.GeoDataFrame(
            {"site": [site.name], "title": [site.title], "kind": [site.kind]}, geometry=[site.aoi], crs=WGS84
        )
        pyogrio.write_dataframe(aoi, path, driver="GPKG", layer="aoi", append=True, promote_to_multi=True)
        if site.zones:
            zones = gpd.GeoDataFrame(
                {"site": [site.name] * len(site.zones), "zone": list(site.zones)},
                geometry=list(site.zones.values()),
                crs=WGS84,
            )
            pyogrio.write_dataframe(
                zones, path, driver="GPKG", layer="zones", append=True, promote_to_multi=True
            )


#: KML colours (RGB hex) per category, and line style per change status.
KML_CATEGORY_COLOURS = {
    "aircraft": "#1F77B4", "helicopter": "#9467BD", "ship": "#17BECF", "large-vehicle": "#FF7F0E",
    "small-vehicle": "#BCBD22",
}  # fmt: skip
KML_CHANGE_PENS = {
    "arrived": ("#2CA02C", 4),
    "moved": ("#FFD700", 4),
    "remained": ("#FFFFFF", 2),
    "unobserved": ("#7F7F7F", 2),
}


def kml_name(row: Any) -> str:
    """A readable placemark name: ``"Il-76MD 0.23 · aircraft"``.

    The label (the most specific level of type → family → role that may be said, see
    docs/identify.md "Hierarchy") with its probability, then the category. When no level reaches
    the label threshold, the best type with its (low) probability, so the name never claims more
    than the number beside it; the category and detector score when there are no candidates.
    """
    if row["label_level"] not in (None, "category") and isinstance(row["label"], str):
        text = f"{row['label']} {row['label_probability']:.2f} · {row['category']}"
    elif isinstance(row["type_name"], str) and row["type_name"]:
        text = f"{row['type_name']} {row['type_probability']:.2f} · {row['category']}"
    else:
        text = f"{row['category']} {row['score']:.2f}"
    return neutralise_cell(text) or text


def _kml_style(category: str, change: str | None) -> str:
    fill = KML_CATEGORY_COLOURS.get(category, "#D62728")
    pen, width = KML_CHANGE_PENS.get(change if isinstance(change, str) else "", (fill, 2))
    return f"PEN(c:{pen},w:{width}px);BRUSH(fc:{fill}66)"


def _kml_description(row: Any) -> str:
    parts = [f"pass {row['pass_id']}", f"score {row['score']:.2f}"]
    if pd.notna(row["length_m"]):
        parts.append(f"{row['length_m']:.1f} × {row['width_m']:.1f} m")
    if isinstance(row["change"], str):
        parts.append(row["change"])
    if row["simulated"]:
        parts.append("SIMULATED")
    return neutralise_cell(", ".join(parts)) or ""


def _write_kml(job: ExportJob, path: Path) -> None:
    """KML through GDAL's LIBKML driver: name, description, ``<TimeStamp>`` and style per placemark."""
    if "LIBKML" not in pyogrio.list_drivers(write=True):
        raise ReportError(
            f"{path}: this GDAL build has no LIBKML driver (needed for KML time stamps and styles)"
        )
    located = _neutralised(_located(job.frame, "KML"))
    out = gpd.GeoDataFrame(
        {
            "Name": [kml_name(r) for _, r in located.iterrows()],
            "description": [_kml_description(r) for _, r in located.iterrows()],
            "timestamp": located["acquired"],
            "OGR_STYLE": [
                _kml_style(c, s) for c, s in zip(located["category"], located["change"], strict=True)
            ],
            **{
                c: located[c]
                for c in (
                    "site",
                    "pass_id",
                    "detection_id",
                    "category",
                    "score",
                    "best_type",
                    "label",
                    "length_m",
                    "width_m",
                    "heading_deg",
                    "change",
                    "simulated",
                )
            },
        },
        geometry=located.geometry,
        crs=WGS84,
    )
    for col in ("pass_id", "detection_id"):  # LIBKML keeps 64-bit integers as text
        out[col] = out[col].astype("Int32")
    pyogrio.write_dataframe(out, path, driver="LIBKML", layer="detections")


def _write_stac(job: ExportJob, path: Path) -> None:
    from sitewatch.report.stac import write_stac

    write_stac(job.passes, job.site, path, frame=job.frame, overwrite=job.overwrite)


for _fmt in (
    ExportFormat("geojson", ".geojson", _write_geojson, suffixes=(".json",)),
    ExportFormat("geoparquet", ".parquet", _write_parquet, suffixes=(".geoparquet",)),
    ExportFormat("kml", ".kml", _write_kml, ground_only=True),
    ExportFormat("csv", ".csv", _write_csv),
    ExportFormat("flatgeobuf", ".fgb", _write_flatgeobuf, ground_only=True),
    ExportFormat("gpkg", ".gpkg", _write_gpkg),
    ExportFormat("stac", "", _write_stac, folder=True),
):
    register_format(_fmt)


def export_passes(
    passes: Sequence[Pass], site: Any, fmt: str | None, out_path: str | Path, *, overwrite: bool = False
) -> Path:
    """Write the detections of ``passes`` to ``out_path``.

    Args:
        passes: the passes (with detections) to export, oldest first.
        site: the :class:`~sitewatch.sites.Site` (AOI and zones for GeoPackage and STAC; change
            status by zone), its name, or None.
        fmt: a name in :data:`FORMATS`, or None to infer it from the suffix of ``out_path``.
        out_path: file (folder for STAC) to write.
        overwrite: replace an existing file; without it an existing target is refused.

    Returns:
        The path written.

    Raises:
        ReportError: unknown format, a suffix that does not match it, a target that exists (and
            ``overwrite`` is False) or is not a regular file, or the file cannot be written.
    """
    chosen = format_for(out_path, fmt)
    path = Path(out_path)
    site_obj = site if getattr(site, "aoi", None) is not None else None
    frame = detections_frame(passes, site_obj)
    if any(p.simulated for p in passes):
        log.info("exporting SIMULATED passes (column 'simulated' is true)")
    job = ExportJob(frame, list(passes), site_obj, overwrite)
    try:
        if chosen.folder:
            chosen.write(job, path)
        else:
            with atomic_output(path, overwrite=overwrite, what=f"{chosen.name} export") as tmp:
                chosen.write(job, tmp)
    except ReportError:
        raise
    except (OSError, RuntimeError, ValueError, pyogrio.errors.DataSourceError) as e:
        raise ReportError(
            f"{path}: cannot write {chosen.name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e
    name = getattr(site, "name", site)
    log.info("exported %d detections of %d passes of %s to %s", len(frame), len(passes), name, path)
    return path


def exported_count(passes: Sequence[Pass], fmt: str) -> int:
    """How many detections of ``passes`` a ``fmt`` export holds (ground-only formats drop pixel-space
    ones)."""
    chosen = FORMATS[fmt]
    if chosen.ground_only:
        return sum(1 for p in passes for d in p.detections if d.footprint)
    return sum(len(p.detections) for p in passes)
