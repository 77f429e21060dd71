"""Benchmark: N synthetic COG scenes of one site scanned on a local Dask cluster of 1 and of 2 workers.

Writes one textured COG (UTM 36N, 0.5 m GSD, see ``bench/scan_aoi.py``) and copies it N times, then
runs :func:`sitewatch.scale.scan_many` over all of them with 1 worker process and again with 2, each
into a fresh SQLite store, with the bundled detector (or ``--model``). Prints the wall time of each
run (cluster start and stop included), the speed-up, and checks that both runs stored the same
detections.

Usage: python bench/scan_many.py [--scenes 8] [--size 4000] [--workers 1 2] [--model PATH]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from shapely.geometry import Polygon

sys.path.insert(0, str(Path(__file__).parent))
from scan_aoi import aoi_for_fraction, write_cog  # noqa: E402 - the same synthetic COG
from sitewatch.scale import scan_many  # noqa: E402
from sitewatch.store import open_store  # noqa: E402


@dataclass
class BenchSite:
    name: str
    aoi: Polygon
    priors: dict = field(default_factory=dict)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--size", type=int, default=4000, help="scene side, pixels")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--model", default=None, help="detector model (default: the bundled one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sitewatch-bench-") as tmp:
        root = Path(tmp)
        first = root / "scene_00.tif"
        write_cog(first, args.size)
        scenes = [first] + [shutil.copy(first, root / f"scene_{i:02d}.tif") for i in range(1, args.scenes)]
        site = BenchSite("bench", aoi_for_fraction(args.size, 0.98))
        print(
            f"{args.scenes} scenes of {args.size}x{args.size} px ({args.scenes * args.size**2 / 1e6:.0f} Mpx)"
        )
        times: dict[int, float] = {}
        found: dict[int, list[int]] = {}
        for n in args.workers:
            url = f"sqlite:///{root / f'store_{n}.db'}"
            t0 = time.perf_counter()
            passes = scan_many(scenes, site, store_url=url, workers=n, model=args.model)
            times[n] = time.perf_counter() - t0
            found[n] = [len(p.detections) for p in passes]
            with open_store(url) as store:
                assert len(store.list_passes("bench")) == args.scenes
            print(f"{n} worker(s): {times[n]:.1f} s wall, {sum(found[n])} detections stored")
        base = args.workers[0]
        for n in args.workers[1:]:
            same = "same" if found[n] == found[base] else "DIFFERENT"
            print(
                f"speed-up {base} -> {n} workers: {times[base] / times[n]:.2f}x ({same} detections per scene)"
            )


if __name__ == "__main__":
    main()
