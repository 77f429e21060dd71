"""Where the time of a whole ``scan`` goes: read, tile/decode, model, merge, identify, georeference, store.

    python bench/scan_split.py ../shared/data [--grid 3] [--model PATH ...]

Builds the mosaic COG of ``bench/peer_sahi.py`` (held-out airbus-pleiades images, 0.5 m, UTM;
``--grid 3``: 7680 x 7680 px, 14.7 km²), defines a site whose AOI is the whole mosaic, and runs
:func:`sitewatch.pipeline.scan` into a fresh SQLite store once per ``--model``. Each stage is timed
by wrapping the function that does it (the code under test is not changed):

* read: ``Scene.read_rgb`` of the tiles (in a prefetch thread, overlapping the model: its sum is
  not part of the wall time unless the model waits for it);
* model: ``ModelBackend.run``; tile/decode: decoding the outputs and mapping boxes to the scene;
* merge: the seam and category merge; identify: measurement and type candidates;
* georeference: AOI filter and WGS84 footprints; observe: the valid-pixel coverage of the AOI;
* store: ``Store.save_pass`` (one transaction).

Prints seconds and seconds per km² of each stage, and the wall time of the whole scan.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import data_tree  # noqa: E402


def timed(table: dict[str, float], stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[stage] += time.perf_counter() - t0

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=data_tree)
    ap.add_argument("--grid", type=int, default=3)
    ap.add_argument("--model", action="append", type=Path, default=None)
    args = ap.parse_args()

    import rasterio
    import shapely
    from rasterio.warp import transform_geom

    from peer_sahi import build_mosaic
    from sitewatch import pipeline
    from sitewatch.detect import sliced
    from sitewatch.detect.onnx import OnnxDetector
    from sitewatch.imagery import open_scene
    from sitewatch.store import Store, open_store

    models = args.model or [REPO / "src/sitewatch/detect/models/sitewatch-det.onnx"]
    with tempfile.TemporaryDirectory() as tmp:
        mosaic, _ = build_mosaic(args.data, args.grid, Path(tmp) / "mosaic.tif")
        with rasterio.open(mosaic) as ds:
            outline = shapely.box(*ds.bounds).buffer(-1.0)
            aoi = shapely.geometry.shape(
                transform_geom(ds.crs, "EPSG:4326", shapely.geometry.mapping(outline))
            )
            km2 = outline.area / 1e6
        site = SimpleNamespace(name="mosaic", aoi=aoi, zones={}, priors=None, kind="airbase")
        print(f"scene: {args.grid * 2560} x {args.grid * 2560} px at 0.5 m, AOI {km2:.1f} km²")
        print(f"{'model':<28} {'stage':<14} {'s':>8} {'s/km²':>7}")
        for m in models:
            table: dict[str, float] = defaultdict(float)
            det = OnnxDetector(m)
            det.backend.run = timed(table, "model", det.backend.run)  # type: ignore[method-assign]
            scene = open_scene(mosaic)
            patches = [
                (type(scene), "read_rgb", "read"), (sliced, "decode", "tile/decode"), (sliced, "_to_scene", "tile/decode"),
                (sliced.SlicedDetector, "merge_candidates", "merge"), (pipeline, "_identify", "identify"),
                (pipeline, "_inside_aoi", "georeference"), (pipeline, "_with_footprints", "georeference"),
                (pipeline, "_observed", "observe"), (Store, "save_pass", "store"),
            ]  # fmt: skip
            saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
            for owner, name, stage in patches:
                setattr(owner, name, timed(table, stage, getattr(owner, name)))
            try:
                with open_store(f"sqlite:///{tmp}/{m.stem}.db") as store, scene:
                    t0 = time.perf_counter()
                    p = pipeline.scan(scene, site, det, store)
                    wall = time.perf_counter() - t0
            finally:
                for owner, name, fn in saved:
                    setattr(owner, name, fn)
            for stage in (
                "read",
                "model",
                "tile/decode",
                "merge",
                "identify",
                "georeference",
                "observe",
                "store",
            ):
                print(f"{m.name:<28} {stage:<14} {table[stage]:8.2f} {table[stage] / km2:7.3f}")
            other = wall - sum(v for k, v in table.items() if k != "read")
            print(f"{m.name:<28} {'(rest)':<14} {other:8.2f} {other / km2:7.3f}")
            print(
                f"{m.name:<28} {'WALL':<14} {wall:8.2f} {wall / km2:7.3f}   ({len(p.detections)} detections stored)"
            )


if __name__ == "__main__":
    main()
