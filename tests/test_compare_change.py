"""Pixel change (LEVIR-CD F1 baseline, cloud mask) and whole comparisons on synthetic passes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from sitewatch.compare import (
    CompareSettings,
    PassImage,
    change_map,
    cloud_mask,
    compare_images,
    compare_passes,
    write_change_map,
)
from sitewatch.compare.registration import local_spread
from sitewatch.errors import CompareError
from sitewatch.types import Detection, OrientedBox, Pass


def _levir_pairs(root: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for mask_path in sorted((root / "label").glob("*.png")):
        a = cv2.cvtColor(cv2.imread(str(root / "A" / mask_path.name)), cv2.COLOR_BGR2RGB)
        b = cv2.cvtColor(cv2.imread(str(root / "B" / mask_path.name)), cv2.COLOR_BGR2RGB)
        out.append((a, b, cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127))
    return out


def _scores(pairs, predict) -> tuple[float, float]:  # noqa: ANN001
    """Pooled (precision, F1) of ``predict(a, b) -> changed`` over the pairs."""
    tp = fp = fn = 0
    for a, b, truth in pairs:
        changed = predict(a, b)
        tp += int((changed & truth).sum())
        fp += int((changed & ~truth).sum())
        fn += int((~changed & truth).sum())
    return tp / max(tp + fp, 1), 2 * tp / (2 * tp + fp + fn)


def _plain_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The trivial detector: largest per-band absolute difference above its Otsu threshold."""
    from skimage.filters import threshold_otsu

    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).max(axis=2)
    return diff > threshold_otsu(diff)


def test_levir_cd_change_against_trivial_baselines(data_dir: Path) -> None:
    """Pixel change on the 11 LEVIR-CD pairs, default settings, against two trivial detectors.

    Measured (docs/testing.md): method precision 0.212, F1 0.243; plain difference 0.172, 0.233;
    every pixel "changed" 0.154, 0.267. The method beats both baselines on precision and the plain
    difference on F1, but no setting of it beats "all changed" on F1 (best 0.261 at
    change_sigma_px 2), because LEVIR masks mark new buildings only while the method also finds
    illumination, season and car changes. The last assertion records that; when the method
    improves past it, it fails so the docs can say so.
    """
    pairs = _levir_pairs(data_dir / "change" / "levir-cd")
    assert len(pairs) == 11
    precision, f1 = _scores(pairs, lambda a, b: change_map(a, b, np.ones(a.shape[:2], bool), gsd_m=0.5).changed)
    plain_precision, plain_f1 = _scores(pairs, _plain_difference)
    all_precision, all_f1 = _scores(pairs, lambda a, b: np.ones(a.shape[:2], bool))
    figures = f"method {precision:.3f}/{f1:.3f}, plain {plain_precision:.3f}/{plain_f1:.3f}, all {all_precision:.3f}/{all_f1:.3f}"
    assert precision >= all_precision + 0.04, figures
    assert precision >= plain_precision + 0.025, figures
    assert f1 >= plain_f1 + 0.005, figures
    assert f1 < all_f1, f"the method now beats 'all changed' on F1; update docs/compare.md and docs/testing.md ({figures})"


def ground(size: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = cv2.GaussianBlur(rng.normal(110, 30, (size, size)).astype(np.float32), (0, 0), 2.5)
    grey = np.clip((grey - 110) * 3 + 110, 0, 255)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def paint(img: np.ndarray, box: OrientedBox, value: int) -> None:
    cv2.fillPoly(img, [np.round(box.corners()).astype(np.int32)], (value, value, value))


def shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def scenario():  # noqa: ANN201
    """Pass A: two aircraft; pass B (shifted 6, -4 px): one remained, one left, a new one and a new building."""
    a = ground()
    b = ground()
    p1, p2, p3 = OrientedBox.make(80, 80, 40, 36, 30), OrientedBox.make(200, 90, 40, 36, 90), OrientedBox.make(150, 240, 40, 36, 0)
    paint(a, p1, 240)
    paint(a, p2, 240)
    paint(b, p1, 240)
    paint(b, p3, 240)
    cv2.rectangle(b, (240, 200), (300, 300), (255, 255, 255), -1)  # unexplained change: a new roof
    b = shifted(b, 6, -4)
    dets_a = [Detection(p1, "aircraft", 0.9), Detection(p2, "aircraft", 0.9)]
    dets_b = [Detection(p1.translated(6, -4), "aircraft", 0.9), Detection(p3.translated(6, -4), "aircraft", 0.9)]
    return a, b, dets_a, dets_b


def test_comparison_of_synthetic_passes() -> None:
    a, b, dets_a, dets_b = scenario()
    valid = np.ones(a.shape[:2], bool)
    c = compare_images(PassImage(a, valid, 1.0, 0.5), PassImage(b, valid, 1.0, 0.5), dets_a, dets_b, gsd_m=0.5, since="2024-12-10")
    assert abs(c.registration.shift_x_px - 6) <= 0.2 and abs(c.registration.shift_y_px + 4) <= 0.2
    assert c.counts["aircraft"] == {"arrived": 1, "departed": 1, "remained": 1, "moved": 0, "a": 2, "b": 2}
    px = c.pixel_change["image"]
    assert 5.0 < px["pct_changed"] < 20.0  # 2 aircraft footprints + a 60x100 px building in 320x320
    assert 20.0 < px["pct_explained_by_objects"] < 80.0
    assert c.sentence.startswith("Since 2024-12-10: aircraft steady at 2 (1 arrived, 1 left, 0 moved)")
    assert "% of the image changed" in c.sentence
    json.dumps(c.to_dict())


def test_passes_detected_differently_are_flagged() -> None:
    a, b, dets_a, dets_b = scenario()
    valid = np.ones(a.shape[:2], bool)

    def pass_of(model: str) -> Pass:
        return Pass("site", "x.tif", None, None, 1.0, 0.5, model)

    def warned(model_a: str, model_b: str) -> list[str]:
        c = compare_images(
            PassImage(a, valid, 1.0, 0.5), PassImage(b, valid, 1.0, 0.5), dets_a, dets_b, gsd_m=0.5,
            pass_a=pass_of(model_a), pass_b=pass_of(model_b),
        )
        return [w for w in c.warnings if "detected differently" in w]

    assert warned("sitewatch-det 1.6.0", "sitewatch-det 1.6.0") == []
    assert warned("sitewatch-det 1.6.0", "sitewatch-det 1.6.0 (×0.5 scale, mirrored)") == [
        "the passes were detected differently (A: sitewatch-det 1.6.0; B: sitewatch-det 1.6.0 (×0.5 scale, "
        "mirrored)): some arrivals and departures may be the detectors', not the ground's"
    ]


def test_unchanged_passes_read_largely_unchanged() -> None:
    a = ground(seed=4)
    box = OrientedBox.make(100, 100, 80, 16, 45)
    paint(a, box, 230)
    b = shifted(a, 3, 2)
    valid = np.ones(a.shape[:2], bool)
    d_a, d_b = [Detection(box, "ship", 0.9)], [Detection(box.translated(3, 2), "ship", 0.9)]
    c = compare_images(PassImage(a, valid, 1.0, 0.5), PassImage(b, valid, 1.0, 0.5), d_a, d_b, gsd_m=0.5, since="2024-12-10")
    assert c.sentence.startswith("Largely unchanged since 2024-12-10: 1 of 1 ship remained, 0.")


def test_cloud_covered_pass_is_not_called_unchanged() -> None:
    a, b, dets_a, dets_b = scenario()
    cloudy = b.copy()
    cloudy[:, :] = 245  # thick flat cloud over the whole of B
    assert cloud_mask(cloudy, gsd_m=0.5).mean() > 0.95
    valid = np.ones(a.shape[:2], bool)
    c = compare_images(
        PassImage(a, valid, 1.0, 0.5), PassImage(cloudy, valid, 1.0, 0.5), dets_a, [], gsd_m=0.5,
        registration=_shift(6, -4),
    )
    assert "pixel change" in c.not_compared
    assert c.counts["aircraft"]["departed"] == 0 and len(c.unobserved) == 2
    assert "unchanged" not in c.sentence.lower()
    assert "pixel change not assessed" in c.sentence


def _shift(dx: float, dy: float):  # noqa: ANN202
    from sitewatch.compare import Registration

    return Registration.translation(dx, dy, quality=1.0, method="given")


def test_no_detections_in_either_pass_says_objects_not_compared() -> None:
    a, b, _, _ = scenario()
    valid = np.ones(a.shape[:2], bool)
    c = compare_images(PassImage(a, valid, 1.0, 0.5), PassImage(b, valid, 1.0, 0.5), [], [], gsd_m=0.5)
    assert c.not_compared["objects"] == "no detections in either pass"
    assert "objects not compared" in c.sentence


def test_detections_only_pass_names_the_pass_without_pixels() -> None:
    a, _, dets_a, dets_b = scenario()
    valid = np.ones(a.shape[:2], bool)
    c = compare_images(PassImage(a, valid, 1.0, 0.5), None, dets_a, dets_b, gsd_m=0.5, registration=_shift(6, -4))
    assert c.not_compared["pixel change"] == "no pixels for pass B (only its stored detections are available)"
    assert c.counts["aircraft"]["remained"] == 1
    both = compare_images(None, None, dets_a, dets_b, gsd_m=0.5, registration=_shift(6, -4))
    assert both.not_compared["pixel change"] == "no pixels for passes A and B (only their stored detections are available)"
    assert both.counts["aircraft"]["remained"] == 1


def _pass(path: Path, rgb: np.ndarray, dets: list[Detection], x0: float, gsd: float = 0.5, pass_id: int = 1) -> Pass:
    import rasterio

    transform = Affine(gsd, 0, x0, 0, -gsd, 4_000_000.0)
    with rasterio.open(path, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=3, dtype="uint8", crs="EPSG:32637", transform=transform) as dst:
        dst.write(np.moveaxis(rgb, 2, 0))
    from shapely.geometry import box

    fp = box(x0, 4_000_000 - gsd * rgb.shape[0], x0 + gsd * rgb.shape[1], 4_000_000)
    return Pass("test", str(path), None, fp.wkt, 1.0, gsd, "test", crs=CRS.from_epsg(32637).to_wkt(), transform=tuple(transform)[:6], detections=dets, id=pass_id)


def test_compare_passes_on_georeferenced_files_writes_a_change_map(tmp_path: Path) -> None:
    pytest.importorskip("sitewatch.imagery")
    a, b, dets_a, dets_b = scenario()
    pa = _pass(tmp_path / "a.tif", a, dets_a, 500_000.0)
    pb = _pass(tmp_path / "b.tif", b, dets_b, 500_000.0, pass_id=2)
    c = compare_passes(pa, pb, settings=CompareSettings(working_gsd_m=0.5))
    assert c.counts["aircraft"]["remained"] == 1 and c.counts["aircraft"]["arrived"] == 1
    assert abs(c.registration.shift_x_px - 6) <= 0.3
    out = write_change_map(c, tmp_path / "change.tif")
    import rasterio

    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32637
        data = ds.read(1)
        assert set(np.unique(data)) <= {0, 1, 255} and (data == 1).any()


def test_disjoint_footprints_and_gsd_ratio_are_refused(tmp_path: Path) -> None:
    a, b, dets_a, dets_b = scenario()
    pa = _pass(tmp_path / "a.tif", a, dets_a, 500_000.0)
    far = _pass(tmp_path / "b.tif", b, dets_b, 510_000.0, pass_id=2)
    with pytest.raises(CompareError, match="do not overlap"):
        compare_passes(pa, far)
    coarse = _pass(tmp_path / "c.tif", b, dets_b, 500_000.0, gsd=2.0, pass_id=3)
    with pytest.raises(CompareError, match=r"GSDs too different.*4\.0x"):
        compare_passes(pa, coarse)


def test_local_misregistration_is_measured_and_stated() -> None:
    """B sheared by up to ±3.8 px across the scene: the comparison says moves under ~3 sigma cannot be told apart."""
    a = ground(size=640, seed=4)
    k = 0.012
    m = np.float32([[1, k, -k * 320], [0, 1, 0]])  # x_b = x_a + k (y_a - 320)
    b = cv2.warpAffine(a, m, (640, 640), borderMode=cv2.BORDER_REFLECT)
    valid = np.ones((640, 640), bool)
    s = CompareSettings(registration="phase", local_block_px=128)
    det = [Detection(OrientedBox.make(320, 320, 40, 36, 30), "aircraft", 0.9)]
    c = compare_images(PassImage(a, valid, 1.0, 0.5), PassImage(b, valid, 1.0, 0.5), det, det, gsd_m=0.5, settings=s)
    spread = c.registration.local_spread_px
    # Exact answer: the robust spread of the true residuals at the 81 half-overlapping block centres.
    centres = np.arange(64, 640 - 64 + 1, 64)
    xs, ys = np.meshgrid(centres, centres)
    reg = c.registration
    truth = np.column_stack([xs.ravel(), ys.ravel(), k * (ys.ravel() - 320) - reg.shift_x_px, np.full(xs.size, -reg.shift_y_px)])
    assert reg.local_blocks == 81
    assert spread == pytest.approx(local_spread(truth), abs=0.2)
    assert c.registration.error_px >= spread
    assert any("locally misregistered" in w for w in c.warnings)
    flat = compare_images(PassImage(a, valid, 1.0, 0.5), PassImage(shifted(a, 2, 1), valid, 1.0, 0.5), det, det, gsd_m=0.5, settings=s)
    assert flat.registration.local_spread_px is not None and flat.registration.local_spread_px < 0.3
    assert not any("locally misregistered" in w for w in flat.warnings)
