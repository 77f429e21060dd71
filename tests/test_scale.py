"""Scale-out scans on a Dask cluster: same passes as one process, bad scenes, lost workers, PostGIS."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio

import sitewatch.scale
from detect_support import GeometricBackend, VehicleBackend, paint_box, write_block_model
from sitewatch.detect.onnx import OnnxDetector
from sitewatch.detect.sliced import SlicedDetector
from sitewatch.errors import LowCoverageWarning, SceneError
from sitewatch.imagery import open_scene
from sitewatch.pipeline import scan
from sitewatch.scale import BatchScanError, ClusterError, DetectorSpec, default_spec, scan_many
from sitewatch.store import open_store
from sitewatch.types import OrientedBox
from test_scan import UTM, UTM_T, FakeSite, _aoi_px
from test_store import pg_database  # noqa: F401 - a private PostGIS database (fixture)

SITE = FakeSite("testbase", _aoi_px(UTM_T, UTM, 50, 40, 760, 560))
BLOCK_OPTS = {"tile_px": 64, "overlap_px": 16, "batch_size": 3}


def _write(path: Path, rgb: np.ndarray) -> Path:
    """An 800 x 600 px UTM GeoTIFF at 0.5 m near Hmeimim with the given (rows, cols, 3) pixels."""
    with rasterio.open(
        path, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=3, dtype="uint8", crs=UTM, transform=UTM_T
    ) as dst:
        dst.write(rgb.transpose(2, 0, 1))
        dst.update_tags(TIFFTAG_DATETIME="2024:05:06 07:08:09")
    return path


def block_scene(path: Path, seed: int, n: int = 60) -> Path:
    """Bright 4x4 blocks at random 4-aligned places: the block model finds each exactly."""
    rng = np.random.default_rng(seed)
    rgb = np.full((600, 800, 3), 3, np.uint8)  # dark, not blank: blank blocks are not observed
    for x, y in zip(rng.integers(0, 196, n) * 4, rng.integers(0, 146, n) * 4, strict=True):
        rgb[y : y + 4, x : x + 4, 0] = 255
    return _write(path, rgb)


def shape_scene(path: Path, seed: int, n: int = 25) -> Path:
    """Red oriented boxes anywhere, many cut by tile seams."""
    rng = np.random.default_rng(seed)
    rgb = np.full((600, 800, 3), 3, np.uint8)  # dark, not blank: blank blocks are not observed
    placed: list[OrientedBox] = []
    while len(placed) < n:
        b = OrientedBox.make(rng.uniform(70, 740), rng.uniform(60, 540), rng.uniform(14, 40), rng.uniform(6, 14), rng.uniform(0, 180))
        if all(math.hypot(b.cx - o.cx, b.cy - o.cy) > 50 for o in placed):
            placed.append(b)
            paint_box(rgb, b)
    return _write(path, rgb)


@pytest.fixture(scope="module")
def block_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_block_model(tmp_path_factory.mktemp("model") / "block.onnx")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scale.db'}"
    return request.getfixturevalue("pg_database")


def _single(path: Path, detector, url: str):  # noqa: ANN001 - a Detector
    with open_store(url) as store, open_scene(path) as scene:
        return scan(scene, SITE, detector, store)


def _same_pass(a, b) -> None:  # noqa: ANN001 - Passes
    """Same pass contents (ids and store apart), detection by detection."""
    assert (a.site, a.scene_path, a.acquired, a.gsd_m, a.crs, a.transform, a.model, a.metadata) == (
        b.site, b.scene_path, b.acquired, b.gsd_m, b.crs, b.transform, b.model, b.metadata
    )
    assert a.aoi_coverage == pytest.approx(b.aoi_coverage)
    assert len(a.detections) == len(b.detections) > 0
    for da, db in zip(a.detections, b.detections, strict=True):
        assert da.category == db.category
        assert da.score == pytest.approx(db.score, abs=1e-6)
        ba, bb = da.box, db.box
        assert (ba.cx, ba.cy, ba.length, ba.width, ba.heading_deg) == pytest.approx((bb.cx, bb.cy, bb.length, bb.width, bb.heading_deg), abs=1e-4)
        assert np.allclose(da.footprint, db.footprint, atol=1e-9)
        assert [c.type_id for c in da.candidates] == [c.type_id for c in db.candidates]


def test_scan_many_stores_the_passes_one_process_would(tmp_path: Path, block_model: Path, store_url: str) -> None:
    scenes = [block_scene(tmp_path / f"s{i}.tif", seed=i) for i in range(2)]
    done: list[tuple[int, int]] = []
    seen: list[str] = []
    passes = scan_many(
        scenes, SITE, store_url=store_url, workers=2, processes=False, model=block_model,
        detector_options=BLOCK_OPTS, tiles_per_task=7,
        progress=lambda d, t: done.append((d, t)), on_scene=lambda src, p, err, notes: seen.append(src),
    )
    # 195 tiles of 64 px per scene (15 x 13), in blocks of 7: each scene runs as 28 tasks.
    assert done[-1] == (390, 390) and sorted(seen) == sorted(map(str, scenes))
    ref_url = f"sqlite:///{tmp_path / 'single.db'}"
    for path, p in zip(scenes, passes, strict=True):
        _same_pass(p, _single(path, OnnxDetector(block_model, **BLOCK_OPTS), ref_url))
    with open_store(store_url) as store:
        stored = store.list_passes("testbase")
    assert sorted(p.id for p in stored) == sorted(p.id for p in passes)
    for p in passes:
        _same_pass(next(s for s in stored if s.id == p.id), p)


def seam_detector() -> SlicedDetector:
    """A stand-in model on 128 px tiles that reports the visible part of each red shape."""
    return SlicedDetector(GeometricBackend(input_tile=128), overlap_px=48)


def vehicle_detector() -> SlicedDetector:
    """The seam stand-in calling every shape a small vehicle."""
    return SlicedDetector(VehicleBackend(input_tile=128), overlap_px=48)


def test_distributed_scan_sizes_vehicles_by_the_scene_gsd_as_one_process(tmp_path: Path) -> None:
    path = shape_scene(tmp_path / "shapes.tif", seed=5)
    (p,) = scan_many([path], SITE, store_url=f"sqlite:///{tmp_path / 'a.db'}", workers=2, processes=False,
                     detector=DetectorSpec(factory=vehicle_detector), tiles_per_task=3)
    _same_pass(p, _single(path, vehicle_detector(), f"sqlite:///{tmp_path / 'b.db'}"))
    # 14-40 px shapes at 0.5 m: those of 9 m (18 px) or more are large vehicles.
    by_size = {(d.box.length * 0.5 >= 9.0, d.category) for d in p.detections}
    assert by_size == {(False, "small-vehicle"), (True, "large-vehicle")}


def test_seams_cut_across_tasks_merge_as_in_one_process(tmp_path: Path) -> None:
    path = shape_scene(tmp_path / "shapes.tif", seed=3)
    # One tile per task: every seam is merged on the client from different tasks.
    (p,) = scan_many([path], SITE, store_url=f"sqlite:///{tmp_path / 'a.db'}", workers=2, processes=False,
                     detector=DetectorSpec(factory=seam_detector), tiles_per_task=1)
    ref = _single(path, seam_detector(), f"sqlite:///{tmp_path / 'b.db'}")
    _same_pass(p, ref)
    # and many shapes were seen in parts by several tiles, i.e. by different tasks
    with open_scene(path) as scene:
        tiles = seam_detector().plan(scene)
    cut = 0
    for d in p.detections:
        xs, ys = d.box.corners()[:, 0], d.box.corners()[:, 1]
        seen_by = [t for t in tiles if t.window.col_off < xs.max() and xs.min() < t.window.col_off + t.window.width
                   and t.window.row_off < ys.max() and ys.min() < t.window.row_off + t.window.height]
        cut += len(seen_by) > 1
    assert cut >= 10


def test_bad_scenes_fail_alone_and_rerun_works(tmp_path: Path, block_model: Path) -> None:
    good = block_scene(tmp_path / "good.tif", seed=1)
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 100)
    far = tmp_path / "far.tif"
    far.write_bytes(good.read_bytes())
    with rasterio.open(far, "r+") as ds:
        ds.transform = UTM_T * UTM_T.translation(100000, 0)  # 50 km east: off the AOI
    url = f"sqlite:///{tmp_path / 's.db'}"
    reported: dict[str, str | None] = {}
    with pytest.raises(BatchScanError, match=r"^3 of 4 scenes failed \(.*corrupt.tif, .*missing.tif, .*far.tif\); 1 stored$") as e:
        scan_many([corrupt, tmp_path / "missing.tif", good, far], SITE, store_url=url, workers=2, processes=False,
                  model=block_model, detector_options=BLOCK_OPTS,
                  on_scene=lambda src, p, err, notes: reported.__setitem__(Path(src).name, None if err is None else str(err)))
    assert reported["good.tif"] is None
    assert "corrupt.tif" in reported["corrupt.tif"] and "missing.tif: file not found" in reported["missing.tif"]
    assert "far.tif covers 0.00% of the AOI" in reported["far.tif"]
    assert all("\n" not in msg for _, msg in e.value.failures)
    with open_store(url) as store:
        (only,) = store.list_passes("testbase")
    assert only.scene_path == str(good) and [p.id for p in e.value.passes] == [only.id]
    # fixed input, same batch again: everything stored, the good scene's pass replaced
    corrupt.write_bytes(good.read_bytes())
    with rasterio.open(corrupt, "r+") as ds:  # other bytes (the same bytes would be the same scene), same pixels
        ds.update_tags(NOTE="a second scene")
    passes = scan_many([corrupt, good], SITE, store_url=url, workers=1, processes=False, model=block_model, detector_options=BLOCK_OPTS)
    with open_store(url) as store:
        assert sorted(p.scene_path for p in store.list_passes("testbase")) == sorted([str(corrupt), str(good)])
    assert len(passes[0].detections) == len(passes[1].detections) == len(only.detections)


class DyingBackend(GeometricBackend):
    """Ends its process (as a crashed or killed worker would) on a tile holding a green pixel."""

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if (images[:, 1] == 200).any():
            os._exit(3)
        return super().run(images)


def dying_detector(tile: int) -> SlicedDetector:
    return SlicedDetector(DyingBackend(input_tile=tile), overlap_px=48)


def test_worker_processes_lost_worker_fails_only_its_scene(tmp_path: Path) -> None:
    ok = shape_scene(tmp_path / "ok.tif", seed=5)
    rgb = np.full((600, 800, 3), 3, np.uint8)  # dark, not blank: blank blocks are not observed
    rgb[300, 400, 1] = 200
    poison = _write(tmp_path / "poison.tif", rgb)
    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = DetectorSpec(factory=functools.partial(dying_detector, 256))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), pytest.raises(BatchScanError) as e:
        scan_many([ok, poison], SITE, store_url=url, workers=2, processes=True, detector=spec, tiles_per_task=4)
    ((src, msg),) = e.value.failures
    assert src == str(poison) and msg.startswith(f"{poison}: scan failed on a worker (KilledWorker") and msg.endswith("not stored")
    with open_store(url) as store:
        (stored,) = store.list_passes("testbase")
    assert stored.scene_path == str(ok)
    _same_pass(stored, _single(ok, dying_detector(256), f"sqlite:///{tmp_path / 'ref.db'}"))


def test_argument_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not both"):
        scan_many([], SITE, workers=2, scheduler_address="tcp://127.0.0.1:1")
    with pytest.raises(SceneError, match="nothing to scan"):
        scan_many([], SITE, workers=1)
    monkeypatch.setattr(sitewatch.scale, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:1 "):
        scan_many([tmp_path / "x.tif"], SITE, store_url=f"sqlite:///{tmp_path / 's.db'}", scheduler_address="tcp://127.0.0.1:1")


def test_shipped_model_seams_across_tasks_merge_as_in_one_process(tmp_path: Path, data_dir: Path) -> None:
    """The real model on a real Pléiades crop, one tile per Dask task: the pass one process stores."""
    import cv2

    from quality_support import shipped_evaluation
    from sitewatch.detect.evaluate import iter_labelled

    shipped, _ = shipped_evaluation()
    image = next(im for im, _ in iter_labelled(data_dir / "airbus-pleiades", "val") if im.counts()["aircraft"] >= 6)
    cx, cy = np.median([(o.box.cx, o.box.cy) for o in image.objects if o.category == "aircraft"], axis=0).astype(int)
    col, row = int(np.clip(cx - 400, 0, 2560 - 800)), int(np.clip(cy - 300, 0, 2560 - 600))
    rgb = cv2.cvtColor(cv2.imread(str(image.image_path)), cv2.COLOR_BGR2RGB)[row : row + 600, col : col + 800]
    path = _write(tmp_path / "real.tif", np.ascontiguousarray(rgb))
    (p,) = scan_many([path], SITE, store_url=f"sqlite:///{tmp_path / 'a.db'}", workers=2, processes=False, tiles_per_task=1)
    with open_scene(path) as scene:
        assert len(shipped.plan(scene)) >= 4  # several tasks, so seams are merged across them
    ref = _single(path, shipped, f"sqlite:///{tmp_path / 'b.db'}")
    assert sum(d.category == "aircraft" for d in p.detections) >= 3
    _same_pass(p, ref)


def test_blank_scene_runs_no_tiles_and_is_stored_as_not_observed(tmp_path: Path, block_model: Path) -> None:
    good = block_scene(tmp_path / "good.tif", seed=2)
    blank = _write(tmp_path / "blank.tif", np.zeros((600, 800, 3), np.uint8))
    done: list[tuple[int, int]] = []
    notes: dict[str, list[str]] = {}
    passes = scan_many(
        [blank, good], SITE, store_url=f"sqlite:///{tmp_path / 's.db'}", workers=1, processes=False, model=block_model,
        detector_options=BLOCK_OPTS, progress=lambda d, t: done.append((d, t)),
        on_scene=lambda src, p, err, warned: notes.__setitem__(Path(src).name, warned),
    )
    assert done[-1] == (195, 195)  # the good scene's tiles only
    empty, full = passes
    assert empty.observed_coverage == 0.0 and empty.detections == [] and empty.aoi_coverage == pytest.approx(1.0, abs=1e-3)
    with pytest.warns(LowCoverageWarning, match=r"valid pixels observe 0\.0%"):
        ref = _single(blank, OnnxDetector(block_model, **BLOCK_OPTS), f"sqlite:///{tmp_path / 'ref.db'}")
    assert (empty.observed_coverage, empty.observed_wkt, empty.metadata) == (ref.observed_coverage, ref.observed_wkt, ref.metadata)
    assert [n for n in notes["blank.tif"] if "valid pixels observe 0.0%" in n] and notes["good.tif"] == []
    assert full.observed_coverage == 1.0 and len(full.detections) > 0


def test_batch_scans_follow_the_thorough_setting(tmp_path: Path, block_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch scans build their workers' detectors as a scan on one machine does: the thorough
    mode's passes when the setting is on, unless options are given; the pass's model label says so."""
    assert default_spec("m.onnx") == DetectorSpec(model="m.onnx", options=())
    assert default_spec(None, {"tile_px": 256}) == DetectorSpec(model=None, options=(("tile_px", 256),))
    monkeypatch.setenv("SITEWATCH_DETECT_THOROUGH", "1")
    assert dict(default_spec("m.onnx").options) == {"extra_scales": (0.5,), "flip_test": True}
    scene = block_scene(tmp_path / "a.tif", seed=3)
    (p,) = scan_many([scene], SITE, store_url=f"sqlite:///{tmp_path / 's.db'}", workers=1, processes=False, model=block_model)
    assert p.model == "block-test 1.0.0 (×0.5 scale, mirrored)" and len(p.detections) > 0
