"""``sitewatch detect IMAGE``: find aircraft, helicopters, ships and vehicles in one image."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from sitewatch.cli.options import (
    force_option,
    gsd_option,
    json_option,
    model_option,
    output_option,
    overwrite_option,
)
from sitewatch.detect.sliced import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP_PX, THOROUGH
from sitewatch.errors import GeoreferenceError, SceneError
from sitewatch.types import CATEGORIES, Detection

#: Show a progress bar from this many tiles on.
_PROGRESS_MIN_TILES = 8


def open_image(source: str, gsd_m: float | None, force: bool = False):  # noqa: ANN201 - Scene, imported lazily
    """Open an image through the imagery layer (imported lazily: it pulls GDAL)."""
    from sitewatch.imagery import open_scene

    return open_scene(source, gsd_m=gsd_m, force=force)


def check_pixel_budget(scene) -> None:  # noqa: ANN001 - a Scene
    """Refuse whole-image detection on an image above ``Settings().detect_max_pixels``.

    Raises:
        SceneError: naming the image, its size and the budget.
    """
    from sitewatch.settings import Settings

    budget = Settings().detect_max_pixels
    if scene.width * scene.height > budget:
        side = int(budget**0.5)
        raise SceneError(f"{scene.path}: {scene.width}x{scene.height} px is over the whole-image detection "
                         f"budget ({side}x{side} px): scan a site's AOI instead (sitewatch scan --site) or "
                         "raise SITEWATCH_DETECT_MAX_PIXELS")  # fmt: skip


def build_detector(model: str | None, providers: tuple[str, ...], **options: Any):  # noqa: ANN201
    """An :class:`~sitewatch.detect.onnx.OnnxDetector`, with option errors as click errors."""
    from sitewatch.detect.onnx import OnnxDetector

    try:
        return OnnxDetector(model, providers=list(providers) or None, **options)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def run_detection(detector, scene, gsd_m: float | None) -> list[Detection]:  # noqa: ANN001
    """Detect with a progress bar on stderr for big scenes; read failures become one-line SceneErrors."""
    import rasterio

    from sitewatch.cli.console import err_console, progress

    total = len(detector.plan(scene, gsd_m=gsd_m))
    show = total >= _PROGRESS_MIN_TILES and err_console.is_terminal
    try:
        with progress(disable=not show) as bar:
            task = bar.add_task(Path(scene.path).name, total=total)
            return detector.detect(
                scene, gsd_m=gsd_m, progress=lambda done, _t: bar.update(task, completed=done)
            )
    except (rasterio.errors.RasterioError, MemoryError) as e:
        raise SceneError(
            f"{scene.path}: cannot read pixels ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from e


def with_footprints(scene, detections: list[Detection]) -> list[Detection]:  # noqa: ANN001
    """Detections with WGS84 footprints (corner lon/lat) when the scene is georeferenced."""
    if not scene.georeferenced or not detections:
        return detections
    from sitewatch.imagery.georef import box_corners_lonlat

    lonlat = box_corners_lonlat(scene, [d.box for d in detections])
    return [
        replace(d, footprint=tuple((round(float(x), 8), round(float(y), 8)) for x, y in ring))
        for d, ring in zip(detections, lonlat, strict=True)
    ]


def identify(
    scene, detections: list[Detection], gsd_m: float | None, site_name: str | None, refine: bool | None = None
) -> list[Detection]:  # noqa: ANN001
    """Measurements (metres ± σ) and type candidates, when the GSD or a georeference is known.

    Args:
        scene: the scene detected on.
        detections: its detections (scene pixels).
        gsd_m: ``--gsd``, or None for the scene's own.
        site_name: a watched site whose type priors apply, or None.
        refine: refine aircraft boxes on the scene's pixels before measuring; None: the
            ``identify.refine`` setting (default on).
    """
    from sitewatch.identify import IdentifySettings, identify_detections

    gsd = gsd_m or scene.gsd_m
    if not detections or (gsd is None and not scene.georeferenced):
        return detections
    priors = None
    if site_name is not None:
        from sitewatch.sites import get_site

        priors = get_site(site_name).priors or None
    return identify_detections(
        detections,
        gsd_m=gsd,
        crs=scene.crs if scene.georeferenced else None,
        transform=scene.transform if scene.georeferenced else None,
        off_nadir_deg=scene.metadata.get("off_nadir_deg"),
        view_azimuth_deg=scene.metadata.get("view_azimuth_deg"),
        priors=priors,
        scene=scene,
        settings=IdentifySettings() if refine is None else IdentifySettings(refine=refine),
    )


#: Detections identified per call while streaming (bounded memory on scenes with 10⁵ objects).
IDENTIFY_CHUNK = 512
#: Bytes of a standard-output document held in memory before it spools to a temporary file.
STDOUT_SPOOL_BYTES = 16 * 2**20


def iter_identified(
    scene, detections: list[Detection], gsd_m: float | None, site_name: str | None, refine: bool | None = None
) -> Iterator[Detection]:  # noqa: ANN001
    """:func:`identify`, :data:`IDENTIFY_CHUNK` detections at a time: an identified detection (its
    candidates and measurement) need not outlive its write."""
    for i in range(0, len(detections), IDENTIFY_CHUNK):
        yield from identify(scene, detections[i : i + IDENTIFY_CHUNK], gsd_m, site_name, refine)


def to_geojson(scene, detections: list[Detection], model: str) -> dict[str, Any]:  # noqa: ANN001
    """An RFC 7946 FeatureCollection: one WGS84 polygon per detection, 7 decimals, rings counterclockwise.

    Feature properties are those of ``sitewatch export``
    (:func:`sitewatch.report.exports.detection_properties`) plus ``scene`` and ``model``: ``heading_deg`` is
    from true north, ``heading_px_deg`` in the image.
    """
    return {"type": "FeatureCollection", "features": list(geojson_features(scene, detections, model))}


def geojson_features(scene, detections: Iterable[Detection], model: str) -> Iterator[dict[str, Any]]:  # noqa: ANN001
    """The features of :func:`to_geojson`, one detection at a time."""
    import shapely
    from shapely.geometry import mapping
    from shapely.geometry.polygon import orient

    from sitewatch.report.exports import COORDINATE_DECIMALS, detection_properties

    if not scene.georeferenced:
        raise GeoreferenceError(
            f"{scene.path}: not georeferenced; --geojson needs a CRS and transform (use --json)"
        )
    for d in detections:
        geom = None
        if d.footprint:
            poly = orient(
                shapely.Polygon(d.footprint), sign=1.0
            )  # RFC 7946 §3.1.6: exterior counterclockwise
            geom = mapping(shapely.set_precision(poly, 10**-COORDINATE_DECIMALS, mode="pointwise"))
        props = {"scene": str(scene.path), "model": model, **detection_properties(d)}
        yield {"type": "Feature", "geometry": geom, "properties": props}


def _geojson_text(scene, detections: Iterable[Detection], model: str) -> Iterator[str]:  # noqa: ANN001
    """``json.dumps(to_geojson(...))``, one feature at a time."""
    yield '{"type": "FeatureCollection", "features": ['
    for k, feature in enumerate(geojson_features(scene, detections, model)):
        yield (", " if k else "") + json.dumps(feature)
    yield "]}"


def _write(text: str | Iterable[str], out: str | None, overwrite: bool = False) -> None:
    """Write ``text`` (or its pieces, one at a time: a scene's detections need not be one string)
    and a newline to ``out`` atomically, or to standard output.

    Standard output gets the whole document or nothing: the pieces are spooled (in memory up to
    :data:`STDOUT_SPOOL_BYTES`, then in a temporary file) and copied out only once the last one is
    made, so a failure part-way (an unreadable window, an interrupt) leaves no truncated JSON for
    the next program in a pipe to read.
    """
    pieces = [text] if isinstance(text, str) else text
    if out is None:
        with tempfile.SpooledTemporaryFile(STDOUT_SPOOL_BYTES, mode="w+", encoding="utf-8") as spool:
            spool.writelines(pieces)
            spool.write("\n")
            spool.seek(0)
            while chunk := spool.read(2**16):
                sys.stdout.write(chunk)
        return
    from sitewatch.output import atomic_output

    with (
        atomic_output(out, overwrite=overwrite, what="detections") as tmp,
        tmp.open("w", encoding="utf-8") as f,
    ):
        f.writelines(pieces)
        f.write("\n")


def _json_array(detections: Iterable[Detection], indent: int | None) -> Iterator[str]:
    """``json.dumps([d.to_dict() for d in detections], indent=indent)``, one detection at a time."""
    pad = "" if indent is None else "\n" + " " * indent
    sep = ", " if indent is None else ","
    k = -1
    for k, d in enumerate(detections):
        body = json.dumps(d.to_dict(), indent=indent)
        if indent is not None:
            body = body.replace("\n", pad)
        yield ("[" if k == 0 else sep) + pad + body
    yield "[]" if k < 0 else ("" if indent is None else "\n") + "]"


class _Tally:
    """What the summary table needs of each detection, kept while the detections stream past."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[float, float, Any, str | None]]] = {c: [] for c in CATEGORIES}
        self.gsd_m: float | None = None

    def watch(self, detections: Iterable[Detection]) -> Iterator[Detection]:
        for d in detections:
            m = d.measurement
            if self.gsd_m is None and m is not None and m.gsd_m:
                self.gsd_m = m.gsd_m
            best = d.best_type
            name = best.name if best is not None and best.type_id != "unknown" else None
            self.rows.setdefault(d.category, []).append((d.score, d.box.length, m, name))
            yield d

    @property
    def total(self) -> int:
        return sum(len(r) for r in self.rows.values())


def _summary(scene, tally: _Tally, detector, seconds: float, out: str | None) -> None:  # noqa: ANN001
    from collections import Counter

    from rich.table import Table

    from sitewatch.cli.console import out_console

    gsd_m = tally.gsd_m or scene.gsd_m
    gsd = f"{gsd_m:.3g} m" if gsd_m else "unknown GSD"
    measured = any(m is not None for rows in tally.rows.values() for _, _, m, _ in rows)
    table = Table(
        title=Path(scene.path).name,
        caption=f"{scene.width}x{scene.height} px, {gsd}, {detector.label}, {seconds:.1f} s",
    )
    cols = ["category", "count", "mean score", "median length px"] + (
        ["median length m (±1σ)", "most likely types"] if measured else []
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("category", "most likely types") else "right")
    for cat in CATEGORIES:
        rows = tally.rows.get(cat, [])
        if rows:
            scores = sorted(r[0] for r in rows)
            lengths = sorted(r[1] for r in rows)
            row = [cat, str(len(rows)), f"{sum(scores) / len(rows):.2f}", f"{lengths[len(rows) // 2]:.0f}"]
            if measured:
                ms = sorted((r[2] for r in rows if r[2]), key=lambda m: m.length_m)
                mid = ms[len(ms) // 2] if ms else None
                types = Counter(r[3] for r in rows if r[3] is not None)
                row += [
                    f"{mid.length_m:.1f} ± {mid.length_sigma_m:.1f}" if mid else "",
                    ", ".join(f"{n} ×{k}" for n, k in types.most_common(3)),
                ]
            table.add_row(*row)
    table.add_row("total", str(tally.total), *[""] * (len(cols) - 2), style="bold")
    out_console.print(table)
    if out:
        out_console.print(f"detections written to {out}")


@click.command("detect")
@click.argument("image")
@gsd_option
@force_option
@json_option
@click.option("--jsonl", "as_jsonl", is_flag=True, help="One JSON object per line instead of an array.")
@output_option(
    "Write the JSON/GeoJSON to this file.", old=("--out",), type=click.Path(dir_okay=False), default=None
)
@overwrite_option
@click.option(
    "--geojson",
    "as_geojson",
    is_flag=True,
    help="GeoJSON FeatureCollection of WGS84 polygons (georeferenced images).",
)
@click.option(
    "--tile",
    type=click.IntRange(min=32),
    default=None,
    help="Tile side, model pixels (multiple of 32; default: the model's).",
)
@click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=None,
    help=f"Least tile overlap, model pixels (default: {DEFAULT_OVERLAP_PX}, at most a quarter tile).",
)
@click.option(
    "--score", type=click.FloatRange(0.0, 1.0), default=None, envvar="SITEWATCH_SCORE_THRESHOLD",
    show_envvar=True, help="Minimum score in every category (default: the model's per-category thresholds).",
)  # fmt: skip
@model_option
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Tiles per model call (more: a little faster, more memory).",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    help="ONNX Runtime execution provider (cpu, cuda, auto, or a full name).",
)
@click.option(
    "--multiscale",
    is_flag=True,
    help="Also run at half scale, for objects larger than the overlap (boxes of 64 model px or more).",
)
@click.option(
    "--flip-test",
    is_flag=True,
    help="Also run each tile mirrored and average the two heatmaps (twice the model time; docs/detect.md).",
)
@click.option(
    "--upscale",
    is_flag=True,
    help="Also run a small image (up to 6 Mpx) of unknown GSD, or at least 1.5x the model's "
    "working GSD, at twice its size, each upsampled tile averaged with the same tile at native "
    'size: small aircraft (docs/detect.md, "Upscale consensus").',
)
@click.option(
    "--thorough/--no-thorough",
    default=None,
    help="--multiscale and --flip-test together (about 2.5 times the model time): more "
    'vehicles found, fewer helicopters (docs/detect.md, "Thorough mode"). Default: the setting '
    "detect_thorough (SITEWATCH_DETECT_THOROUGH), which scan, watch and the web API follow too.",
)
@click.option(
    "--site",
    "site_name",
    default=None,
    help="Watched site whose type priors inform identification (see `sitewatch sites`).",
)
@click.option(
    "--refine/--no-refine",
    default=None,
    help="Refine aircraft boxes on the image (their silhouette) before measuring them "
    "(default: on, setting identify.refine).",
)
@click.option(
    "--identify/--no-identify",
    "identify_objects",
    default=True,
    help="Measure each object and rank its candidate types (default), or write the detector's "
    "boxes only (faster where thousands of objects are found).",
)
def command(
    image: str,
    gsd: float | None,
    force: bool,
    as_json: bool,
    as_jsonl: bool,
    output: str | None,
    overwrite: bool,
    as_geojson: bool,
    tile: int | None,
    overlap: int | None,
    score: float | None,
    model: str | None,
    batch_size: int,
    providers: tuple[str, ...],
    multiscale: bool,
    flip_test: bool,
    upscale: bool,
    thorough: bool | None,
    site_name: str | None,
    refine: bool | None,
    identify_objects: bool,
) -> None:
    """Detect objects in IMAGE (GeoTIFF/COG, JPEG/PNG, STAC item; path or URL).

    Prints a summary table, or with --json the detections (schema: docs/schemas/detection.schema.json).
    With --gsd or a georeferenced image every detection is measured (metres ± 1σ) and its type
    candidates ranked; --site adds that site's type priors; --no-identify keeps the boxes only.
    """
    if not identify_objects and (site_name is not None or refine is not None):
        raise click.UsageError(
            "--site and --refine/--no-refine are about identification; --no-identify turns it off"
        )
    if tile is not None and tile % 32:
        raise click.BadParameter(f"{tile} is not a multiple of 32", param_hint="--tile")
    out = output
    if out is not None:
        from sitewatch.output import check_output

        check_output(out, overwrite=overwrite, what="detections")  # before any work
    t0 = time.perf_counter()
    with open_image(image, gsd, force) as scene:
        check_pixel_budget(scene)
        if thorough is None:
            from sitewatch.settings import Settings

            thorough = Settings().detect_thorough
        passes: dict[str, Any] = dict(THOROUGH) if thorough else {}
        if multiscale:
            passes["extra_scales"] = (0.5,)
        if flip_test:
            passes["flip_test"] = True
        if upscale:
            passes.update(auto_scale=True, upscale_consensus=True)
        detector = build_detector(
            model,
            providers,
            tile_px=tile,
            overlap_px=overlap,
            score_threshold=score,
            batch_size=batch_size,
            **passes,
        )
        if as_geojson and not scene.georeferenced:
            raise GeoreferenceError(
                f"{scene.path}: not georeferenced; --geojson needs a CRS and transform (use --json)"
            )
        if site_name is not None:
            from sitewatch.sites import get_site

            get_site(site_name)  # an unknown site fails before any work
        found = with_footprints(scene, run_detection(detector, scene, gsd))
        # identified a chunk at a time as they are written: memory stays flat on scenes of 10⁵ objects
        tally = _Tally()
        if identify_objects:
            detections = tally.watch(iter_identified(scene, found, gsd, site_name, refine))
        else:
            detections = tally.watch(found)
        if as_geojson:
            _write(_geojson_text(scene, detections, detector.label), out, overwrite)
        elif as_jsonl:
            _write(
                (("\n" if k else "") + json.dumps(d.to_dict()) for k, d in enumerate(detections)),
                out,
                overwrite,
            )
        elif as_json or out:
            _write(_json_array(detections, indent=None if out else 1), out, overwrite)
        else:
            for _ in detections:
                pass
        seconds = time.perf_counter() - t0
        if not (as_json or as_jsonl or (as_geojson and out is None)):
            _summary(scene, tally, detector, seconds, out)
    sys.stdout.flush()
