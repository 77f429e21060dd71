"""Benchmark: scanning a site whose AOI is 10 % of a 20000 x 20000 px COG vs the whole scene.

Writes a synthetic tiled COG (UTM 36N, 0.5 m GSD) in a temporary folder, then runs two scans in
fresh subprocesses (so peak RSS is per scan): one for a site whose AOI covers 10 % of the image,
one for a site covering all of it. Prints wall time and peak RSS of each.

Detector: by default a fast stand-in that reads every 1024 px tile of the window it is given
through ``Scene.read_rgb`` (the windowed read and decode the real detector does, under the same
cap on GDAL's block cache) and finds nothing; ``--real`` uses the bundled ONNX detector instead (minutes for the whole scene on a CPU).

Usage: python bench/scan_aoi.py [--size 20000] [--real] [--cog PATH]
(``--cog``: keep the test COG at PATH and reuse it on later runs.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window
from shapely.geometry import Polygon

from _memory import peak_rss_mb

CRS = "EPSG:32636"
ORIGIN = (760000.0, 3930000.0)
GSD = 0.5


def write_cog(path: Path, size: int) -> None:
    """A textured RGB COG (deflate, 512 px tiles, overviews), written block by block."""  # noqa: D401
    tmp = path.with_suffix(".tmp.tif")
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": CRS,
        "transform": Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1]), "tiled": True, "blockxsize": 512,
        "blockysize": 512, "compress": "deflate", "BIGTIFF": "YES",
    }  # fmt: skip
    rng = np.random.default_rng(0)
    block = 2048
    # a checker of 8 m squares with light noise: textured, yet compresses well enough for /tmp
    yy, xx = np.indices((block, block))
    checker = (((xx // 16) + (yy // 16)) % 8 * 10 + 90).astype(np.uint8)
    tile = np.stack([checker + rng.integers(0, 4, (block, block), dtype=np.uint8) for _ in range(3)])
    with rasterio.open(tmp, "w", **profile) as dst:
        for r in range(0, size, block):
            for c in range(0, size, block):
                h, w = min(block, size - r), min(block, size - c)
                dst.write(tile[:, :h, :w], window=Window(c, r, w, h))
    rasterio.shutil.copy(
        tmp,
        path,
        driver="COG",
        compress="deflate",
        blocksize=512,
        overview_resampling="average",
        BIGTIFF="YES",
    )
    tmp.unlink()


def aoi_for_fraction(size: int, fraction: float) -> Polygon:
    """A WGS84 square AOI centred on the image covering ``fraction`` of its area."""
    side = size * fraction**0.5
    c = size / 2
    to_geo = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    pts = []
    for x, y in (
        (c - side / 2, c - side / 2),
        (c + side / 2, c - side / 2),
        (c + side / 2, c + side / 2),
        (c - side / 2, c + side / 2),
    ):
        pts.append(to_geo.transform(ORIGIN[0] + x * GSD, ORIGIN[1] - y * GSD))
    return Polygon(pts)


def child(path: str, fraction: float, size: int, real: bool) -> None:
    """One scan in this process; prints a JSON line with time, peak RSS and what was read."""
    from dataclasses import dataclass, field

    from sitewatch.detect.base import Detector
    from sitewatch.detect.sliced import DEFAULT_READ_CACHE_MB
    from sitewatch.imagery import open_scene
    from sitewatch.pipeline import scan

    @dataclass
    class Site:
        name: str
        aoi: Polygon
        priors: dict = field(default_factory=dict)

    class ReadingDetector(Detector):
        """Reads the window tile by tile like sliced inference does; detects nothing."""

        name, version = "read-only-stand-in", "1"

        def __init__(self) -> None:
            self.pixels = 0

        def detect(self, scene, *, window=None, gsd_m=None, progress=None):
            w = window or Window(0, 0, scene.width, scene.height)
            # the same cap on GDAL's block cache as the ONNX detector's sliced reads
            with rasterio.Env(GDAL_CACHEMAX=DEFAULT_READ_CACHE_MB * 2**20):
                for r in range(int(w.row_off), int(w.row_off + w.height), 1024):
                    for c in range(int(w.col_off), int(w.col_off + w.width), 1024):
                        tw = min(1024, int(w.col_off + w.width) - c)
                        th = min(1024, int(w.row_off + w.height) - r)
                        rgb, _ = scene.read_rgb(Window(c, r, tw, th))
                        self.pixels += rgb.shape[0] * rgb.shape[1]
            return []

    if real:
        from sitewatch.pipeline import load_default_detector

        det = load_default_detector()
    else:
        det = ReadingDetector()
    t0 = time.perf_counter()
    with open_scene(path) as scene:
        p = scan(scene, Site("bench", aoi_for_fraction(size, fraction)), det, None)
    dt = time.perf_counter() - t0
    rss_mb = peak_rss_mb()
    window = p.metadata["window_px"]
    print(json.dumps({"fraction": fraction, "seconds": round(dt, 2), "peak_rss_mb": round(rss_mb), "window_px": window,
                      "pixels_read": getattr(det, "pixels", None), "detector": det.label}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument(
        "--real", action="store_true", help="use the bundled ONNX detector instead of the read-only stand-in"
    )
    ap.add_argument("--cog", type=Path, help="write the test COG here and reuse it if it exists")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "FRACTION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]), args.size, args.real)
        return
    with tempfile.TemporaryDirectory() as tmp:
        cog = args.cog or Path(tmp) / "scene.tif"
        if cog.exists():
            with rasterio.open(cog) as src:
                if (src.width, src.height) != (args.size, args.size):
                    sys.exit(f"{cog}: is {src.width}x{src.height} px, not {args.size}x{args.size}")
            print(f"using {cog} ({cog.stat().st_size / 1e6:.0f} MB)")
        else:
            t0 = time.perf_counter()
            write_cog(cog, args.size)
            print(
                f"wrote {args.size}x{args.size} px COG ({cog.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s"
            )
        for fraction in (0.1, 1.0):
            cmd = [sys.executable, __file__, "--size", str(args.size), "--child", str(cog), str(fraction)]
            if args.real:
                cmd.append("--real")
            out = (
                subprocess.run(cmd, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            print(f"AOI {100 * fraction:>5.0f}% of scene: {r['seconds']:>7.2f} s, peak RSS {r['peak_rss_mb']:>5} MB, "
                  f"window {r['window_px']}, pixels read {r['pixels_read']}, detector {r['detector']}")  # fmt: skip


if __name__ == "__main__":
    main()
