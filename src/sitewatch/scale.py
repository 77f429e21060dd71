"""Scale-out: scan many scenes, or one very large scene, on a Dask cluster.

:func:`scan_many` does what :func:`sitewatch.pipeline.scan` does for each scene, with the detector's
tiles run on Dask workers (a :class:`~distributed.LocalCluster` of worker processes by default, or
an external scheduler):

1. The client opens each scene and plans its scan (:func:`sitewatch.pipeline.plan`: coverage of
   the site's AOI, the window to read, the GSD, what valid pixels observed), then plans the
   detector's tiles over that window (:meth:`SlicedDetector.plan`); a scene that observed nothing
   gets no tiles, as :func:`sitewatch.pipeline.detect` runs no detector on it.
2. The plan is cut into blocks of consecutive tiles; each block is one Dask task. A task opens the
   scene itself (inside :class:`rasterio.Env`), takes the detector cached in its worker process
   (built once per process, ONNX Runtime with one intra-op thread, so N workers use about N cores)
   and returns the block's *unmerged* candidate boxes as plain arrays (nothing open is pickled).
3. When all blocks of a scene are in, the client concatenates them in plan order, merges seams with
   the detector's own :meth:`~sitewatch.detect.sliced.SlicedDetector.merge_candidates`, and
   finishes the pass from the merged detections (:func:`sitewatch.pipeline.finish`: AOI filter,
   identify, footprints), saved in one store transaction (:func:`sitewatch.pipeline.save`). The
   result equals a single-process scan of the scene, since the same tiles are run and the same
   candidates merged in the same order.

A scene that fails (unreadable file, no AOI coverage, a worker lost mid-way) is not stored; the
others are, and :class:`BatchScanError` names every failed scene at the end. Rerunning the batch
rescans all scenes (replacing passes already stored).

Frames: as in :mod:`sitewatch.pipeline` (scene pixels for boxes, WGS84 for footprints).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pickle
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from sitewatch.detect.base import ProgressCallback
from sitewatch.detect.decode import BoxArray
from sitewatch.detect.sliced import THOROUGH, SlicedDetector
from sitewatch.detect.tiling import Tile
from sitewatch.errors import SceneError, SitewatchError, SitewatchWarning
from sitewatch.imagery import open_scene
from sitewatch.imagery.base import Scene
from sitewatch.pipeline import ScanPlan, SiteLike, finish, plan, save
from sitewatch.settings import Settings
from sitewatch.store import Store, open_store
from sitewatch.types import Pass

log = logging.getLogger(__name__)

#: Tiles per Dask task: 16 tiles of 512² px are ~4 M model pixels, about a second of CPU work.
DEFAULT_TILES_PER_TASK = 16

#: A local cluster runs its workers as processes (True) or as threads of this process (False).
LOCAL_PROCESSES = True

#: Seconds to wait for an external scheduler.
CONNECT_TIMEOUT_S = 20

#: Called once per scene when it is done: (source, stored pass or None, error or None, warnings).
SceneCallback = Callable[[str, Pass | None, SitewatchError | None, list[str]], None]


class ClusterError(SitewatchError, OSError):
    """The Dask cluster cannot be started or reached."""


class BatchScanError(SitewatchError):
    """Some scenes of a batch failed; the others were stored.

    Attributes:
        passes: the passes stored, in the order of the sources.
        failures: ``(source, one-line reason)`` per failed scene, in the order of the sources.
    """

    def __init__(self, passes: list[Pass], failures: list[tuple[str, str]], total: int) -> None:
        self.passes = passes
        self.failures = failures
        names = ", ".join(src for src, _ in failures)
        super().__init__(f"{len(failures)} of {total} scenes failed ({names}); {len(passes)} stored")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.passes, self.failures, len(self.passes) + len(self.failures)))


# -- what a worker needs: how to open the scene and build the detector (both picklable) ------------


@dataclasses.dataclass(frozen=True, slots=True)
class DetectorSpec:
    """How a worker process builds its detector; built once per process and cached.

    Attributes:
        model: model name or .onnx path for :class:`~sitewatch.detect.onnx.OnnxDetector` (None: the
            configured default, resolved on each worker).
        threads: ONNX Runtime intra-op threads per worker.
        options: tiling/merging options of :class:`SlicedDetector` (``tile_px``, ``overlap_px`` ...).
        factory: instead of an ONNX model, a picklable zero-argument callable returning a
            :class:`SlicedDetector` (another backend).
    """

    model: str | None = None
    threads: int = 1
    options: tuple[tuple[str, Any], ...] = ()
    factory: Callable[[], SlicedDetector] | None = None

    def build(self) -> SlicedDetector:
        """A new detector (loads the model)."""
        if self.factory is not None:
            return self.factory()
        from sitewatch.detect.onnx import OnnxDetector

        return OnnxDetector(self.model, threads=self.threads, **dict(self.options))

    @property
    def key(self) -> str:
        """A digest identifying the detector (the per-process cache key)."""
        return hashlib.sha1(pickle.dumps(self)).hexdigest()


def default_spec(model: str | Path | None, options: dict[str, Any] | None = None) -> DetectorSpec:
    """The spec of ``model`` with ``options``; without options, those of the thorough mode
    (:data:`~sitewatch.detect.sliced.THOROUGH`) when the setting ``detect_thorough`` is on, as
    for a scan on one machine (:func:`~sitewatch.pipeline.load_default_detector`)."""
    if options is None:
        options = dict(THOROUGH) if Settings().detect_thorough else {}
    return DetectorSpec(model=None if model is None else str(model), options=tuple(sorted(options.items())))


_detectors: dict[str, SlicedDetector] = {}
_detectors_lock = threading.Lock()


def worker_detector(spec: DetectorSpec, key: str) -> SlicedDetector:
    """The detector of ``spec`` in this process, built on first use (one model session per process)."""
    with _detectors_lock:
        det = _detectors.get(key)
        if det is None:
            det = _detectors[key] = spec.build()
            log.debug("process %d: loaded detector %s", os.getpid(), det.label)
        return det


@dataclasses.dataclass(frozen=True, slots=True)
class SceneSource:
    """A scene as its source and the options it is opened with (what a worker reopens)."""

    source: str
    gsd_m: float | None = None
    acquired: str | None = None
    center: tuple[float, float] | None = None
    rotation_deg: float = 0.0
    asset: str | None = None

    def open(self) -> Scene:
        """Open the scene (see :func:`sitewatch.imagery.open_scene`)."""
        return open_scene(
            self.source,
            gsd_m=self.gsd_m,
            acquired=self.acquired,
            center=self.center,
            rotation_deg=self.rotation_deg,
            asset=self.asset,
        )


def run_block(
    scene: SceneSource, spec: DetectorSpec, key: str, tiles: list, window: Window | None
) -> dict[str, np.ndarray]:
    """Worker task: unmerged candidates of some tiles of a scene, as plain arrays.

    Returns:
        The :class:`BoxArray` columns (scene pixels) and ``edge`` (edge code per box).
    """
    detector = worker_detector(spec, key)
    with rasterio.Env():
        opened = scene.open()
        try:
            boxes, edge = detector.run_tiles(opened, tiles, window=window)
        finally:
            opened.close()
    return {**{f.name: getattr(boxes, f.name) for f in dataclasses.fields(BoxArray)}, "edge": edge}


# -- client side ------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Job:
    """One scene in flight."""

    index: int
    src: SceneSource
    scene: Scene
    plan: ScanPlan
    tiles: int
    parts: list[dict[str, np.ndarray] | None]
    warnings: list[str]
    error: SitewatchError | None = None


def scan_many(
    sources: Sequence[str | Path],
    site: SiteLike | str,
    *,
    store_url: str | None = None,
    workers: int | None = None,
    scheduler_address: str | None = None,
    model: str | Path | None = None,
    gsd_m: float | None = None,
    acquired: datetime | date | str | None = None,
    center: tuple[float, float] | None = None,
    rotation_deg: float = 0.0,
    progress: ProgressCallback | None = None,
    on_scene: SceneCallback | None = None,
    detector: DetectorSpec | None = None,
    detector_options: dict[str, Any] | None = None,
    tiles_per_task: int = DEFAULT_TILES_PER_TASK,
    processes: bool | None = None,
) -> list[Pass]:
    """Scan scenes of a site on a Dask cluster and store one pass per scene.

    Args:
        sources: scene paths or URLs (GeoTIFF/COG, JPEG/PNG, STAC item), readable from every worker.
        site: the watched site, or its name or alias.
        store_url: store URL (None: the embedded default; ``postgresql://...`` for PostGIS).
        workers: worker processes of a local cluster (default: one per CPU core).
        scheduler_address: address of a running Dask scheduler (``tcp://host:8786``) instead of a
            local cluster; its workers need sitewatch installed and the scenes readable.
        model: detector model name or .onnx path (default: the configured model).
        gsd_m: metres per pixel, overriding the scenes'.
        acquired: acquisition time, overriding the files'.
        center, rotation_deg: anchor of screenshots (see :func:`~sitewatch.imagery.open_scene`).
        progress: called with (tiles done, tiles planned) over all scenes, on the calling thread.
        on_scene: called as each scene is stored or fails (see :data:`SceneCallback`).
        detector: the detector to run (overrides ``model`` and ``detector_options``).
        detector_options: tiling/merging options of the detector (``tile_px``, ``batch_size`` ...);
            None: those of the thorough mode when the setting ``detect_thorough`` is on, else none.
        tiles_per_task: tiles per Dask task (a large scene is split into several tasks).
        processes: local cluster of processes (True) or of threads in this process (False);
            default :data:`LOCAL_PROCESSES`.

    Returns:
        The stored passes, in the order of ``sources``.

    Raises:
        BatchScanError: some scenes failed (after the others were stored).
        ClusterError: the cluster cannot be started or reached.
        StoreError: the store cannot be opened.
        SiteError: unknown site.
        SceneError: no sources.
    """
    if workers is not None and scheduler_address is not None:
        raise ValueError("give workers (a local cluster) or scheduler_address (a running one), not both")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not sources:
        raise SceneError("no scenes given: nothing to scan")
    if tiles_per_task < 1:
        raise ValueError(f"tiles_per_task must be at least 1, got {tiles_per_task}")
    if isinstance(site, str):
        from sitewatch.sites import get_site

        site = get_site(site)
    spec = detector or default_spec(model, detector_options)
    when = acquired.isoformat() if isinstance(acquired, date) else acquired
    srcs = [SceneSource(str(s), gsd_m, when, center, rotation_deg) for s in sources]
    with open_store(store_url) as store:
        planner = spec.build()  # plans tiles and merges seams on the client
        local_processes = LOCAL_PROCESSES if processes is None else processes
        with _client(workers, scheduler_address, local_processes) as client:
            return _run(client, store, planner, spec, srcs, site, gsd_m, tiles_per_task, progress, on_scene)


def _run(
    client: Any,
    store: Store,
    planner: SlicedDetector,
    spec: DetectorSpec,
    srcs: list[SceneSource],
    site: SiteLike,
    gsd_m: float | None,
    tiles_per_task: int,
    progress: ProgressCallback | None,
    on_scene: SceneCallback | None,
) -> list[Pass]:
    from distributed import as_completed

    key = spec.key
    stored: dict[int, Pass] = {}
    failed: dict[int, str] = {}

    def settle(job: _Job, p: Pass | None, error: SitewatchError | None) -> None:
        job.scene.close()
        if error is not None:
            failed[job.index] = str(error)
            log.info("not stored: %s", error)
        else:
            stored[job.index] = p  # type: ignore[assignment]
        if on_scene is not None:
            on_scene(job.src.source, p, error, job.warnings)

    futures: dict[Any, tuple[_Job, int, int]] = {}
    jobs: list[_Job] = []
    total = done = 0
    try:
        for i, src in enumerate(srcs):
            try:
                job = _open_and_plan(i, src, site, gsd_m)
            except SitewatchError as e:
                failed[i] = str(e)
                if on_scene is not None:
                    on_scene(src.source, None, e, [])
                continue
            tiles = [] if job.plan.observed_nothing else _tiles(planner, job)
            blocks = [tiles[k : k + tiles_per_task] for k in range(0, len(tiles), tiles_per_task)]
            job.tiles, job.parts = len(tiles), [None] * len(blocks)
            jobs.append(job)
            total += len(tiles)
            for b, block in enumerate(blocks):
                fut = client.submit(run_block, src, spec, key, block, job.plan.window, pure=False)
                futures[fut] = (job, b, len(block))
            if not blocks:
                settle(job, *_store(store, job, planner, site))
        if progress is not None:
            progress(0, total)
        for fut in as_completed(list(futures)):
            job, b, n = futures[fut]
            done += n
            if job.error is None and fut.status != "cancelled":
                try:
                    job.parts[b] = fut.result()
                except Exception as e:  # noqa: BLE001 - any task failure fails this scene only
                    job.error = _task_error(job.src.source, e)
                    for other, (j, _, _) in futures.items():
                        if j is job:
                            other.cancel()
                    settle(job, None, job.error)
                else:
                    if all(p is not None for p in job.parts):
                        settle(job, *_store(store, job, planner, site))
            if progress is not None:
                progress(done, total)
    finally:  # an interrupted batch: close what is still open (closing twice is harmless)
        for job in jobs:
            job.scene.close()
    passes = [stored[i] for i in sorted(stored)]
    if failed:
        raise BatchScanError(passes, [(srcs[i].source, failed[i]) for i in sorted(failed)], len(srcs))
    return passes


def _open_and_plan(index: int, src: SceneSource, site: SiteLike, gsd_m: float | None) -> _Job:
    """Open a scene and plan its scan, keeping the warnings the plan raises for the scene's report."""
    scene = src.open()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            planned = plan(scene, site, gsd_m=gsd_m)
    except BaseException:
        scene.close()
        raise
    notes = [str(w.message) for w in caught if issubclass(w.category, SitewatchWarning)]
    return _Job(index, src, scene, planned, 0, [], notes)


def _tiles(planner: SlicedDetector, job: _Job) -> list[Tile]:
    """The detector's tiles over the planned window, in the order one process runs them.

    That order groups tiles by model input shape, stably.
    """
    tiles = planner.plan(job.scene, window=job.plan.window, gsd_m=job.plan.gsd_m)
    shapes: dict[tuple[int, int], int] = {}
    for t in tiles:
        shapes.setdefault(t.out_shape, len(shapes))
    return sorted(tiles, key=lambda t: shapes[t.out_shape])


def _store(
    store: Store, job: _Job, planner: SlicedDetector, site: SiteLike
) -> tuple[Pass | None, SitewatchError | None]:
    """Merge a scene's blocks, finish its pass and save it in one transaction."""
    try:
        parts = [p for p in job.parts if p is not None]
        boxes = BoxArray.concat(
            [BoxArray(**{f.name: p[f.name] for f in dataclasses.fields(BoxArray)}) for p in parts]
        )
        edge = np.concatenate([p["edge"] for p in parts]) if parts else np.zeros(0, dtype=np.int8)
        detections = planner.to_detections(
            planner.merge_candidates(boxes, edge),
            gsd_m=job.plan.gsd_m,
        )
        return save(store, finish(job.scene, site, job.plan, detections, planner.label)), None
    except SitewatchError as e:
        return None, e


def _task_error(source: str, e: BaseException) -> SitewatchError:
    if isinstance(e, SitewatchError):
        return e
    log.debug("%s: task failed", source, exc_info=e)
    reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return SitewatchError(
        f"{source}: scan failed on a worker ({type(e).__name__}{': ' + reason if reason else ''}); not stored"
    )


@contextmanager
def _client(workers: int | None, scheduler_address: str | None, processes: bool) -> Iterator[Any]:
    """A Dask client on a local cluster or a running scheduler, closed on exit.

    Raises:
        ClusterError: Dask is not installed (the ``[scale]`` extra), or the scheduler is unreachable.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise ClusterError(
            f"scanning on a Dask cluster needs the [scale] extra: pip install 'sitewatch[scale]' ({e.name} "
            "is missing)"
        ) from None

    if scheduler_address is not None:
        try:
            client = Client(scheduler_address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler_address} ({type(e).__name__})"
            ) from e
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with _quiet_dask():
        try:
            # ":0": the scheduler's HTTP endpoint on a free port, so concurrent scans never clash
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
        except (OSError, TimeoutError, RuntimeError) as e:
            raise ClusterError(f"cannot start a local Dask cluster of {n} workers ({e})") from e
        with cluster, Client(cluster) as client:
            yield client


@contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own INFO chatter (cluster start and stop) hidden unless this process logs at DEBUG."""
    logger = logging.getLogger("distributed")
    before = logger.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)
