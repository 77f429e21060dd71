"""Soak benchmark: many watch cycles against a local STAC API; is the watcher's memory flat?

Starts the tests' STAC API (``tests/_stac_api.py``, uvicorn) and COG server with Range support
(``tests/_http_stub.py``) on loopback, each in its own process, and runs ``--cycles`` watch cycles
(:meth:`sitewatch.watch.Watcher.run_once`) of one site in one process on a fresh SQLite store. Every
``--new-every`` cycles a new pass (an 800 x 600 px COG with a varying number of aircraft-like blocks)
is published, so cycles alternate between polls that find nothing and polls that scan, compare,
assess and alert (log and Atom feed channels). The detector is the tests' block model (``--model``
for another, e.g. the bundled one: ``--model bundled``).

Prints the resident memory after cycles 1, 10, 25, 50, 75 and the last, the peak, the growth from
cycle 25 to the last, and the mean time of an idle and of a scanning cycle.

Usage: python bench/watch_soak.py [--cycles 100] [--new-every 10] [--model PATH|bundled]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from _memory import peak_rss_mb  # noqa: E402


def rss_mb() -> float:
    """Current resident set size of this process, MB (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--new-every", type=int, default=10, help="publish a new pass every N cycles")
    ap.add_argument(
        "--model", default=None, help="detector .onnx path, or 'bundled' (default: the tests' block model)"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="watch-soak-"))
    os.environ["SITEWATCH_HOME"] = str(tmp / "home")

    from detect_support import write_block_model
    from sitewatch.detect.onnx import OnnxDetector
    from sitewatch.store import open_store
    from sitewatch.watch import WatchConfig, Watcher
    from watch_support import Servers, add_watch_site

    add_watch_site()
    model = None if args.model == "bundled" else (args.model or str(write_block_model(tmp / "block.onnx")))
    servers = Servers(tmp / "srv")
    t0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    config = WatchConfig.model_validate({
        "sites": [{"site": "watchbase", "sources": [{"type": "stac-api", "url": servers.api_url, "collections": ["blocks"]}]}],
        "channels": [{"type": "log"}, {"type": "atom", "path": str(tmp / "alerts.atom")}],
        "read_pixels": True,
    })  # fmt: skip
    marks = {1, 10, 25, 50, 75, args.cycles}
    idle, busy, alerts, passes = [], [], 0, 0
    rss_at: dict[int, float] = {}
    try:
        with open_store(f"sqlite:///{tmp / 'soak.db'}") as store:
            watcher = Watcher(config, store, detector=OnnxDetector(model))
            for cycle in range(1, args.cycles + 1):
                new = (cycle - 1) % args.new_every == 0
                if new:
                    k = (cycle - 1) // args.new_every
                    servers.add_pass(f"p{k:03d}", (20, 8, 14, 30)[k % 4], t0 + timedelta(days=k))
                start = time.perf_counter()
                res = watcher.run_once()
                (busy if new else idle).append(time.perf_counter() - start)
                alerts += len(res.alerts)
                passes += len(res.passes)
                if res.failed or res.source_errors:
                    raise SystemExit(f"cycle {cycle} failed: {res.failed or res.source_errors}")
                if cycle in marks:
                    rss_at[cycle] = rss_mb()
    finally:
        servers.close()
    print(f"{args.cycles} cycles, {passes} passes scanned, {alerts} alerts; detector: {model or 'bundled'}")
    print("RSS after cycle " + ", ".join(f"{c}: {v:.0f} MB" for c, v in sorted(rss_at.items())))
    first = min(c for c in rss_at if c >= 25) if any(c >= 25 for c in rss_at) else min(rss_at)
    print(
        f"peak RSS {peak_rss_mb():.0f} MB; growth from cycle {first} to {args.cycles}: {rss_at[args.cycles] - rss_at[first]:+.1f} MB"
    )
    print(f"mean cycle: idle {1000 * sum(idle) / max(1, len(idle)):.0f} ms ({len(idle)}), "
          f"with a new pass {sum(busy) / max(1, len(busy)):.2f} s ({len(busy)})")  # fmt: skip


if __name__ == "__main__":
    main()
