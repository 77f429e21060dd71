"""The scan's steps one by one (plan → detect → finish → save) on synthetic scenes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box

from sitewatch.errors import CoverageError, GeoreferenceError, LowCoverageWarning
from sitewatch.imagery import ArrayScene
from sitewatch.imagery.validity import Observed
from sitewatch.pipeline import ScanPlan, detect, finish, plan, save, scan
from sitewatch.store import open_store
from sitewatch.types import Detection, OrientedBox
from test_scan import UTM, UTM_T, FakeDetector, FakeSite, _aoi_px, _lonlat

# AOI corners on half pixels, so the window's floor/ceil cannot tip over on rounding: (100, 100)-(500, 400).
SITE = FakeSite("steps", _aoi_px(UTM_T, UTM, 100.5, 100.5, 499.5, 399.5))


def utm_scene(rgb: np.ndarray | None = None, path: str = "utm") -> ArrayScene:
    """800 x 600 px at 0.5 m in UTM 36N near Hmeimim; mid-grey (observed everywhere) unless given."""
    pixels = np.full((600, 800, 3), 90, np.uint8) if rgb is None else rgb
    return ArrayScene(pixels, path, crs=CRS.from_string(UTM), transform=UTM_T)


def _det(cx: float, cy: float, category: str = "aircraft") -> Detection:
    return Detection(OrientedBox.make(cx, cy, 40, 30, 0), category, 0.9)


def test_plan_reads_the_aoi_window_at_the_scene_gsd() -> None:
    planned = plan(utm_scene(), SITE)
    assert planned.window == Window(100, 100, 400, 300)
    assert planned.gsd_m == 0.5
    assert planned.coverage == pytest.approx(1.0, abs=1e-9)
    assert planned.observed.coverage == 1.0 and not planned.observed_nothing
    footprint = shapely.from_wkt(planned.footprint_wkt)  # the scene holds the whole AOI
    assert footprint.symmetric_difference(SITE.aoi).area <= 1e-9 * SITE.aoi.area
    assert plan(utm_scene(), SITE, gsd_m=0.25).gsd_m == 0.25


def test_plan_of_a_partial_scene_warns_and_clips_the_window() -> None:
    # AOI (400.5, 300.5)-(1199.5, 899.5): the scene holds 399.5 x 299.5 px of its 799 x 599
    partial = FakeSite("partial", _aoi_px(UTM_T, UTM, 400.5, 300.5, 1199.5, 899.5))
    with pytest.warns(LowCoverageWarning, match=r"^utm covers only 25\.0% of the AOI of site 'partial'$"):
        planned = plan(utm_scene(), partial)
    assert planned.window == Window(400, 300, 400, 300)
    assert planned.coverage == pytest.approx(399.5 * 299.5 / (799 * 599), abs=1e-5)
    # observed: pixels whose centre lies inside the AOI (399 x 299 here) over the AOI's whole area
    assert planned.observed.coverage == round(399 * 299 / (799 * 599), 4)
    with pytest.raises(CoverageError, match=r"^utm covers 25\.00% of the AOI of site 'partial' \(at least 30% needed\)"):
        plan(utm_scene(), partial, min_coverage=0.3)
    off = FakeSite("off", _aoi_px(UTM_T, UTM, 2000, 2000, 2400, 2300))
    with pytest.raises(CoverageError, match=r"^utm covers 0\.00% of the AOI of site 'off'"):
        plan(utm_scene(), off)


def test_plan_records_what_valid_pixels_observed() -> None:
    rgb = np.full((600, 800, 3), 90, np.uint8)
    rgb[:, :400] = 0  # west half black: blank, not observed
    whole = FakeSite("whole", _aoi_px(UTM_T, UTM, 0, 0, 800, 600))
    with pytest.warns(LowCoverageWarning, match=r"valid pixels observe 50\.0% of the AOI of site 'whole'"):
        planned = plan(utm_scene(rgb), whole)
    assert planned.window == Window(0, 0, 800, 600) and planned.observed.coverage == 0.5
    observed = shapely.from_wkt(planned.observed.area_wkt)
    east = _aoi_px(UTM_T, UTM, 400, 0, 800, 600)
    assert observed.symmetric_difference(east).area <= 1e-4 * east.area  # vertices stored to 1e-7 deg


def test_pixel_space_plan_is_the_whole_image_at_the_given_gsd() -> None:
    shot = ArrayScene(np.full((300, 400, 3), 90, np.uint8), path="shot.png")
    anywhere = FakeSite("anywhere", box(0, 0, 1, 1))
    assert plan(shot, anywhere, gsd_m=0.3) == ScanPlan(None, 0.3, None, None, Observed(1.0))
    with pytest.raises(GeoreferenceError, match=r"^shot.png: no CRS and no GSD"):
        plan(shot, anywhere)


def test_a_blank_plan_runs_no_detector_and_finishes_as_not_observed() -> None:
    blank = utm_scene(np.zeros((600, 800, 3), np.uint8), path="blank")
    with pytest.warns(LowCoverageWarning, match=r"observe 0\.0%"):
        planned = plan(blank, SITE)
    assert planned.observed_nothing and planned.window == Window(100, 100, 400, 300)
    det = FakeDetector([(200.0, 200.0, 40, 30, 0, "aircraft")])
    assert detect(blank, planned, det) == [] and det.calls == []
    p = finish(blank, SITE, planned, [], det.label)
    assert p.observed_coverage == 0.0 and p.detections == [] and p.aoi_coverage == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="detections on a scene that observed none of the AOI"):
        finish(blank, SITE, planned, [_det(200, 200)], det.label)


def test_detect_runs_the_detector_on_the_plan_window() -> None:
    scene = utm_scene()
    planned = plan(scene, SITE)
    det = FakeDetector([(200.0, 200.0, 40, 30, 0, "aircraft"), (700.0, 500.0, 40, 30, 0, "aircraft")])
    (found,) = detect(scene, planned, det, progress=lambda done, total: None)
    assert (found.box.cx, found.box.cy) == (200.0, 200.0)
    assert det.calls == [{"window": Window(100, 100, 400, 300), "gsd_m": 0.5}]


def test_finish_keeps_detections_centred_in_the_aoi_and_places_them_on_the_ground() -> None:
    scene = utm_scene()
    planned = plan(scene, SITE)
    found = [_det(200, 200), _det(499.8, 250, "small-vehicle"), _det(450, 350, "large-vehicle"), _det(50, 50)]
    p = finish(scene, SITE, planned, found, "fake-det 1.0")
    # (499.8, 250) is in the window but east of the AOI's edge at 499.5; (50, 50) is off both
    assert [(d.box.cx, d.box.cy, d.category) for d in p.detections] == [(200, 200, "aircraft"), (450, 350, "large-vehicle")]
    assert p.metadata["detections_outside_aoi"] == 2
    assert p.metadata["window_px"] == [100, 100, 400, 300] and p.metadata["scene_size_px"] == [800, 600]
    for d in p.detections:
        assert np.allclose(d.footprint, [_lonlat(UTM_T, UTM, x, y) for x, y in d.box.corners()], atol=1e-9)
        assert d.candidates  # identified
    assert (p.site, p.scene_path, p.scene_hash, p.model, p.gsd_m) == ("steps", "utm", None, "fake-det 1.0", 0.5)
    assert (p.crs, p.transform) == ("EPSG:32636", tuple(UTM_T)[:6])
    assert (p.aoi_coverage, p.footprint_wkt, p.observed_coverage) == (planned.coverage, planned.footprint_wkt, 1.0)
    assert p.id is None


def test_the_steps_chained_are_scan_and_save_stores_in_one_go() -> None:
    scene = utm_scene()
    boxes = [(200.0, 200.0, 40, 30, 30, "aircraft"), (505.0, 250.0, 10, 4, 0, "small-vehicle")]
    planned = plan(scene, SITE)
    stepped = finish(scene, SITE, planned, detect(scene, planned, FakeDetector(boxes)), "fake-det 1.0")
    assert stepped == scan(scene, SITE, FakeDetector(boxes), None)
    with open_store() as store:
        saved = save(store, stepped)
        assert saved.id is not None and all(d.id is not None for d in saved.detections)
        (only,) = store.list_passes("steps")
    assert only.id == saved.id and len(only.detections) == 1
