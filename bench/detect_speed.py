"""Detection speed and memory on large scenes.

Builds georeferenced COGs (0.5 m GSD, UTM) of two sizes in a temporary folder, mosaicked from
the real airbus-pleiades images when the data tree is present (else a synthetic texture), runs
``OnnxDetector`` on each in a fresh subprocess and reports:

* seconds per km² at 0.5 m GSD (1 km² = 4 Mpx),
* overhead: total detect time / ONNX Runtime ``session.run`` time over the same tiles (the
  runtime timed inside the detector, and again standalone on the same number of batches, or
  on a share of them extrapolated with ``--pure-fraction``),
* peak resident memory of the subprocess (``resource.getrusage``), which must stay flat with size.

Usage::

    python bench/detect_speed.py                      # 6000² and 12000² px
    python bench/detect_speed.py --sizes 2048 4096    # quicker
    python bench/detect_speed.py --model sitewatch-det --model sitewatch-det-int8   # both twins, one run
    python bench/detect_speed.py --model sitewatch-det --thorough   # detect --thorough beside the default
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _memory import peak_rss_mb
from sitewatch.detect.sliced import DEFAULT_BATCH_SIZE

DATA = Path(os.environ.get("SITEWATCH_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
GSD_M = 0.5


def _texture_blocks(size: int) -> list[np.ndarray]:
    """Source images for the mosaic: airbus-pleiades JPEGs, else a noisy synthetic texture."""
    import cv2

    folder = DATA / "airbus-pleiades" / "images"
    if folder.is_dir():
        paths = sorted(folder.glob("*.jpg"))[:6]
        return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (2048, 2048, 3), dtype=np.uint8), (0, 0), 3)
    return [base]


def build_cog(path: Path, size: int) -> Path:
    """Write a ``size``² px RGB COG (JPEG, 512 px blocks) at 0.5 m in UTM 33N, block by block."""
    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    tmp = path.with_suffix(".tmp.tif")
    blocks = _texture_blocks(size)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(500000.0, 4100000.0, GSD_M, GSD_M),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    with rasterio.open(tmp, "w", **profile) as ds:
        k = 0
        for row in range(0, size, 2048):
            for col in range(0, size, 2048):
                src = blocks[k % len(blocks)]
                k += 1
                h, w = min(2048, size - row), min(2048, size - col)
                ds.write(src[:h, :w].transpose(2, 0, 1), window=Window(col, row, w, h))
    rio_copy(tmp, path, driver="COG", compress="JPEG", quality=90, blocksize=512)
    tmp.unlink()
    return path


def worker(
    path: str,
    batch_size: int,
    threads: int | None,
    pure_fraction: float,
    model: str | None = None,
    thorough: bool = False,
) -> dict:
    """Run in the subprocess: detect on ``path`` and time the same model calls standalone."""
    from sitewatch.detect.onnx import OnnxDetector
    from sitewatch.detect.sliced import THOROUGH
    from sitewatch.imagery import open_scene

    options = dict(THOROUGH) if thorough else {}
    det = OnnxDetector(model, batch_size=batch_size, threads=threads, **options)
    with open_scene(path) as scene:
        t0 = time.perf_counter()
        dets = det.detect(scene)
        total = time.perf_counter() - t0
        stats = det.last_stats
        tiles = det.plan(scene)
        # Standalone runtime over the same amount of work: the same number of full batches of
        # real pixels (CNN cost does not depend on the pixel values).
        t = tiles[len(tiles) // 2]
        rgb, _ = scene.read_rgb(t.window, t.out_shape)
        batch = np.ascontiguousarray(
            np.repeat(rgb.transpose(2, 0, 1)[None], batch_size, axis=0), dtype=np.float32
        )
        n_batches = -(-(stats.tiles - stats.tiles_skipped) // batch_size) * (2 if det.flip_test else 1)
        sample = max(1, round(n_batches * pure_fraction))
        t1 = time.perf_counter()
        for _ in range(sample):
            det.backend.run(batch)
        pure = (time.perf_counter() - t1) * n_batches / sample
    rss_mb = peak_rss_mb()
    return {
        "size_px": scene.width,
        "tiles": stats.tiles,
        "detections": len(dets),
        "total_s": total,
        "run_s": stats.run_s,
        "pure_run_s": pure,
        "peak_rss_mb": rss_mb,
        "model": det.label,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[6000, 12000], help="scene sides, pixels")
    ap.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="tiles per model call (default: the detector's)",
    )
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    ap.add_argument(
        "--pure-fraction",
        type=float,
        default=1.0,
        help="share of the batches timed standalone (extrapolated)",
    )
    ap.add_argument(
        "--model",
        action="append",
        default=None,
        help="model name or path (repeatable, each timed on every scene; default: this CPU's default model)",
    )
    ap.add_argument(
        "--thorough",
        action="store_true",
        help="time each model in the thorough mode too (detect --thorough), in the same run",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--thorough-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        model = args.model[0] if args.model else None
        result = worker(
            args.worker, args.batch_size, args.threads, args.pure_fraction, model, args.thorough_worker
        )
        print(json.dumps(result))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="sitewatch-bench-") as tmp:
        for size in args.sizes:
            t0 = time.perf_counter()
            cog = build_cog(Path(tmp) / f"scene_{size}.tif", size)
            print(
                f"built {cog.name} ({size}x{size} px, {cog.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
            )
            for model, thorough in [
                (m, t) for m in args.model or [None] for t in (False, True)[: 1 + args.thorough]
            ]:
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(cog),
                    "--batch-size",
                    str(args.batch_size),
                    "--pure-fraction",
                    str(args.pure_fraction),
                ]
                cmd += ["--threads", str(args.threads)] if args.threads else []
                cmd += ["--model", model] if model else []
                cmd += ["--thorough-worker"] if thorough else []
                r = json.loads(
                    subprocess.run(cmd, check=True, capture_output=True, text=True)
                    .stdout.strip()
                    .splitlines()[-1]
                )
                km2 = (size * GSD_M / 1000.0) ** 2
                r.update(
                    km2=km2,
                    s_per_km2=r["total_s"] / km2,
                    overhead_vs_run=r["total_s"] / r["run_s"],
                    overhead_vs_pure=r["total_s"] / r["pure_run_s"],
                )
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
    w = max([len("model"), *(len(r["model"]) for r in rows)])
    print(
        f"{'model':<{w}} {'size px':>8} {'km²':>6} {'tiles':>6} {'detect s':>9} {'s/km²':>7} {'total/run':>9} {'total/pure':>10} {'peak RSS MB':>11}"
    )
    for r in rows:
        print(
            f"{r['model']:<{w}} {r['size_px']:>8} {r['km2']:>6.1f} {r['tiles']:>6} {r['total_s']:>9.1f} {r['s_per_km2']:>7.2f} "
            f"{r['overhead_vs_run']:>9.3f} {r['overhead_vs_pure']:>10.3f} {r['peak_rss_mb']:>11.0f}"
        )
    print(f"CPU cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
