"""Sliced inference: run a dense centre/box model over a scene of any size, tile by tile.

Windows are read on demand with :meth:`Scene.read_rgb` (never the whole scene), resampled to
the model's working GSD when the scene's GSD is known and finer, batched, decoded, mapped
back to scene pixels and merged across seams (see :mod:`sitewatch.detect.tiling` and
:mod:`sitewatch.detect.merge`). The model itself is injected as a :class:`ModelBackend`, so the
same code drives ONNX Runtime and the geometric stand-ins used in tests.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

import numpy as np
import shapely
from rasterio.windows import Window

from sitewatch.detect.base import Detector, ProgressCallback
from sitewatch.detect.decode import BoxArray, decode
from sitewatch.detect.merge import EDGE_SPARE, EDGE_TRUNCATED, EDGE_WHOLE, RowMerge, merge, size_groups
from sitewatch.detect.tiling import Tile, plan_tiles
from sitewatch.errors import SceneError
from sitewatch.geometry import overlapping_pairs, polygons
from sitewatch.imagery.base import Scene, read_cache
from sitewatch.types import CATEGORIES, Detection, OrientedBox

log = logging.getLogger(__name__)

#: Default overlap between tiles, model pixels: 128 px at the 0.5 m working GSD is 64 m,
#: more than the length of all but the largest aircraft (An-124 69 m, C-5 75 m).
DEFAULT_OVERLAP_PX = 128

#: GDAL block cache cap while a scene is scanned, MB (see ``SlicedDetector``).
DEFAULT_READ_CACHE_MB = 256

#: Tiles per model call. The runtime's working memory grows by about 60 MiB per 512 px tile of a
#: batch while two tiles a call already keep both cores busy: on a 41 km² scene batch 2 instead of
#: 4 lowers the scan's peak by ~115 MiB for ~3 % more CPU time (docs/detect.md).
DEFAULT_BATCH_SIZE = 2

#: A box edge this close to an inner tile edge (model pixels) marks the box as truncated.
_EDGE_MARGIN_PX = 3.0

#: GSDs within this factor of the working GSD are run at native scale (no resampling).
_GSD_TOLERANCE = 1.1

#: Automatic extra pass: small regions (screenshots, chips: at most this many pixels) whose GSD is
#: unknown or at least :data:`AUTO_COARSE_FACTOR` times the working GSD also run at
#: :data:`AUTO_SCALE`, so objects of 12–30 px are seen at the size the model knows best.
AUTO_SCALE = 2.0
#: Least length (model pixels at the base scale) of a box kept from a pass at a reduced scale:
#: 32 m at a 0.5 m working GSD, longer than any vehicle and most boats.
REDUCED_MIN_PX = 64.0
AUTO_MAX_PIXELS = 6_000_000
AUTO_COARSE_FACTOR = 1.5
#: Options of the thorough mode (``detect --thorough``, setting ``detect_thorough``): the half-scale
#: pass and the mirrored pass, about 2.5 times the model time; on the held-out sets it finds more
#: vehicles and fewer helicopters than the native pass (docs/detect.md, "Thorough mode").
THOROUGH: Mapping[str, object] = MappingProxyType({"extra_scales": (0.5,), "flip_test": True})
#: Model pixels per scene pixel above which a pass counts as upsampled (``upscale_consensus``).
_UPSAMPLED = 1.25
#: Where the GSD is known, a vehicle box at least this long (metres) is a large vehicle whatever
#: the model called it: above every labelled small vehicle of DOTA (longest 7.8 m) and 95 % of
#: VEDAI's (its camping cars reach 12 m); cars, vans and pickups are 4–6.5 m.
SMALL_VEHICLE_MAX_M = 9.0


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a detector model declares about itself (ONNX ``metadata_props``).

    Attributes:
        name, version: model identity (``version`` containing ``"untrained"`` marks a placeholder).
        categories: output channel order of ``heatmap``.
        stride: input pixels per output cell.
        score_threshold: shipped operating threshold on the centre score (all categories).
        score_thresholds: shipped per-category thresholds (best validation F1 of each category);
            a category not listed uses ``score_threshold``.
        working_gsd_m: metres per pixel the model was trained at, or None.
        input_tile: preferred tile side, model pixels.
        fixed_shape: ``(rows, cols)`` if the graph only accepts one input size, else None.
        path: where the model was loaded from ("" for in-memory models).
    """

    name: str
    version: str
    categories: tuple[str, ...] = CATEGORIES
    stride: int = 4
    score_threshold: float = 0.3
    working_gsd_m: float | None = None
    input_tile: int = 512
    fixed_shape: tuple[int, int] | None = None
    path: str = ""
    score_thresholds: Mapping[str, float] = field(default_factory=dict, hash=False)

    def threshold_for(self, category: str) -> float:
        """The shipped score threshold of ``category``: its own when the model has one, else the common
        one."""
        return float(self.score_thresholds.get(category, self.score_threshold))

    @property
    def trained(self) -> bool:
        """False for placeholder models (version marked ``untrained``)."""
        return "untrained" not in self.version


class ModelBackend(Protocol):
    """Runs the model on a batch: ``float32 [N,3,H,W]`` RGB 0..255 → ``(heatmap, geometry)``."""

    info: ModelInfo

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(slots=True)
class RunStats:
    """Timings of the last :meth:`SlicedDetector.detect` call (seconds, wall clock)."""

    tiles: int = 0
    tiles_skipped: int = 0
    scales: tuple[float, ...] = ()
    run_s: float = 0.0
    total_s: float = 0.0
    candidates: int = 0
    kept: int = 0


class SlicedDetector(Detector):
    """A :class:`Detector` that tiles a scene and runs a :class:`ModelBackend` on the tiles.

    Args:
        backend: the model.
        tile_px: tile side in model pixels (default: the model's ``input_tile``).
        overlap_px: least overlap between tiles, model pixels (default 128, at most a quarter
            of the tile; see docs/detect.md).
        batch_size: tiles per model call.
        score_threshold: minimum score kept in every category (default: the model's shipped
            per-category thresholds, :meth:`ModelInfo.threshold_for`).
        top_k: most boxes decoded per tile.
        extra_scales: additional passes at these factors of the base scale (e.g. ``(0.5,)`` to
            also see objects larger than a tile's overlap), merged with the base pass.
        reduced_min_px: a pass at a factor below 1 keeps only boxes at least this long in model
            pixels of the base scale (:data:`REDUCED_MIN_PX`): it is there for the objects too
            large for the base pass (wide-bodies at the gates), and left to itself it adds
            small false boxes (vehicles, boats) the base pass does not make.
        flip_test: also run the model on each tile mirrored left to right and average the two
            heatmaps (mirrored back) before peaks are taken; the box geometry is the unmirrored
            pass's. Twice the model time.
        auto_scale: add the :data:`AUTO_SCALE` pass by itself on small regions of unknown or
            coarse GSD (see :meth:`scales_for`). Off by default: with sitewatch-det 1.2.0 it
            lowered precision and count accuracy on hrplanes, gdit-airport, FAIR1M and
            ships-google-earth (docs/detect.md).
        upscale_consensus: a pass read upsampled (more than 1.25 model pixels per scene pixel:
            the automatic 2x pass, or an explicit extra scale that upsamples) also runs on its
            tiles brought back to the scene's own resolution, and the two heatmaps (the native
            one resampled to the tile's grid) are averaged before peaks are taken; the geometry
            is the upsampled pass's. A small object both resolutions see keeps about its score;
            one only the upsampled pass sees, the small false boxes that pass adds, loses half.
            A quarter more model pixels for the upsampled pass. The factor is taken against
            the scene's pixels, not the base pass's (the same for the automatic pass, whose base
            scale is 1). Not done for fixed-shape models (logged).
        iou_threshold, cross_iou_threshold, shared_centre_area_ratio: NMS rules (see
            :func:`~sitewatch.detect.merge.merge`).
        prefetch: read the next batch in a thread while the model runs.
        read_cache_mb: cap on GDAL's block cache while the tiles are read, MB (None: GDAL's
            default, 5 % of RAM). Tiles go row by row, so a few rows of source blocks are all
            the cache needs; an uncapped cache makes resident memory grow with the scene. For
            a raster file the cache is sized to one row of tiles and two rows of its blocks
            across the region, within this cap.
    """

    def __init__(
        self,
        backend: ModelBackend,
        *,
        tile_px: int | None = None,
        overlap_px: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        score_threshold: float | None = None,
        top_k: int = 300,
        extra_scales: tuple[float, ...] = (),
        reduced_min_px: float = REDUCED_MIN_PX,
        auto_scale: bool = False,
        flip_test: bool = False,
        upscale_consensus: bool = False,
        iou_threshold: float = 0.5,
        cross_iou_threshold: float = 0.7,
        shared_centre_area_ratio: float = 3.0,
        prefetch: bool = True,
        read_cache_mb: int | None = DEFAULT_READ_CACHE_MB,
    ) -> None:
        self.backend = backend
        info = backend.info
        self.name, self.version = info.name, info.version
        self.tile_px = int(tile_px or info.input_tile)
        self.overlap_px = int(
            min(DEFAULT_OVERLAP_PX, self.tile_px // 4) if overlap_px is None else overlap_px
        )
        if self.overlap_px >= self.tile_px:
            raise ValueError(
                f"overlap ({self.overlap_px} px) must be smaller than the tile ({self.tile_px} px)"
            )
        self.batch_size = max(1, int(batch_size))
        self._score_override = None if score_threshold is None else float(score_threshold)
        self.top_k = int(top_k)
        self.extra_scales = tuple(float(s) for s in extra_scales)
        self.reduced_min_px = float(reduced_min_px)
        self.auto_scale = auto_scale
        self.flip_test = bool(flip_test)
        self.upscale_consensus = bool(upscale_consensus)
        if self.upscale_consensus and info.fixed_shape:
            log.info("%s: a fixed-shape model, so no upscale consensus", info.name)
            self.upscale_consensus = False
        self.iou_threshold = iou_threshold
        self.cross_iou_threshold = cross_iou_threshold
        self.shared_centre_area_ratio = shared_centre_area_ratio
        self.prefetch = prefetch
        self.read_cache_mb = read_cache_mb
        self.last_stats = RunStats()

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    @property
    def extra_passes(self) -> tuple[str, ...]:
        """The passes configured beside the native one, in words (``"×0.5 scale"``, ``"×2 on
        small images"``, ``"mirrored"``); empty for the default. The automatic pass is named
        whether or not a given scene gets it."""
        consensus = " with consensus" if self.upscale_consensus else ""
        out = [f"×{s:g} scale" + (consensus if s > _UPSAMPLED else "") for s in self.extra_scales]
        if self.auto_scale and AUTO_SCALE not in self.extra_scales:
            out.append(f"×{AUTO_SCALE:g} on small images{consensus}")
        if self.flip_test:
            out.append("mirrored")
        return tuple(out)

    @property
    def label(self) -> str:
        """``"name version"`` as stored with each pass, followed by the extra passes configured
        in brackets when there are any (``"sitewatch-det 1.6.0 (×0.5 scale, mirrored)"``): counts
        made with them are not those of the default."""
        passes = self.extra_passes
        return f"{self.name} {self.version}" + (f" ({', '.join(passes)})" if passes else "")

    @property
    def score_thresholds(self) -> dict[str, float]:
        """Minimum score kept per category: the explicit ``score_threshold`` for all, else the model's own."""
        if self._score_override is not None:
            return dict.fromkeys(self.info.categories, self._score_override)
        return {c: self.info.threshold_for(c) for c in self.info.categories}

    @property
    def score_threshold(self) -> float:
        """The lowest score kept in any category; setting it sets one threshold for every category."""
        return min(self.score_thresholds.values())

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self._score_override = float(value)

    def base_scale(self, gsd_m: float | None) -> float:
        """Model pixels per scene pixel: < 1 when the scene is finer than the working GSD, else 1.

        Scenes coarser than the working GSD, or of unknown GSD, run at native scale
        (upsampling adds no detail).
        """
        work = self.info.working_gsd_m
        if gsd_m and work and gsd_m * _GSD_TOLERANCE < work:
            return gsd_m / work
        return 1.0

    def scales_for(self, region_pixels: int, gsd_m: float | None) -> tuple[float, ...]:
        """Factors of the base scale run on a region: 1, the explicit extra scales, and
        :data:`AUTO_SCALE` when ``auto_scale`` is on, the region has at most
        :data:`AUTO_MAX_PIXELS` pixels and its GSD is unknown or at least
        :data:`AUTO_COARSE_FACTOR` times the working GSD (models that declare no working GSD get
        no automatic pass)."""
        scales = [1.0, *self.extra_scales]
        work = self.info.working_gsd_m
        coarse = work is not None and (gsd_m is None or gsd_m >= AUTO_COARSE_FACTOR * work)
        if self.auto_scale and coarse and region_pixels <= AUTO_MAX_PIXELS and AUTO_SCALE not in scales:
            scales.append(AUTO_SCALE)
        return tuple(scales)

    def plan(self, scene: Scene, *, window: Window | None = None, gsd_m: float | None = None) -> list[Tile]:
        """The tiles :meth:`detect` would run, all scales together."""
        region = _clip(window, scene)
        gsd = gsd_m if gsd_m is not None else scene.gsd_m
        base = self.base_scale(gsd)
        tiles: list[Tile] = []
        for s in self.scales_for(int(region.width * region.height), gsd):
            planned = plan_tiles(
                region,
                scale=base * s,
                tile_px=self.tile_px,
                overlap_px=self.overlap_px,
                fixed_shape=self.info.fixed_shape,
            )
            if s < 1.0:
                floor = self.reduced_min_px / base
                planned = [replace(t, min_length=floor) for t in planned]
            tiles += planned
        return tiles

    def detect(
        self,
        scene: Scene,
        *,
        window: Window | None = None,
        gsd_m: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Detection]:
        """Detect objects; boxes in scene pixels. See :meth:`Detector.detect`.

        Raises:
            SceneError: the scene cannot be read.
            ModelError: the model fails or returns outputs of the wrong shape.
        """
        boxes = self.detect_boxes(scene, window=window, gsd_m=gsd_m, progress=progress)
        return self.to_detections(boxes, gsd_m=gsd_m if gsd_m is not None else scene.gsd_m)

    def to_detections(self, boxes: BoxArray, *, gsd_m: float | None = None) -> list[Detection]:
        """Detections (in the frame of ``boxes``) of merged boxes, categories named by the model.

        Args:
            boxes: merged boxes in scene pixels.
            gsd_m: metres per scene pixel, when known (:meth:`vehicle_size_class` applies).
        """
        cats = self.info.categories
        boxes = self.vehicle_size_class(boxes, gsd_m)
        return [
            Detection(
                box=OrientedBox.make(
                    boxes.cx[k], boxes.cy[k], boxes.length[k], boxes.width[k], boxes.heading_deg[k]
                ),
                category=cats[boxes.category[k]],
                score=float(boxes.score[k]),
            )
            for k in range(len(boxes))
        ]

    def vehicle_size_class(self, boxes: BoxArray, gsd_m: float | None) -> BoxArray:
        """Merged boxes with every small-vehicle box at least :data:`SMALL_VEHICLE_MAX_M` long (at
        ``gsd_m`` metres per pixel) that scores at least the large-vehicle threshold in force
        called a large vehicle, its score kept. A small-vehicle box more than half inside such a
        box (its cab, its trailer: vehicles do not stand on one another) is part of it and goes.
        Unchanged when ``gsd_m`` is None."""
        cats = list(self.info.categories)
        if not gsd_m or "small-vehicle" not in cats or "large-vehicle" not in cats or not len(boxes):
            return boxes
        small, large = cats.index("small-vehicle"), cats.index("large-vehicle")
        long = (
            (boxes.category == small)
            & (boxes.length * gsd_m >= SMALL_VEHICLE_MAX_M)
            & (boxes.score >= self.score_thresholds["large-vehicle"])
        )
        if not long.any():
            return boxes
        log.debug(
            "%d small-vehicle boxes of %g m or more called large vehicles", long.sum(), SMALL_VEHICLE_MAX_M
        )
        boxes = replace(boxes, category=np.where(long, large, boxes.category))
        polys = polygons(boxes)
        i, j, inter = overlapping_pairs(polys)
        area = shapely.area(polys)
        part = np.zeros(len(boxes), dtype=bool)
        for a, b in ((i, j), (j, i)):  # a: the small vehicle, b: the relabelled box
            hit = long[b] & (boxes.category[a] == small) & (inter > 0.5 * area[a])
            part[a[hit]] = True
        return boxes.take(~part)

    def detect_boxes(
        self,
        scene: Scene,
        *,
        window: Window | None = None,
        gsd_m: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> BoxArray:
        """Like :meth:`detect` but returns the merged boxes as a :class:`BoxArray` (scene pixels)."""
        t0 = time.perf_counter()
        tiles = self.plan(scene, window=window, gsd_m=gsd_m)
        stats = RunStats(tiles=len(tiles), scales=tuple(sorted({round(t.scale, 4) for t in tiles})))
        merger = RowMerge(max((_reach(t) for t in tiles), default=0.0), **self._merge_args())
        for b, e, next_row in self._candidates(scene, tiles, window, progress, stats):
            stats.candidates += len(b)
            merger.add(b, e, next_row)
        out = merger.result()
        stats.kept = len(out)
        stats.total_s = time.perf_counter() - t0
        self.last_stats = stats
        log.debug(
            "%s: %d tiles (%d empty), %d candidates, %d kept",
            scene.path,
            len(tiles),
            stats.tiles_skipped,
            stats.candidates,
            stats.kept,
        )
        return out

    def run_tiles(
        self,
        scene: Scene,
        tiles: list[Tile],
        *,
        window: Window | None = None,
        progress: ProgressCallback | None = None,
        stats: RunStats | None = None,
    ) -> tuple[BoxArray, np.ndarray]:
        """Run the model on some tiles of a :meth:`plan`: unmerged candidates and their edge codes.

        :meth:`detect_boxes` is :meth:`plan` → ``run_tiles`` → :meth:`merge_candidates`. Running
        consecutive slices of one plan (e.g. on several machines) and concatenating the results in
        plan order gives exactly the candidates of one ``run_tiles`` call over the whole plan.

        Args:
            scene: the image.
            tiles: tiles from :meth:`plan` of ``scene`` and ``window``.
            window: the window the plan was made for (candidates outside it are dropped).
            progress: called with (tiles done, tiles given).
            stats: timings and skipped-tile counts are added here.

        Returns:
            Boxes in scene pixels (``tile`` -1) and an edge code per box (whole, truncated by an
            inner tile edge, or spare: see :func:`~sitewatch.detect.merge.merge`).
        """
        parts: list[BoxArray] = []
        edges: list[np.ndarray] = []
        for b, e, _ in self._candidates(scene, tiles, window, progress, stats):
            parts.append(b)
            edges.append(e)
        return BoxArray.concat(parts), (np.concatenate(edges) if edges else np.zeros(0, dtype=np.int8))

    def _candidates(
        self,
        scene: Scene,
        tiles: list[Tile],
        window: Window | None,
        progress: ProgressCallback | None,
        stats: RunStats | None,
    ) -> Iterator[tuple[BoxArray, np.ndarray, float]]:
        """Candidates and edge codes batch by batch, with the least top edge of the tiles still to run."""
        region = _clip(window, scene)
        stats = stats if stats is not None else RunStats(tiles=len(tiles))
        chunks = self._chunks(tiles)
        tops = [min(t.window.row_off for t in c) for c in chunks]
        next_row = [*np.minimum.accumulate(tops[::-1])[::-1][1:].tolist(), np.inf]
        done = 0
        thresholds = np.array(list(self.score_thresholds.values()), dtype=np.float32)
        cache_mb = _read_cache_mb(scene, region, tiles, self.read_cache_mb)
        with read_cache(cache_mb):
            for k, (batch_tiles, images, given) in enumerate(self._batches(scene, chunks, stats)):
                if images is not None:
                    t1 = time.perf_counter()
                    heatmap, geometry = self._heatmap_geometry(images)
                    factor = batch_tiles[0].scale
                    if self.upscale_consensus and factor > _UPSAMPLED:
                        heatmap = 0.5 * (heatmap + self._native_heatmap(images, factor))
                    stats.run_s += time.perf_counter() - t1
                    boxes = decode(
                        heatmap,
                        geometry,
                        score_threshold=thresholds,
                        stride=self.info.stride,
                        top_k=self.top_k,
                    )
                    b, e = _to_scene(boxes, batch_tiles, region)
                else:
                    b, e = BoxArray.empty(), np.zeros(0, dtype=np.int8)
                done += given
                if progress is not None:
                    progress(done, len(tiles))
                yield b, e, next_row[k]

    def _heatmap_geometry(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's outputs on a batch, the heatmap averaged with the mirrored batch's when
        ``flip_test`` is on."""
        heatmap, geometry = self.backend.run(images)
        if self.flip_test:
            mirrored, _ = self.backend.run(np.ascontiguousarray(images[..., ::-1]))
            heatmap = 0.5 * (heatmap + mirrored[..., ::-1])
        return heatmap, geometry

    def _native_heatmap(self, images: np.ndarray, factor: float) -> np.ndarray:
        """The heatmap of a batch read upsampled by ``factor``, from the batch brought back to the
        scene's resolution (padded to the model's multiple of 32) and resampled to the batch's
        heatmap grid, cell centre on cell centre."""
        import cv2

        _, _, rows, cols = images.shape
        size = (round(cols / factor), round(rows / factor))  # (x, y) as OpenCV takes it
        padded = (-(-size[1] // 32) * 32, -(-size[0] // 32) * 32)
        native = np.zeros((len(images), 3, *padded), np.float32)
        for k, im in enumerate(images):
            small = cv2.resize(im.transpose(1, 2, 0), size, interpolation=cv2.INTER_AREA)
            native[k, :, : size[1], : size[0]] = small.transpose(2, 0, 1)
        heatmap, _ = self._heatmap_geometry(native)
        # Cell k of the upsampled grid is centred on model pixel stride·(k + ½), scene pixel
        # stride·(k + ½)/factor, which is cell (k + ½)/factor − ½ of the native grid.
        s = 1.0 / factor
        m = np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5]])
        grid = (cols // self.info.stride, rows // self.info.stride)
        return np.stack(
            [
                cv2.warpAffine(
                    h.transpose(1, 2, 0),
                    m,
                    grid,
                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_REPLICATE,
                ).reshape(grid[1], grid[0], -1)
                for h in heatmap
            ]
        ).transpose(0, 3, 1, 2)

    def _merge_args(self) -> dict:
        return {
            "iou_threshold": self.iou_threshold,
            "cross_iou_threshold": self.cross_iou_threshold,
            "shared_centre_area_ratio": self.shared_centre_area_ratio,
            "category_thresholds": np.array([self.info.threshold_for(c) for c in self.info.categories]),
            "size_group": size_groups(self.info.categories),
        }

    def merge_candidates(self, boxes: BoxArray, edge: np.ndarray | None = None) -> BoxArray:
        """One box per object from the candidates of :meth:`run_tiles` (see
        :func:`~sitewatch.detect.merge.merge`)."""
        keep = merge(boxes, edge=edge, **self._merge_args())
        return boxes.take(keep)

    def _read(self, scene: Scene, tile: Tile) -> np.ndarray | None:
        rgb, valid = scene.read_rgb(tile.window, tile.out_shape)
        if rgb.shape[:2] != tile.out_shape:
            raise SceneError(
                f"{scene.path}: reader returned {rgb.shape[:2]} pixels for a {tile.out_shape} read"
            )
        if not valid.any():
            return None
        return rgb

    def _read_batch(self, scene: Scene, tiles: list[Tile]) -> tuple[list[Tile], np.ndarray | None, int]:
        kept, arrays = [], []
        for t in tiles:
            rgb = self._read(scene, t)
            if rgb is not None:
                kept.append(t)
                arrays.append(rgb)
        if not arrays:
            return [], None, len(tiles)
        images = np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2), dtype=np.float32)
        return kept, images, len(tiles) - len(kept)

    def _chunks(self, tiles: list[Tile]) -> list[list[Tile]]:
        """Batches of same-shape tiles, scale by scale and row by row (the order :class:`RowMerge`
        lets go of boxes in)."""
        groups: dict[tuple[float, int, int], list[Tile]] = {}
        for t in tiles:
            groups.setdefault((t.scale, *t.out_shape), []).append(t)
        chunks = [
            g[i : i + self.batch_size] for g in groups.values() for i in range(0, len(g), self.batch_size)
        ]
        passes = {s: k for k, s in enumerate(dict.fromkeys(t.scale for t in tiles))}
        return sorted(chunks, key=lambda c: (passes[c[0].scale], min(t.window.row_off for t in c)))

    def _batches(
        self, scene: Scene, chunks: list[list[Tile]], stats: RunStats
    ) -> Iterator[tuple[list[Tile], np.ndarray | None, int]]:
        """Each chunk's tiles with pixels, their pixels (None: all empty) and the number of tiles
        given; the next chunk is read while one runs."""
        if not chunks:
            return
        if not self.prefetch or len(chunks) == 1:
            for c in chunks:
                kept, images, skipped = self._read_batch(scene, c)
                stats.tiles_skipped += skipped
                yield kept, images, len(c)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sitewatch-read") as pool:
            future = pool.submit(self._read_batch, scene, chunks[0])
            for c, nxt in zip(chunks, [*chunks[1:], None], strict=True):
                kept, images, skipped = future.result()
                if nxt is not None:
                    future = pool.submit(self._read_batch, scene, nxt)
                stats.tiles_skipped += skipped
                yield kept, images, len(c)


def _clip(window: Window | None, scene: Scene) -> Window:
    full = Window(0, 0, scene.width, scene.height)
    if window is None:
        return full
    c0, r0 = max(0, int(window.col_off)), max(0, int(window.row_off))
    c1 = min(scene.width, int(window.col_off + window.width))
    r1 = min(scene.height, int(window.row_off + window.height))
    if c1 <= c0 or r1 <= r0:
        raise SceneError(f"{scene.path}: window {window} lies outside the {scene.width}x{scene.height} image")
    return Window(c0, r0, c1 - c0, r1 - r0)


def _read_cache_mb(scene: Scene, region: Window, tiles: list[Tile], cap: int | None) -> int | None:
    """GDAL block cache for reading ``tiles``, MB: the rows of source blocks one row of tiles can
    touch (its height in blocks, plus one for a tile that straddles a block edge), across the
    region, at the file's bytes per pixel, with a quarter to spare; within ``cap`` and at least
    16 MB. The next row of tiles overlaps this one, so the blocks the two rows share are still
    cached when it is read. ``cap`` alone when the scene is not a raster file (or ``cap`` is None)."""
    dataset = getattr(scene, "dataset", None)
    if cap is None or dataset is None or not tiles:
        return cap
    try:
        block_rows = max(h for h, _ in dataset.block_shapes)
        pixel_bytes = sum(np.dtype(t).itemsize for t in dataset.dtypes)
    except (AttributeError, TypeError, ValueError):
        return cap
    tile_rows = max(t.window.height for t in tiles)
    need = 1.25 * (math.ceil(tile_rows / block_rows) + 1) * block_rows * region.width * pixel_bytes / 2**20
    return int(min(cap, max(16, math.ceil(need))))


def _reach(tile: Tile) -> float:
    """How far above its tile's top edge a box from ``tile`` can reach, scene pixels: the tile's
    diagonal (decoded sides are clamped to it)."""
    return float(np.hypot(tile.out_shape[0] / tile.scale_y, tile.out_shape[1] / tile.scale_x))


def _to_scene(boxes: BoxArray, tiles: list[Tile], region: Window) -> tuple[BoxArray, np.ndarray]:
    """Map tile boxes to scene pixels; keep those centred in the region and either in their tile's
    core or whole (spares, for :func:`~sitewatch.detect.merge.merge`).

    Returns the boxes (``tile`` reset to -1) and an edge code per box.
    """
    if len(boxes) == 0:
        return boxes, np.zeros(0, dtype=np.int8)
    # Truncation is judged in model pixels against the tile's inner edges.
    env = boxes.corners()
    xmin, xmax = env[:, :, 0].min(axis=1), env[:, :, 0].max(axis=1)
    ymin, ymax = env[:, :, 1].min(axis=1), env[:, :, 1].max(axis=1)
    win_off = np.array([[t.window.col_off, t.window.row_off] for t in tiles], dtype=float)[boxes.tile]
    scl = np.array([[t.scale_x, t.scale_y] for t in tiles])[boxes.tile]
    core = np.array([t.core for t in tiles])[boxes.tile]
    shape = np.array([t.out_shape for t in tiles], dtype=float)[boxes.tile]  # rows, cols
    m = _EDGE_MARGIN_PX
    truncated = (
        (np.isfinite(core[:, 0]) & (xmin <= m))
        | (np.isfinite(core[:, 1]) & (ymin <= m))
        | (np.isfinite(core[:, 2]) & (xmax >= shape[:, 1] - m))
        | (np.isfinite(core[:, 3]) & (ymax >= shape[:, 0] - m))
    )
    cx = win_off[:, 0] + boxes.cx / scl[:, 0]
    cy = win_off[:, 1] + boxes.cy / scl[:, 1]
    mean_scale = scl.mean(axis=1)
    c0, r0 = region.col_off, region.row_off
    in_core = (cx >= core[:, 0]) & (cx < core[:, 2]) & (cy >= core[:, 1]) & (cy < core[:, 3])
    in_region = (cx >= c0) & (cx < c0 + region.width) & (cy >= r0) & (cy < r0 + region.height)
    min_length = np.array([t.min_length for t in tiles])[boxes.tile]
    inside = in_region & (in_core | ~truncated) & (boxes.length / mean_scale >= min_length)
    edge = np.where(in_core, np.where(truncated, EDGE_TRUNCATED, EDGE_WHOLE), EDGE_SPARE).astype(np.int8)
    out = BoxArray(
        tile=np.full(len(boxes), -1, dtype=np.int64),
        category=boxes.category,
        score=boxes.score,
        cx=cx,
        cy=cy,
        length=boxes.length / mean_scale,
        width=boxes.width / mean_scale,
        heading_deg=boxes.heading_deg,
    )
    return out.take(inside), edge[inside]
