"""Sliced ONNX inference, decoding, tiling and seam merging, on models with exact answers."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import shapely
from rasterio.windows import Window

from detect_support import (
    BLOCK_LENGTH,
    BLOCK_WIDTH,
    GeometricBackend,
    VehicleBackend,
    paint_box,
    write_block_model,
)
from sitewatch.detect.decode import BoxArray, decode
from sitewatch.detect.merge import EDGE_SPARE, EDGE_TRUNCATED, EDGE_WHOLE, RowMerge, merge
from sitewatch.detect.onnx import OnnxDetector
from sitewatch.detect.registry import ModelRegistry
from sitewatch.detect.sliced import SlicedDetector
from sitewatch.detect.tiling import plan_tiles
from sitewatch.errors import ModelError
from sitewatch.geometry import polygons, rotated_iou
from sitewatch.imagery.base import ArrayScene
from sitewatch.types import CATEGORIES, OrientedBox


def _boxes(rows: list[tuple]) -> BoxArray:
    """rows of (category, score, cx, cy, length, width, heading)."""
    a = np.array(rows, dtype=float).reshape(-1, 7)
    return BoxArray(np.zeros(len(a), int), a[:, 0].astype(int), a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5], a[:, 6])


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 90.0) % 180.0 - 90.0)


# --- decoding -------------------------------------------------------------------------------


def test_decode_peak_geometry_and_heading() -> None:
    hm = np.zeros((2, 5, 8, 8), np.float32)
    geo = np.zeros((2, 6, 8, 8), np.float32)
    hm[1, 2, 3, 5] = 0.9  # ship in tile 1 at row 3, col 5
    hm[1, 2, 3, 6] = 0.5  # neighbour: not a local maximum
    hm[0, 0, 0, 0] = 0.2  # below threshold
    t = math.radians(2 * 30.0)
    geo[1, :, 3, 5] = [0.25, 0.75, 10.0, 30.0, math.cos(t), math.sin(t)]  # width > length: swapped
    b = decode(hm, geo, score_threshold=0.3, stride=4)
    assert len(b) == 1
    assert (b.tile[0], b.category[0]) == (1, 2)
    assert b.score[0] == pytest.approx(0.9)
    assert (b.cx[0], b.cy[0]) == pytest.approx(((5 + 0.25) * 4, (3 + 0.75) * 4))
    assert (b.length[0], b.width[0]) == (30.0, 10.0)
    assert b.heading_deg[0] == pytest.approx(120.0)


def test_decode_drops_non_finite_and_clamps_degenerate_sides() -> None:
    hm = np.zeros((1, 5, 8, 8), np.float32)
    geo = np.zeros((1, 6, 8, 8), np.float32)
    hm[0, 0, 1, 1] = hm[0, 0, 5, 5] = 0.9
    geo[0, :, 1, 1] = [0.5, 0.5, np.nan, 3.0, 1.0, 0.0]
    geo[0, :, 5, 5] = [0.5, 0.5, 0.0, 0.2, 1.0, 0.0]
    b = decode(hm, geo, score_threshold=0.5)
    assert len(b) == 1 and (b.cx[0], b.length[0], b.width[0]) == (22.0, 1.0, 1.0)


def test_decode_top_k_per_tile() -> None:
    hm = np.zeros((1, 5, 16, 16), np.float32)
    hm[0, 0, ::2, ::2] = np.linspace(0.4, 0.9, 64).reshape(8, 8)
    b = decode(hm, np.zeros((1, 6, 16, 16), np.float32), score_threshold=0.3, top_k=5)
    assert len(b) == 5
    assert b.score.min() == pytest.approx(np.sort(hm[0, 0, ::2, ::2].ravel())[-5])


# --- tiling ---------------------------------------------------------------------------------


def test_tiles_cover_region_with_overlap_and_partitioned_cores() -> None:
    tiles = plan_tiles(Window(0, 0, 1000, 300), tile_px=256, overlap_px=64)
    xs = sorted({t.window.col_off for t in tiles})
    assert xs[0] == 0 and xs[-1] + 256 == 1000
    assert all(b - a <= 256 - 64 for a, b in zip(xs, xs[1:], strict=False))
    # Cores tile the plane without gaps or overlaps: every point lies in exactly one.
    pts = np.random.default_rng(0).uniform([0, 0], [1000, 300], size=(500, 2))
    inside = np.array([[t.core[0] <= x < t.core[2] and t.core[1] <= y < t.core[3] for t in tiles] for x, y in pts])
    assert (inside.sum(axis=1) == 1).all()


def test_small_region_padded_to_multiple_of_32() -> None:
    (t,) = plan_tiles(Window(0, 0, 70, 33), tile_px=512, overlap_px=128)
    assert t.out_shape == (64, 96)
    assert (t.window.width, t.window.height) == (96, 64)


def test_downscaled_tiles_read_larger_windows() -> None:
    tiles = plan_tiles(Window(0, 0, 1024, 1024), scale=0.5, tile_px=256, overlap_px=64)
    assert {t.out_shape for t in tiles} == {(256, 256)}
    assert {t.window.width for t in tiles} == {512}
    assert tiles[0].scale == pytest.approx(0.5)


# --- merging --------------------------------------------------------------------------------


def test_rotated_iou_exact() -> None:
    a = _boxes([(0, 1, 10, 10, 20, 10, 90)])  # 20 wide, 10 tall
    b = _boxes([(0, 1, 20, 10, 20, 10, 90), (0, 1, 10, 10, 20, 10, 0)])
    iou = rotated_iou(a, b)
    assert iou[0, 0] == pytest.approx(100 / 300)
    assert iou[0, 1] == pytest.approx(100 / 300)  # cross of two 20x10: overlap 10x10


def test_merge_nms_per_category_and_across() -> None:
    b = _boxes(
        [
            (0, 0.9, 50, 50, 40, 20, 0),
            (0, 0.8, 52, 50, 40, 20, 0),  # same object, same category: suppressed
            (4, 0.7, 51, 50, 40, 20, 0),  # same object, other category, IoU > 0.7: suppressed
            (3, 0.6, 200, 50, 40, 20, 0),  # elsewhere: kept
            (3, 0.5, 200, 70, 40, 20, 90),  # crosses it, IoU 1/7: kept
        ]
    )
    assert merge(b).tolist() == [0, 3, 4]
    assert merge(b, cross_iou_threshold=1.01, shared_centre_area_ratio=0.0).tolist() == [0, 2, 3, 4]
    assert merge(b, cross_iou_threshold=1.01).tolist() == [0, 3, 4]  # the shared centre still makes it one object


def test_merge_keeps_two_aircraft_parked_two_metres_apart() -> None:
    """Wing to wing at 0.5 m: 40 m spans whose wingtips are 2 m (4 px) apart stay two aircraft."""
    # Aircraft 38 m long, 40 m span (80 px): centres 84 px apart across the span axis.
    b = _boxes([(0, 0.9, 100.0, 100.0, 80.0, 76.0, 0.0), (0, 0.6, 184.0, 100.0, 80.0, 76.0, 0.0)])
    assert rotated_iou(b.take(np.array([0])), b.take(np.array([1])))[0, 0] == 0.0
    assert sorted(merge(b).tolist()) == [0, 1]
    # Overlapping envelopes (wings interleaved, heading 45°): still two boxes below the NMS IoU.
    b = _boxes([(0, 0.9, 100.0, 100.0, 80.0, 30.0, 45.0), (0, 0.8, 130.0, 100.0, 80.0, 30.0, 45.0)])
    iou = rotated_iou(b.take(np.array([0])), b.take(np.array([1])))[0, 0]
    assert 0.0 < iou < 0.5
    assert sorted(merge(b).tolist()) == [0, 1]


def test_merge_one_object_one_category_at_a_shared_centre() -> None:
    """An aircraft also called a ship with another heading (IoU under 0.7) keeps only the better
    category; a ship beside it and a vehicle under its wing are kept."""
    aircraft = (0, 0.8, 200.0, 200.0, 100.0, 95.0, 10.0)
    ship_on_it = (2, 0.4, 203.0, 198.0, 104.0, 40.0, 80.0)
    b = _boxes([aircraft, ship_on_it])
    assert rotated_iou(b.take(np.array([0])), b.take(np.array([1])))[0, 0] < 0.7
    assert merge(b).tolist() == [0]
    assert sorted(merge(b, shared_centre_area_ratio=0.0).tolist()) == [0, 1]  # the old rule kept both
    # The ship scores higher there: the ship wins.
    b = _boxes([(0, 0.3, *aircraft[2:]), (2, 0.7, *ship_on_it[2:])])
    assert merge(b).tolist() == [1]
    # A real ship moored 60 px off (overlapping the aircraft's box, centres not shared) and a
    # vehicle under the wing (its centre inside the aircraft, the aircraft's centre not inside it).
    ship_beside = (2, 0.5, 262.0, 200.0, 90.0, 20.0, 0.0)
    vehicle = (4, 0.6, 230.0, 215.0, 10.0, 5.0, 30.0)
    b = _boxes([aircraft, ship_beside, vehicle])
    assert sorted(merge(b).tolist()) == [0, 1, 2]


def test_merge_one_vehicle_for_a_lorry_seen_as_large_over_its_trailer_and_small_over_its_cab() -> None:
    """Boxes of a FAIR1M lorry (45 px long): a large vehicle over the trailer, a small one over the
    cab, 59 % of the small box inside the large one, neither centre shared: one vehicle, the
    better score against its threshold kept. Two cars parked side by side, a car touching a lorry
    and a car under an aircraft's wing stay."""
    from sitewatch.detect.merge import size_groups

    groups = size_groups(CATEGORIES)
    assert groups.tolist() == [-1, -1, -1, 0, 0]
    trailer = (3, 0.566, 33.87, 905.70, 35.45, 10.47, 58.33)
    cab = (4, 0.543, 22.12, 910.32, 24.83, 10.09, 63.26)
    b = _boxes([trailer, cab])
    inter = shapely.area(shapely.intersection(*polygons(b)))
    assert 0.55 < inter / (24.83 * 10.09) < 0.62 and rotated_iou(b.take(np.array([0])), b.take(np.array([1])))[0, 0] < 0.35
    assert sorted(merge(b).tolist()) == [0, 1]  # without size classes: two vehicles
    assert merge(b, size_group=groups).tolist() == [0]
    assert merge(b, size_group=groups, category_thresholds=np.array([0.5, 0.7, 0.45, 0.6, 0.4])).tolist() == [1]
    assert sorted(merge(b, size_group=groups, nested_fraction=1.0).tolist()) == [0, 1]
    # Side by side (boxes touching): two cars of one class, and a car against a lorry's side.
    cars = _boxes([(4, 0.8, 100.0, 100.0, 9.0, 4.0, 90.0), (4, 0.7, 100.0, 104.0, 9.0, 4.0, 90.0)])
    assert sorted(merge(cars, size_group=groups).tolist()) == [0, 1]
    beside = _boxes([(3, 0.8, 100.0, 100.0, 30.0, 10.0, 90.0), (4, 0.7, 100.0, 106.5, 9.0, 4.0, 90.0)])
    assert 0 < shapely.area(shapely.intersection(*polygons(beside))) < 0.2 * 36
    assert sorted(merge(beside, size_group=groups).tolist()) == [0, 1]
    # A car wholly under an aircraft's wing: aircraft are no size class of vehicles.
    wing = _boxes([(0, 0.8, 200.0, 200.0, 100.0, 95.0, 10.0), (4, 0.6, 230.0, 215.0, 10.0, 5.0, 30.0)])
    assert sorted(merge(wing, size_group=groups).tolist()) == [0, 1]


def test_merge_drops_truncated_box_inside_whole_one() -> None:
    b = _boxes([(0, 0.95, 100, 100, 30, 30, 0), (0, 0.6, 108, 100, 14, 30, 90)])
    # The high-scoring box is a part cut by a tile edge; the whole one survives.
    b.score[:] = [0.6, 0.95]
    assert merge(b, edge=np.array([EDGE_WHOLE, EDGE_TRUNCATED])).tolist() == [0]
    assert merge(b).tolist() == [1, 0]


def test_spare_box_stands_in_for_a_cut_box_and_only_then() -> None:
    cut = (0, 0.9, 108, 100, 14, 30, 90)  # centred in its tile's core, runs out of the tile
    whole = (0, 0.7, 100, 100, 30, 30, 0)  # the neighbouring tile saw it whole (spare)
    other = (0, 0.8, 400, 100, 30, 30, 0)  # a spare with no cut box beneath it
    b = _boxes([cut, whole, other])
    assert merge(b, edge=np.array([EDGE_TRUNCATED, EDGE_SPARE, EDGE_SPARE])).tolist() == [1]
    # A whole box in the core keeps its place; the spare beside it is not needed.
    assert merge(b, edge=np.array([EDGE_WHOLE, EDGE_SPARE, EDGE_WHOLE])).tolist() == [0, 2]
    # Two tiles' spares for one cut object: one box survives (per-category NMS).
    twin = (0, 0.75, 101, 100, 30, 30, 0)
    b = _boxes([cut, whole, twin])
    assert merge(b, edge=np.array([EDGE_TRUNCATED, EDGE_SPARE, EDGE_SPARE])).tolist() == [2]


def test_row_merge_equals_one_merge_of_everything() -> None:
    """Dense random candidates (4 categories, clusters of near-duplicates, cut and spare boxes) fed
    band by band give exactly the boxes of one merge, in the same order, holding fewer at a time."""
    rng = np.random.default_rng(7)
    n, side = 3000, 40.0
    centres = rng.uniform(0, 2000, (n // 6, 2)).repeat(6, axis=0) + rng.normal(0, 6, (n, 2))
    rows = np.column_stack([
        rng.integers(0, 4, n), rng.uniform(0.05, 1, n), centres, rng.uniform(3, side, n), rng.uniform(2, side, n),
        rng.uniform(0, 180, n),
    ])  # fmt: skip
    rows[:, 4:6] = np.sort(rows[:, 4:6], axis=1)[:, ::-1]
    boxes, edge = _boxes(rows.tolist()), rng.choice([EDGE_WHOLE, EDGE_TRUNCATED, EDGE_SPARE], n).astype(np.int8)
    args = {"category_thresholds": np.array([0.4, 0.3, 0.35, 0.5])}
    whole = boxes.take(merge(boxes, edge=edge, **args))
    band = 100.0
    merger = RowMerge(reach=side, **args)
    held = []
    for top in np.arange(boxes.cy.min(), boxes.cy.max() + band, band):
        k = np.flatnonzero((boxes.cy >= top) & (boxes.cy < top + band))
        merger.add(boxes.take(k), edge[k], next_row=top + band)
        held.append(merger.held)
    got = merger.result()
    assert len(whole) > 100 and len(got) == len(whole)
    for f in ("category", "score", "cx", "cy", "length", "width", "heading_deg"):
        assert np.array_equal(getattr(got, f), getattr(whole, f)), f
    assert max(held) < n / 4  # only a few bands wait at any time

    # The reach matters: a cut box just above the next row, inside the whole box a later row sees.
    cut, whole_later = _boxes([(0, 0.9, 50, 95, 8, 6, 0)]), _boxes([(0, 0.8, 50, 100, 30, 20, 0)])
    for reach, expect in ((30.0, [100.0]), (0.0, [95.0])):  # too short a reach keeps the cut box
        merger = RowMerge(reach=reach)
        merger.add(cut, np.array([EDGE_TRUNCATED], np.int8), next_row=100.0)
        merger.add(whole_later, np.array([EDGE_SPARE], np.int8), next_row=np.inf)
        assert merger.result().cy.tolist() == expect


def test_touching_boxes_exact_cases_and_the_polygon_relation() -> None:
    from sitewatch.detect.merge import _groups, _touching

    # 10 x 4 boxes; heading 0 runs along y. Edge to edge 4 px apart in x; 4.01 apart; crossed at 90°;
    # at 45° on the diagonal, where the first reaches 4.95 px and the second's half width is 2: its
    # centre 6.93 px out (4.9, 4.9) overlaps by 0.02 px, 7.00 px out (4.95, 4.95) is 0.05 px clear.
    pairs = _boxes([(0, 1, 0, 0, 10, 4, 0), (0, 1, 4, 0, 10, 4, 0), (0, 1, 4.01, 0, 10, 4, 0),
                    (0, 1, 0, 0, 10, 4, 90), (0, 1, 4.9, 4.9, 10, 4, 45), (0, 1, 4.95, 4.95, 10, 4, 45)])  # fmt: skip
    i, j = np.zeros(5, dtype=int), np.arange(1, 6)
    assert _touching(pairs, i, j).tolist() == [True, False, True, True, False]
    polys = polygons(pairs)
    assert shapely.intersects(polys[i], polys[j]).tolist() == [True, False, True, True, False]
    # On random boxes the groups are the connected components of the polygon relation itself.
    rng = np.random.default_rng(11)
    n = 600
    rows = np.column_stack([np.zeros(n), np.ones(n), rng.uniform(0, 400, (n, 2)), rng.uniform(4, 40, n),
                            rng.uniform(2, 12, n), rng.uniform(0, 180, n)])  # fmt: skip
    boxes = _boxes(rows.tolist())
    polys = polygons(boxes)
    a, b = shapely.STRtree(polys).query(polys, predicate="intersects")
    d = np.hypot(boxes.cx[:, None] - boxes.cx, boxes.cy[:, None] - boxes.cy)
    ci, cj = np.nonzero(d <= 0.5 * np.minimum.outer(boxes.length, boxes.length))
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    links = coo_matrix((np.ones(len(a) + len(ci)), (np.r_[a, ci], np.r_[b, cj])), shape=(n, n))
    want = connected_components(links, directed=False)[1]
    got = _groups(boxes)
    assert len(set(want)) > 50  # many separate groups, some of several boxes
    assert all(len(set(got[want == g])) == 1 for g in set(want)) and len(set(got)) == len(set(want))


def test_detect_streams_the_merge_with_the_same_result() -> None:
    """detect (merging row by row) equals one merge of all the candidates of the same plan."""
    rng = np.random.default_rng(3)
    truth = [
        OrientedBox.make(float(x), float(y), float(rng.uniform(14, 60)), float(rng.uniform(8, 14)), float(rng.uniform(0, 180)))
        for x, y in rng.uniform(40, 960, (60, 2))
    ]
    scene = _scene_with(truth, size=1000)
    det = _seam_detector(batch_size=3)
    streamed = det.detect_boxes(scene)
    tiles = det.plan(scene)
    assert len({t.window.row_off for t in tiles}) >= 8
    cand, edge = det.run_tiles(scene, tiles)
    once = det.merge_candidates(cand, edge)
    assert len(streamed) == len(once) > 30
    for f in ("category", "score", "cx", "cy", "length", "width", "heading_deg"):
        assert np.array_equal(getattr(streamed, f), getattr(once, f)), f


# --- sliced inference with a real ONNX graph ------------------------------------------------


@pytest.fixture()
def block_model(tmp_path):
    return write_block_model(tmp_path / "block.onnx")


def _block_scene(w: int, h: int, cells: list[tuple[int, int]]) -> ArrayScene:
    rgb = np.zeros((h, w, 3), np.uint8)
    for x, y in cells:
        rgb[y : y + 4, x : x + 4, 0] = 255
    return ArrayScene(rgb, "blocks")


@pytest.mark.parametrize(("tile", "overlap", "batch"), [(64, 16, 1), (64, 32, 3), (512, 128, 4)])
def test_onnx_detector_exact_boxes(block_model, tile: int, overlap: int, batch: int) -> None:
    cells = [(100, 60), (8, 8), (292, 184), (60, 120)]  # 4-aligned blocks, some on tile seams
    det = OnnxDetector(block_model, tile_px=tile, overlap_px=overlap, batch_size=batch)
    found = det.detect(_block_scene(300, 200, cells))
    assert sorted((d.box.cx, d.box.cy) for d in found) == sorted((x + 2.0, y + 2.0) for x, y in cells)
    for d in found:
        assert d.category == "aircraft"
        assert (d.box.length, d.box.width, d.box.heading_deg) == (BLOCK_LENGTH, BLOCK_WIDTH, 0.0)
        assert d.score > 0.99
    assert det.label == "block-test 1.0.0"


def test_window_restricts_search_and_keeps_scene_frame(block_model) -> None:
    det = OnnxDetector(block_model, tile_px=64, overlap_px=16)
    found = det.detect(_block_scene(300, 200, [(100, 60), (200, 60)]), window=Window(152, 0, 148, 200))
    assert [(d.box.cx, d.box.cy) for d in found] == [(202.0, 62.0)]


def test_nodata_tiles_are_skipped(block_model) -> None:
    scene = _block_scene(256, 64, [(200, 20)])
    scene._valid[:, :128] = False
    det = OnnxDetector(block_model, tile_px=64, overlap_px=0)
    found = det.detect(scene)
    assert det.last_stats.tiles == 4 and det.last_stats.tiles_skipped == 2
    assert [(d.box.cx, d.box.cy) for d in found] == [(202.0, 22.0)]


def test_fixed_input_model_pads_small_scene(tmp_path) -> None:
    det = OnnxDetector(write_block_model(tmp_path / "fixed.onnx", fixed=64), overlap_px=16)
    assert det.info.fixed_shape == (64, 64) and det.tile_px == 64
    found = det.detect(_block_scene(40, 30, [(20, 12)]))
    assert [(d.box.cx, d.box.cy) for d in found] == [(22.0, 14.0)]


def test_progress_reports_every_tile(block_model) -> None:
    calls: list[tuple[int, int]] = []
    OnnxDetector(block_model, tile_px=64, overlap_px=16, batch_size=2).detect(_block_scene(200, 100, []), progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] == 8


# --- model loading errors -------------------------------------------------------------------


def test_missing_corrupt_and_foreign_models(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        OnnxDetector(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match="bad.onnx: not a usable ONNX model"):
        OnnxDetector(bad)
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    other = tmp_path / "other.onnx"
    import onnx

    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(other))
    with pytest.raises(ModelError, match="expected image"):
        OnnxDetector(other)
    with pytest.raises(ModelError, match="unknown model 'nonesuch'"):
        OnnxDetector("nonesuch")
    with pytest.raises(ModelError, match="not available"):
        OnnxDetector(write_block_model(tmp_path / "b.onnx"), providers=["NoSuchExecutionProvider"])


def test_model_from_environment(tmp_path, monkeypatch) -> None:
    path = write_block_model(tmp_path / "env.onnx", version="0.0.0-untrained")
    monkeypatch.setenv("SITEWATCH_MODEL", str(path))
    det = OnnxDetector(overlap_px=16)
    assert det.info.path == str(path)
    assert det.info.trained is False


def test_registry_refuses_duplicate_names(tmp_path) -> None:
    reg = ModelRegistry()
    reg.register("a", tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", tmp_path / "b.onnx")
    with pytest.raises(ModelError, match="a.onnx: model 'a' not found"):
        reg.resolve("a")


# --- seams: one object cut by tile edges → exactly one box ----------------------------------


def _seam_detector(**kw) -> SlicedDetector:
    return SlicedDetector(GeometricBackend(input_tile=128), overlap_px=48, **kw)


def _scene_with(boxes: list[OrientedBox], size: int = 400) -> ArrayScene:
    rgb = np.zeros((size, size, 3), np.uint8)
    for b in boxes:
        paint_box(rgb, b)
    return ArrayScene(rgb, "seams")


def _assert_matches(found, truth: list[OrientedBox], scene: ArrayScene) -> None:
    """One box per object, equal to what the backend reports when one tile holds the whole scene."""
    whole = SlicedDetector(GeometricBackend(input_tile=32 * math.ceil(max(scene.width, scene.height) / 32))).detect(scene)
    assert len(whole) == len(truth)
    assert len(found) == len(truth)
    for t in truth:
        ref = min(whole, key=lambda d: math.hypot(d.box.cx - t.cx, d.box.cy - t.cy))
        assert math.hypot(ref.box.cx - t.cx, ref.box.cy - t.cy) < 1.0  # the stand-in itself is sound
        assert ref.box.length == pytest.approx(t.length, abs=3.0)
        best = min(found, key=lambda d: math.hypot(d.box.cx - t.cx, d.box.cy - t.cy))
        assert (best.box.cx, best.box.cy) == pytest.approx((ref.box.cx, ref.box.cy), abs=1e-3)
        assert (best.box.length, best.box.width) == pytest.approx((ref.box.length, ref.box.width), abs=1e-3)
        assert _angle_diff(best.box.heading_deg, ref.box.heading_deg) < 1e-3


@pytest.mark.parametrize(
    ("gsd_m", "expected"),
    [(None, ["small-vehicle", "small-vehicle"]), (0.3, ["small-vehicle", "small-vehicle"]), (0.5, ["small-vehicle", "large-vehicle"])],
)
def test_a_vehicle_nine_metres_or_longer_is_a_large_vehicle_where_the_gsd_is_known(gsd_m, expected) -> None:
    """Boxes of 12 and 20 px: 6 / 10 m at 0.5 m, 3.6 / 6 m at 0.3 m; unknown GSD changes nothing."""
    truth = [OrientedBox.make(60.0, 60.0, 12.0, 6.0, 30.0), OrientedBox.make(200.0, 150.0, 20.0, 8.0, 0.0)]
    det = SlicedDetector(VehicleBackend(input_tile=256), overlap_px=0)
    found = sorted(det.detect(_scene_with(truth, size=256), gsd_m=gsd_m), key=lambda d: d.box.cx)
    assert [d.box.length for d in found] == pytest.approx([12, 20], abs=1.5)
    assert [d.category for d in found] == expected
    assert all(d.score == pytest.approx(0.9) for d in found)
    # The scene's own GSD serves when none is given.
    rgb = np.asarray(_scene_with(truth, size=256).read_rgb(Window(0, 0, 256, 256), (256, 256))[0])
    own = sorted(det.detect(ArrayScene(rgb, "gsd", gsd_m=gsd_m)), key=lambda d: d.box.cx)
    assert [d.category for d in own] == expected


def test_vehicle_size_class_clears_the_large_vehicle_threshold_and_takes_in_its_parts() -> None:
    sv = CATEGORIES.index("small-vehicle")
    backend = GeometricBackend()
    backend.info = replace(backend.info, score_thresholds={"small-vehicle": 0.4, "large-vehicle": 0.5})
    det = SlicedDetector(backend)
    # 24 px (12 m at 0.5 m) at 0.45 stays a small vehicle; at 0.9 it is a large one. A 10 px box
    # on its cab (a small vehicle of its own while both were small) is part of it and goes, though
    # it outranks it against the thresholds; a car 40 px away stays.
    boxes = _boxes([(sv, 0.45, 100, 100, 24, 8, 0), (sv, 0.9, 300, 100, 24, 8, 0), (sv, 0.78, 300, 106, 10, 6, 0), (sv, 0.8, 340, 100, 10, 5, 0)])
    assert len(det.merge_candidates(boxes)) == 4
    out = det.to_detections(det.merge_candidates(boxes), gsd_m=0.5)
    assert sorted((d.box.cx, d.box.cy, d.category) for d in out) == [
        (100, 100, "small-vehicle"), (300, 100, "large-vehicle"), (340, 100, "small-vehicle"),
    ]  # fmt: skip
    assert det.vehicle_size_class(boxes, None) is boxes


def test_object_across_two_tiles_gives_one_box() -> None:
    # Tiles start at 0, 68, 136, ... (128 px, >= 48 px overlap); x = 110..140 crosses x = 128 and 136.
    truth = OrientedBox.make(125, 50, 30, 12, 90)
    det = _seam_detector()
    scene = _scene_with([truth])
    found = det.detect(scene)
    cut = [t for t in det.plan(_scene_with([])) if t.window.col_off < 140 <= t.window.col_off + 128 or t.window.col_off < 110 < t.window.col_off + 128]
    assert len({t.window.col_off for t in cut}) >= 2  # the object really is cut by seams
    _assert_matches(found, [truth], scene)


def test_object_across_four_tiles_gives_one_box() -> None:
    truth = OrientedBox.make(132, 132, 36, 20, 30)  # around the corner where four tiles meet
    det = _seam_detector()
    scene = _scene_with([truth])
    found = det.detect(scene)
    _assert_matches(found, [truth], scene)
    assert det.last_stats.candidates >= 1


def test_many_objects_anywhere_each_found_once() -> None:
    rng = np.random.default_rng(7)
    truth: list[OrientedBox] = []
    while len(truth) < 30:
        b = OrientedBox.make(*rng.uniform(25, 375, 2), rng.uniform(14, 40), rng.uniform(6, 14), rng.uniform(0, 180))
        if all(math.hypot(b.cx - o.cx, b.cy - o.cy) > 50 for o in truth):
            truth.append(b)
    for batch, prefetch in ((1, False), (5, True)):
        scene = _scene_with(truth)
        _assert_matches(_seam_detector(batch_size=batch, prefetch=prefetch).detect(scene), truth, scene)


def test_without_core_rule_seams_duplicate() -> None:
    """Guard that the seam tests can fail: with no overlap handling a cut object yields two boxes."""
    truth = OrientedBox.make(128, 50, 30, 12, 90)
    det = SlicedDetector(GeometricBackend(input_tile=128), overlap_px=0)
    # With zero overlap, the tile edge at x=128 cuts the object into two halves, neither whole.
    found = det.detect(_scene_with([truth], size=256))
    assert len(found) == 2


def test_finer_scene_is_read_at_working_gsd_and_mapped_back() -> None:
    truth = OrientedBox.make(300, 200, 60, 24, 45)
    backend = GeometricBackend(input_tile=128, working_gsd_m=0.5)
    det = SlicedDetector(backend, overlap_px=48)
    scene = _scene_with([truth], size=512)
    scene.gsd_m = 0.25
    assert det.base_scale(scene.gsd_m) == pytest.approx(0.5)
    (d,) = det.detect(scene)
    assert math.hypot(d.box.cx - 300, d.box.cy - 200) < 2.0
    assert d.box.length == pytest.approx(60, abs=3) and d.box.width == pytest.approx(24, abs=3)
    assert det.last_stats.scales == (0.5,)
    assert det.detect(scene, gsd_m=0.5) and det.last_stats.scales == (1.0,)


def test_extra_scale_finds_object_larger_than_overlap_once() -> None:
    truth = OrientedBox.make(128, 100, 90, 30, 90)  # 90 px long: more than the 48 px overlap
    scene = _scene_with([truth], size=256)
    _assert_matches(_seam_detector(extra_scales=(0.5,)).detect(scene), [truth], scene)


def test_reduced_scale_pass_keeps_only_objects_too_large_for_the_base_pass() -> None:
    """A half-scale pass answers for large objects only: its boxes shorter than ``reduced_min_px``
    (base-scale pixels) are dropped before merging, so it adds no small candidates."""
    small, large = OrientedBox.make(60, 60, 20, 8, 30), OrientedBox.make(128, 180, 90, 30, 90)
    scene = _scene_with([small, large], size=256)

    def near(det: SlicedDetector, box: OrientedBox) -> int:
        cands, _ = det.run_tiles(scene, det.plan(scene))
        return int(np.sum(np.hypot(cands.cx - box.cx, cands.cy - box.cy) < 4.0))

    base = _seam_detector()
    floored = _seam_detector(extra_scales=(0.5,), reduced_min_px=64)
    unfloored = _seam_detector(extra_scales=(0.5,), reduced_min_px=0)
    assert near(unfloored, small) > near(base, small) >= 1  # the half pass sees the small one too
    assert near(floored, small) == near(base, small)  # ... and the floor drops it there
    assert near(floored, large) == near(unfloored, large) > near(base, large)  # the large one stays
    _assert_matches(floored.detect(scene), [small, large], scene)


class _LeftBlindBackend(GeometricBackend):
    """GeometricBackend whose score falls off towards the tile's left edge: ``(col + 1) / cols``
    of its score at output column ``col``, a model that is not mirror-symmetric."""

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heat, geo = super().run(images)
        cols = heat.shape[-1]
        return heat * ((np.arange(cols, dtype=np.float32) + 1) / cols), geo


def test_flip_test_averages_the_heatmap_with_the_mirrored_tiles() -> None:
    """With ``flip_test`` each tile also runs mirrored, and the two heatmaps (the mirrored one
    mirrored back) are averaged: an object in output column 4 of 32 scores 5/32 alone and
    (5/32 + 28/32) / 2 = 33/64 with the mirrored pass, which takes it over the 0.5 threshold; its
    box is the unmirrored pass's."""
    box = OrientedBox.make(18, 64, 12, 6, 0)  # centre in output column 4 (stride 4)
    scene = _scene_with([box], size=128)
    plain = SlicedDetector(_LeftBlindBackend(input_tile=128, score=1.0), overlap_px=0)
    flipped = SlicedDetector(_LeftBlindBackend(input_tile=128, score=1.0), overlap_px=0, flip_test=True)
    assert plain.detect(scene) == []
    found = flipped.detect(scene)
    assert len(found) == 1 and found[0].score == pytest.approx(33 / 64)
    (reference,) = SlicedDetector(GeometricBackend(input_tile=128, score=1.0), overlap_px=0).detect(scene)
    assert found[0].box == reference.box  # the unmirrored pass's geometry
    assert rotated_iou([found[0].box], [box])[0, 0] > 0.7
    assert flipped.backend.calls == 2 * plain.backend.calls


class _SizeAwareBackend(GeometricBackend):
    """A stand-in that sees small objects poorly: a red blob at least 9 px long scores 0.9; a
    shorter one 0.3, or 0 when its blue channel is lit (a "small false object": nothing at native
    resolution, an object once upsampled)."""

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heat, geo = super().run(images)
        s = self.info.stride
        for i, r, c in zip(*np.nonzero(heat[:, 0]), strict=True):
            length = geo[i, 2, r, c]
            blue = images[i, 2, int((r + geo[i, 1, r, c]) * s), int((c + geo[i, 0, r, c]) * s)]
            heat[i, 0, r, c] = 0.9 if length >= 9 else (0.0 if blue > 20 else 0.3)
        return heat, geo


@pytest.mark.parametrize(("rows", "cols", "tile"), [(64, 64, 128), (70, 100, 256)])
def test_upscale_consensus_averages_the_upsampled_pass_with_the_native_one(rows: int, cols: int, tile: int) -> None:
    """With ``upscale_consensus`` the 2x pass's heatmap is averaged with the heatmap of the same
    tile at native resolution, resampled to its grid: a 6 px object the native model scores 0.3
    (the 2x pass: 0.9) keeps (0.9 + 0.3 x 0.75²) / 2 = 0.534375 (bilinear upsampling puts 0.75²
    of a native cell's peak on the 2x cells it covers, the centre always in one of them); a small
    object the native model does not see at all drops to 0.45, under the 0.5 threshold. The same
    on a scene whose sides are no multiple of 32 (its 2x tile padded, the native run too)."""
    rgb = np.zeros((rows, cols, 3), np.uint8)
    rgb[17:23, 17:23] = (255, 0, 0)  # a small object, seen weakly at native resolution
    rgb[41:47, 41:47] = (255, 0, 60)  # a small false object: seen only upsampled
    scene = ArrayScene(rgb, "small")

    def detector(**options: object) -> SlicedDetector:
        return SlicedDetector(_SizeAwareBackend(input_tile=tile, working_gsd_m=0.3), overlap_px=0, **options)

    assert detector().detect(scene) == []  # native pass only: both under the threshold
    upsampled = detector(auto_scale=True).detect(scene)
    assert sorted(round(d.score, 6) for d in upsampled) == [0.9, 0.9]
    consensus = detector(auto_scale=True, upscale_consensus=True)
    (found,) = consensus.detect(scene)
    assert found.score == pytest.approx(0.534375)
    assert (found.box.cx, found.box.cy) == pytest.approx((20.0, 20.0), abs=0.5)
    # One more model call per upsampled batch: native, 2x, and 2x at native resolution.
    assert consensus.backend.calls == 3


class _HugeScene(ArrayScene):
    """A 40000 x 40000 px scene (4.8 GB as RGB) made on demand: data only in a small patch."""

    def __init__(self, patch: np.ndarray, at: tuple[int, int]) -> None:
        super().__init__(patch, "huge")
        self.width = self.height = 40_000
        self.at = at
        self.largest_read = 0

    def read_rgb(self, window=None, out_shape=None):
        w, h = int(window.width), int(window.height)
        self.largest_read = max(self.largest_read, w * h)
        rgb, valid = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), bool)
        x0, y0 = self.at[0] - int(window.col_off), self.at[1] - int(window.row_off)
        ph, pw = self._rgb.shape[:2]
        if 0 <= x0 <= w - pw and 0 <= y0 <= h - ph:  # patches across tile edges are not needed here
            rgb[y0 : y0 + ph, x0 : x0 + pw] = self._rgb
            valid[y0 : y0 + ph, x0 : x0 + pw] = True
        assert out_shape == (h, w)
        return rgb, valid


def test_scene_larger_than_memory_is_read_by_windows(block_model) -> None:
    patch = np.zeros((64, 64, 3), np.uint8)
    patch[20:24, 32:36, 0] = 255
    scene = _HugeScene(patch, at=(30_016, 12_000))
    det = OnnxDetector(block_model, tile_px=2048, overlap_px=128, batch_size=8)
    found = det.detect(scene)
    assert [(d.box.cx, d.box.cy) for d in found] == [(30_016 + 34.0, 12_000 + 22.0)]
    assert scene.largest_read == 2048 * 2048
    assert det.last_stats.tiles - det.last_stats.tiles_skipped <= 4


def test_model_name_from_environment_and_registry(tmp_path, monkeypatch) -> None:
    from sitewatch.detect.registry import models

    path = write_block_model(tmp_path / "named.onnx")
    models.register("block-named", path, replace=True)
    monkeypatch.setenv("SITEWATCH_MODEL", "block-named")
    assert OnnxDetector(overlap_px=16).info.path == str(path)
    assert {"sitewatch-det", "sitewatch-det-int8"} <= set(models.names())


def test_default_model_is_the_int8_twin_only_on_cpus_with_int8_dot_products(tmp_path, monkeypatch) -> None:
    from sitewatch.detect import registry

    monkeypatch.setattr(registry, "int8_within_float", lambda: True)  # a twin that meets the rule
    cpuinfo = tmp_path / "cpuinfo"
    x86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\n\nprocessor\t: 1\n"
    cpuinfo.write_text(x86)
    assert "avx512_vnni" in registry.cpu_flags(cpuinfo) and "processor" not in registry.cpu_flags(cpuinfo)
    assert registry.default_model(registry.cpu_flags(cpuinfo)) == "sitewatch-det-int8"
    cpuinfo.write_text(x86.replace(" avx512_vnni", ""))  # AVX2/AVX-512 without VNNI: float32
    assert registry.default_model(registry.cpu_flags(cpuinfo)) == "sitewatch-det"
    cpuinfo.write_text("Features\t: fp asimd evtstrm aes crc32 asimddp\n")  # Arm with dot product
    assert registry.default_model(registry.cpu_flags(cpuinfo)) == "sitewatch-det-int8"
    assert registry.cpu_flags(tmp_path / "absent") == frozenset()  # not Linux: float32
    assert registry.default_model(frozenset()) == "sitewatch-det"
    # Both twins ship, and with no model named the CPU decides; a named model always wins.
    monkeypatch.delenv("SITEWATCH_MODEL", raising=False)
    monkeypatch.setattr(registry, "cpu_flags", lambda: frozenset({"avx512_vnni"}))
    assert registry.models.resolve().name == "sitewatch-det.int8.onnx"
    assert registry.models.resolve("sitewatch-det").name == "sitewatch-det.onnx"
    # A twin that falls short of the float model is never the default, whatever the CPU.
    monkeypatch.setattr(registry, "int8_within_float", lambda: False)
    assert registry.default_model(frozenset({"avx512_vnni"})) == "sitewatch-det"
    assert registry.models.resolve().name == "sitewatch-det.onnx"
    monkeypatch.setattr(registry, "cpu_flags", lambda: frozenset({"avx2"}))
    assert registry.models.resolve().name == "sitewatch-det.onnx"
    assert registry.models.resolve("sitewatch-det-int8").name == "sitewatch-det.int8.onnx"


def test_bundled_int8_twin_is_the_float_models_own_and_carries_its_own_evaluation() -> None:
    import json

    from sitewatch.detect.reliability import EVALUATION_KEY, model_evaluation, model_metadata

    fp32, int8 = model_metadata("sitewatch-det"), model_metadata("sitewatch-det-int8")
    assert (int8["name"], int8["precision"]) == ("sitewatch-det-int8", "int8")
    for key in ("version", "categories", "score_thresholds", "score_threshold", "working_gsd_m", "trained_at"):
        assert int8[key] == fp32[key], key
    quantization = json.loads(int8["quantization"])
    assert quantization["calibration_tiles"] == 256 and quantization["seed"] == 0
    # Each twin's held-out evaluation is of that twin, on the same images.
    ev32 = model_evaluation(f"sitewatch-det {fp32['version']}")
    ev8 = model_evaluation(f"sitewatch-det-int8 {int8['version']}")
    assert ev32 is not None and ev8 is not None and json.loads(int8[EVALUATION_KEY])["model"].endswith("-int8 " + int8["version"])
    assert ev8["images"] == ev32["images"] and ev8["by_dataset"].keys() == ev32["by_dataset"].keys()
    # The rule it is the default under (no category of any held-out set more than 0.01 AP50 below
    # the float model), applied to the two stored evaluations; the default follows it.
    from sitewatch.detect import registry

    short = registry.int8_shortfalls()
    assert all(ds != "*" for ds, _, _ in short)  # the two stored evaluations are comparable
    assert short == registry.ap50_shortfalls(ev32, ev8)
    assert registry.default_model(frozenset({"avx512_vnni"})) == ("sitewatch-det" if short else "sitewatch-det-int8")


def test_ap50_shortfalls_exact() -> None:
    from sitewatch.detect.registry import ap50_shortfalls

    def ev(**rows: dict) -> dict:
        return {"by_dataset": rows}

    ref = ev(a={"aircraft": {"ap50": 0.90}, "ship": {"ap50": 0.50}, "helicopter": {"ap50": None}}, b={"ship": {"ap50": 0.80}})
    int8 = ev(a={"aircraft": {"ap50": 0.889}, "ship": {"ap50": 0.491}, "helicopter": {"ap50": 0.0}}, b={"ship": {"ap50": 0.95}})
    got = ap50_shortfalls(ref, int8)
    assert [(ds, cat) for ds, cat, _ in got] == [("a", "aircraft")]  # 0.011 below; 0.009 is within, unscored skipped
    assert got[0][2] == pytest.approx(0.011)
    assert ap50_shortfalls(ref, int8, max_drop=0.005) == [("a", "aircraft", pytest.approx(0.011)), ("a", "ship", pytest.approx(0.009))]
    assert ap50_shortfalls(ref, ev(a={"aircraft": {"ap50": 0.95}})) == []  # missing rows are not scored
    assert ap50_shortfalls(ref, ref) == []


# --- seams with the shipped model on a real image ----------------------------------------------

#: Window of the real scene both runs read, scene pixels (0.5 m: 1500 model pixels at 0.3 m).
SEAM_WINDOW_PX = 900
#: Detections whose centre lies nearer the window edge than this are left out of the comparison:
#: there the two runs see different padding, which is not a seam (scene pixels, about 1.5 aircraft lengths).
SEAM_EDGE_PX = 150
#: Shifts of the one-tile window, scene pixels: the same content seen at another phase of the
#: model's stride and resampling grid, with no seam at all. How well the one-tile run agrees with
#: itself shifted is the baseline the tiled run is held to.
SEAM_SHIFTS_PX = (3, 7, 30)
#: The tiled run's IoU may fall short of that baseline by at most this much (mean and worst box).
SEAM_MARGIN = 0.06


@pytest.mark.parametrize("pick", [0, 1])
def test_shipped_model_small_tiles_agree_with_one_large_tile(data_dir, pick: int) -> None:
    """The production tiling (512 px tiles, 128 px overlap) finds what one tile over the whole window
    finds, and its boxes agree with the one-tile boxes as well as those agree with themselves when the
    window moves by a few pixels (no seam involved)."""
    from quality_support import shipped_evaluation
    from sitewatch.detect.evaluate import iter_labelled
    from sitewatch.geometry import polygon_iou
    from sitewatch.imagery import open_scene

    shipped, _ = shipped_evaluation()

    def window_of(image) -> tuple[int, int]:  # noqa: ANN001
        # The window centred on the labelled aircraft (labels place it; the detections are compared).
        cx, cy = np.median([(o.box.cx, o.box.cy) for o in image.objects if o.category == "aircraft"], axis=0)
        return tuple(int(np.clip(c - SEAM_WINDOW_PX / 2, 0, 2560 - SEAM_WINDOW_PX - max(SEAM_SHIFTS_PX))) for c in (cx, cy))

    def labelled_inside(image) -> int:  # noqa: ANN001
        col, row = window_of(image)
        lo, hi = SEAM_EDGE_PX, SEAM_WINDOW_PX - SEAM_EDGE_PX
        return sum(
            o.category == "aircraft" and lo <= o.box.cx - col <= hi and lo <= o.box.cy - row <= hi for o in image.objects
        )

    # Images whose window holds at least 3 labelled aircraft away from its edges (chosen by the
    # labels, so that the comparison below never rests on false detections).
    items = [im for im, _ in iter_labelled(data_dir / "airbus-pleiades", "val") if labelled_inside(im) >= 3]
    image = items[pick]
    col, row = window_of(image)

    def inside(dets: list) -> list:
        # Aircraft only: the window is placed on labelled aircraft. A weak category's boxes near its
        # threshold (a large vehicle at 0.44 against 0.425) come and go with the tile's context,
        # which is not a seam.
        lo, hi = SEAM_EDGE_PX, SEAM_WINDOW_PX - SEAM_EDGE_PX
        return [
            d for d in dets if d.category == "aircraft" and lo <= d.box.cx - col <= hi and lo <= d.box.cy - row <= hi
        ]

    def best_iou(a: list, b: list) -> np.ndarray:
        pa, pb = (shapely.polygons(np.array([d.box.corners() for d in x])) for x in (a, b))
        return polygon_iou(pa, pb).max(axis=1)

    with open_scene(image.image_path, gsd_m=image.gsd_m) as scene:
        large = OnnxDetector(tile_px=1536, overlap_px=0)
        whole = large.detect(scene, window=Window(col, row, SEAM_WINDOW_PX, SEAM_WINDOW_PX), gsd_m=image.gsd_m)
        assert large.last_stats.tiles == 1
        shifted = [
            inside(large.detect(scene, window=Window(col + s, row + s, SEAM_WINDOW_PX, SEAM_WINDOW_PX), gsd_m=image.gsd_m))
            for s in SEAM_SHIFTS_PX
        ]
        small = OnnxDetector()
        assert (small.tile_px, small.overlap_px) == (shipped.info.input_tile, 128)
        tiled = small.detect(scene, window=Window(col, row, SEAM_WINDOW_PX, SEAM_WINDOW_PX), gsd_m=image.gsd_m)
        assert small.last_stats.tiles >= 9  # the window really is cut by seams
    whole, tiled = inside(whole), inside(tiled)
    assert len(whole) >= 3, f"too few aircraft inside the window of {image.image_path.name}"
    assert len(tiled) == len(whole)
    best = best_iou(whole, tiled)
    # Baseline: the one-tile boxes against the same run moved by a few pixels (matched boxes only;
    # an object that moves across the inner edge drops out).
    base = np.concatenate([b[b > 0.5] for b in (best_iou(whole, sh) for sh in shifted if sh)])
    # Measured (1.2.0): tiled 0.859, 0.938, 1.000 against shifted 0.76-0.87 (mean 0.82); tiled
    # 0.856, 0.933, 0.847, 0.765 against shifted 0.82-0.94 (mean 0.87). The model's boxes move by a
    # few pixels with the object's phase on its stride-4 grid, so IoU > 0.9 for every box is not
    # reached even without seams (docs/testing.md).
    print(image.image_path.name, "seam IoU:", best.round(3).tolist(), "shifted:", base.round(3).tolist())
    assert best.mean() >= base.mean() - SEAM_MARGIN, (best.round(3).tolist(), base.round(3).tolist())
    assert best.min() >= base.min() - SEAM_MARGIN, (best.round(3).tolist(), base.round(3).tolist())


def test_automatic_extra_scale_only_for_small_regions_of_unknown_or_coarse_gsd(tmp_path) -> None:
    from sitewatch.detect.sliced import AUTO_MAX_PIXELS, AUTO_SCALE

    det = OnnxDetector(write_block_model(tmp_path / "m.onnx", working_gsd_m="0.3"), auto_scale=True)
    small, large = 2000 * 1500, AUTO_MAX_PIXELS + 1
    assert det.scales_for(small, None) == (1.0, AUTO_SCALE)  # a screenshot of unknown GSD
    assert det.scales_for(small, 0.6) == (1.0, AUTO_SCALE)  # --gsd twice the working GSD
    assert det.scales_for(small, 0.3) == (1.0,)  # at the working GSD: nothing to gain
    assert det.scales_for(large, None) == (1.0,)  # large scenes keep the default cost
    det.auto_scale = False
    assert det.scales_for(small, None) == (1.0,)
    # Models that declare no working GSD get no automatic pass.
    assert OnnxDetector(write_block_model(tmp_path / "n.onnx"), auto_scale=True).scales_for(small, None) == (1.0,)
    assert OnnxDetector(write_block_model(tmp_path / "o.onnx", working_gsd_m="0.3")).scales_for(small, None) == (1.0,)  # off by default
    # The plan holds the extra pass's tiles: a 256 px scene at 64 px tiles, then at 2x.
    scene = ArrayScene(np.zeros((256, 256, 3), np.uint8))
    det.auto_scale = True
    scales = sorted({round(t.scale, 3) for t in det.plan(scene)})
    assert scales == [1.0, 2.0]


def test_thorough_setting_sets_the_detector_of_scans(tmp_path) -> None:
    """Scans, watches and the web API take their detector from ``load_default_detector``: the
    thorough mode's passes when the setting is on; a detector built directly keeps its options
    (evaluation, mining and quantisation are not changed by the setting)."""
    from sitewatch.pipeline import load_default_detector
    from sitewatch.settings import Settings

    path = str(write_block_model(tmp_path / "m.onnx"))
    plain = load_default_detector(path, settings=Settings(detect_thorough=False))
    assert (plain.extra_scales, plain.flip_test) == ((), False)
    thorough = load_default_detector(path, settings=Settings(detect_thorough=True))
    assert (thorough.extra_scales, thorough.flip_test) == ((0.5,), True)
    assert thorough.label == plain.label + " (×0.5 scale, mirrored)"  # stored with each pass
    direct = OnnxDetector(path, settings=Settings(detect_thorough=True))
    assert (direct.extra_scales, direct.flip_test) == ((), False)


def test_label_names_the_extra_passes(tmp_path) -> None:
    """The label stored with each pass names the passes beside the native one: counts made with
    them are not the default's."""
    path = write_block_model(tmp_path / "m.onnx", version="2.0.0")
    assert OnnxDetector(path).label == "block-test 2.0.0"
    assert OnnxDetector(path, extra_scales=(0.5,), flip_test=True).label == "block-test 2.0.0 (×0.5 scale, mirrored)"
    upscaled = OnnxDetector(path, auto_scale=True, upscale_consensus=True)
    assert upscaled.label == "block-test 2.0.0 (×2 on small images with consensus)"
    explicit = OnnxDetector(path, extra_scales=(2.0,), auto_scale=True, upscale_consensus=True)
    assert explicit.label == "block-test 2.0.0 (×2 scale with consensus)"


def test_merge_ranks_categories_by_score_against_their_thresholds() -> None:
    """A ship at 0.40 (threshold 0.35) outranks an aircraft at 0.45 (threshold 0.475) at one centre."""
    b = _boxes([(0, 0.45, 200.0, 200.0, 100.0, 95.0, 10.0), (2, 0.40, 203.0, 198.0, 104.0, 40.0, 80.0)])
    thresholds = np.array([0.475, 0.45, 0.35, 0.45, 0.45])
    assert merge(b).tolist() == [0]
    assert merge(b, category_thresholds=thresholds).tolist() == [1]
    # Within one category the order is the score's.
    same = _boxes([(2, 0.5, 50, 50, 40, 20, 0), (2, 0.9, 52, 50, 40, 20, 0)])
    assert merge(same, category_thresholds=thresholds).tolist() == [1]


def test_merge_one_object_one_category_for_thin_boxes_at_one_place() -> None:
    """A boat called a car too: the boxes do not hold each other's centres, but the centres are
    closer than half the shorter box's length; one survives. Parked cars 3 m apart stay."""
    boat = (2, 0.6, 100.0, 100.0, 30.0, 8.0, 0.0)
    car = (4, 0.5, 100.0, 106.0, 18.0, 6.0, 90.0)
    b = _boxes([boat, car])
    assert merge(b).tolist() == [0]
    cars = _boxes([(4, 0.6, 100.0, 100.0, 9.0, 4.0, 0.0), (4, 0.5, 106.0, 100.0, 9.0, 4.0, 0.0), (3, 0.5, 112.0, 100.0, 12.0, 5.0, 0.0)])
    assert sorted(merge(cars).tolist()) == [0, 1, 2]


def test_read_cache_follows_one_row_of_tiles_across_the_scene(tmp_path) -> None:
    """GDAL's block cache holds the block rows one row of tiles can touch across the region, within the cap."""
    import rasterio

    from sitewatch.detect.sliced import _read_cache_mb
    from sitewatch.detect.tiling import plan_tiles
    from sitewatch.imagery import open_scene

    path = tmp_path / "wide.tif"
    profile = {"driver": "GTiff", "width": 8192, "height": 1024, "count": 3, "dtype": "uint16", "tiled": True,
               "blockxsize": 256, "blockysize": 256}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((3, 1024, 8192), np.uint16))
    with open_scene(path, gsd_m=0.5) as scene:
        region = Window(0, 0, 8192, 1024)
        tiles = plan_tiles(region, scale=1.0, tile_px=512, overlap_px=128)
        # 1.25 x (512 / 256 + 1 block rows of 256) x 8192 px x 6 bytes = 45 MiB
        assert _read_cache_mb(scene, region, tiles, 256) == 45
        assert _read_cache_mb(scene, region, tiles, 40) == 40  # the cap holds
        assert _read_cache_mb(scene, Window(0, 0, 512, 512), tiles[:1], 256) == 16  # the floor
        assert _read_cache_mb(scene, region, tiles, None) is None
    assert _read_cache_mb(ArrayScene(np.zeros((64, 64, 3), np.uint8), "a"), region, tiles, 256) == 256
