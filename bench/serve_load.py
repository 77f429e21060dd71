"""Load on the web API: concurrent clients on loopback against the detections endpoint of one pass.

Usage: python bench/serve_load.py [--store URL --pass ID] [--clients 100] [--requests 10] [--detections 500]
                                  [--no-warm | --during-warm-up]

Without ``--store`` a SQLite store is made in a temporary folder with one georeferenced pass of
``--detections`` detections (identified, with footprints). ``sitewatch serve`` is started as a
separate process (uvicorn, one worker) on a free loopback port; as by default, it builds the report
data of the store's site in a low-priority child process as it starts. The load starts when
``/api/health`` says that warm-up is done (``--during-warm-up``: as soon as the server answers, so
the warm-up competes with the load; ``--no-warm``: the server builds no report). ``--clients``
asyncio clients (one keep-alive connection each, on raw streams: the least client work on the
shared cores) each send ``--requests`` requests one after another to
``/api/passes/ID/detections?limit=500``.
Prints p50/p90/p99/max latency (ms), requests per second and the number of errors (non-200 or
connection failures, or a page whose feature count is wrong), and the server's CPU time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_store(folder: Path, n: int) -> tuple[str, int]:
    """A SQLite store with one pass of ``n`` detections; returns (url, pass id)."""
    sys.path.insert(0, str(REPO / "tests"))
    from api_support import SU24, detection, make_pass, write_scene
    from sitewatch.store import open_store

    rng = np.random.default_rng(0)
    dets = [detection(float(x), float(y), "aircraft", SU24) for x, y in rng.uniform(10, 190, (n, 2))]
    url = f"sqlite:///{folder / 'bench.db'}"
    with open_store(url) as store:
        pass_id = store.save_pass(
            make_pass(write_scene(folder / "scene.tif"), datetime(2024, 3, 1, tzinfo=UTC), dets)
        )
    return url, pass_id


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Connection:
    """One keep-alive HTTP/1.1 connection with the least client work per request (like wrk or hey).

    The load generator runs on the same cores as the server; httpx's per-request cost would be
    measured as server latency, so requests are written and responses read on raw asyncio streams.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: application/geo+json\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"
        )
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def client(
    host: str, port: int, path: str, n: int, expected: int | None, lat: list[float], errors: list[str]
) -> None:
    conn = Connection(host, port)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                status, body = await conn.get(path)
                # the counts come before the features: check them without parsing the whole page
                ok = status == 200 and (
                    expected is None or f'"numberReturned":{expected},'.encode() in body[:200]
                )
                if not ok:
                    errors.append(f"HTTP {status}")
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration) as e:
                errors.append(type(e).__name__)
                conn.close()
                conn = Connection(host, port)
            lat.append(time.perf_counter() - t0)
    finally:
        conn.close()


async def run_load(
    host: str, port: int, pass_id: int, clients: int, requests: int, expected: int | None
) -> tuple[list[float], list[str], float]:
    path = f"/api/passes/{pass_id}/detections?limit=500"
    lat: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(client(host, port, path, requests, expected, lat, errors) for _ in range(clients)))
    return lat, errors, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None, help="store URL (default: a temporary store with one pass)")
    ap.add_argument("--pass", dest="pass_id", type=int, default=None, help="pass id (with --store)")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--requests", type=int, default=10, help="requests per client")
    ap.add_argument("--detections", type=int, default=500, help="detections of the generated pass")
    ap.add_argument("--no-warm", action="store_true",
                    help="start the server with --no-warm (no report built in the background)")  # fmt: skip
    ap.add_argument("--during-warm-up", action="store_true",
                    help="start the load as soon as the server answers, while it still builds the reports "
                         "(default: wait until /api/health says the warm-up is done)")  # fmt: skip
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    expected = None
    if args.store is None:
        url, pass_id = make_store(Path(tmp.name), args.detections)
        expected = min(args.detections, 500)
    else:
        if args.pass_id is None:
            ap.error("--store needs --pass")
        url, pass_id = args.store, args.pass_id
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("SITEWATCH_API_TOKEN", None)
    server = subprocess.Popen([sys.executable, "-m", "sitewatch.cli.main", "-q", "serve", "--store", url, "--port", str(port),
                               *(["--no-warm"] if args.no_warm else [])],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{base}/api/health", timeout=2)
                if health.status_code == 200 and (
                    args.during_warm_up or health.json()["report_warm_up"] != "building"
                ):
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"server did not start: {server.stderr.read().decode() if server.stderr else ''}"
                )
            time.sleep(0.3)
        httpx.get(
            f"{base}/api/passes/{pass_id}/detections?limit=500", timeout=120
        )  # warm-up: page built and cached
        cpu0 = cpu_seconds(server.pid)
        lat, errors, wall = asyncio.run(
            run_load("127.0.0.1", port, pass_id, args.clients, args.requests, expected)
        )
        server_cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(timeout=30)
        tmp.cleanup()
    ms = np.array(lat) * 1000
    when = (
        "no warm-up"
        if args.no_warm
        else "during the report warm-up"
        if args.during_warm_up
        else "after the warm-up"
    )
    print(f"{args.clients} clients x {args.requests} requests on {base}/api/passes/{pass_id}/detections "
          f"(store {url.split(':')[0]}, {when})")  # fmt: skip
    print(f"latency ms: p50 {np.percentile(ms, 50):.1f}  p90 {np.percentile(ms, 90):.1f}  p99 {np.percentile(ms, 99):.1f}  "
          f"max {ms.max():.1f}  mean {statistics.fmean(ms):.1f}")  # fmt: skip
    print(f"throughput: {len(lat) / wall:.1f} requests/s over {wall:.1f} s; errors: {len(errors)}"
          + (f" ({', '.join(sorted(set(errors)))})" if errors else ""))  # fmt: skip
    print(
        f"server CPU: {1000 * server_cpu / max(1, len(lat)):.1f} ms per request (the clients run in this process, on the same machine)"
    )


if __name__ == "__main__":
    main()
