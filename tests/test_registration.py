"""Co-registration: exact answers on synthetic pairs, agreement with pairs.csv on real Pléiades pairs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from pairs_support import pair_rows, read_grey, seeded_subset, sift_shift
from sitewatch.compare import CompareSettings, Registration, phase_correlate, register
from sitewatch.compare.registration import gradient_image, local_spread
from sitewatch.errors import CompareError


def texture(size: int = 384, seed: int = 0) -> np.ndarray:
    """Grey 0-255 ground-like texture: smoothed noise plus a few bright rectangles."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.normal(size=(size, size)), 3.0)
    img = (img - img.min()) / np.ptp(img) * 200
    for _ in range(25):
        x, y = rng.integers(0, size - 40, 2)
        img[y : y + rng.integers(5, 40), x : x + rng.integers(5, 40)] += 40
    return np.clip(img, 0, 255).astype(np.float32)


def warp(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image B with A pixel (x, y) at ``m @ (x, y, 1)``, and its valid mask."""
    h, w = img.shape
    b = cv2.warpAffine(img, m[:2], (w, h), flags=cv2.INTER_CUBIC)
    valid = cv2.warpAffine(np.ones_like(img), m[:2], (w, h), flags=cv2.INTER_NEAREST) > 0.5
    return b, valid


def corner_error(reg: Registration, m: np.ndarray, shape: tuple[int, int]) -> float:
    h, w = shape
    xs, ys = np.array([0, w, 0, w, w / 2]), np.array([0, 0, h, h, h / 2])
    ex, ey = m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    gx, gy = reg.apply(xs, ys)
    return float(np.hypot(gx - ex, gy - ey).max())


@pytest.mark.parametrize("dx, dy", [(7.3, -4.6), (-12.25, 3.5), (0.4, 0.0)])
def test_subpixel_shift_is_recovered_within_0_2_px(dx: float, dy: float) -> None:
    a = texture()
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
    b, valid = warp(a, m)
    sx, sy, quality = phase_correlate(a, b, None, valid)
    assert abs(sx - dx) <= 0.2 and abs(sy - dy) <= 0.2
    assert quality > 0.5
    reg = register(a, b, None, valid)
    assert corner_error(reg, m, a.shape) <= 0.2


def test_rotation_and_shift_are_recovered_within_0_2_px() -> None:
    a = texture(seed=3)
    m = np.vstack([cv2.getRotationMatrix2D((192.0, 192.0), -3.0, 1.0), [0, 0, 1]])
    m[:2, 2] += [4.4, -2.7]
    b, valid = warp(a, m)
    reg = register(a, b, None, valid)
    assert reg.method.startswith("features")
    assert reg.rotation_deg == pytest.approx(3.0, abs=0.05)
    assert corner_error(reg, m, a.shape) <= 0.2


def test_radiometric_difference_does_not_break_phase_correlation() -> None:
    a = texture(seed=5)
    m = np.array([[1.0, 0.0, 5.5], [0.0, 1.0, 2.25], [0.0, 0.0, 1.0]])
    b, valid = warp(a, m)
    b = np.clip(255 - 0.6 * b, 0, 255)  # inverted and darker, as across seasons or sensors
    dx, dy, _ = phase_correlate(a, b, None, valid)
    assert abs(dx - 5.5) <= 0.2 and abs(dy - 2.25) <= 0.2


def test_unrelated_images_are_refused_with_a_reason() -> None:
    with pytest.raises(CompareError, match="quality"):
        register(texture(seed=1), texture(seed=2), settings=CompareSettings(min_quality=0.3))


def test_disjoint_valid_areas_are_refused() -> None:
    a = texture()
    va = np.zeros(a.shape, bool)
    vb = np.zeros(a.shape, bool)
    va[:, :100] = True
    vb[:, 200:] = True
    with pytest.raises(CompareError, match="do not overlap"):
        register(a, a, va, vb)


def test_pure_shift_has_no_local_misregistration() -> None:
    a = texture(size=768, seed=7)
    m = np.array([[1.0, 0.0, 3.3], [0.0, 1.0, -1.8], [0.0, 0.0, 1.0]])
    b, valid = warp(a, m)
    reg = register(a, b, None, valid, CompareSettings(local_block_px=128))
    assert reg.local_blocks >= 20
    assert reg.local_spread_px is not None and reg.local_spread_px < 0.15
    assert reg.error_px < 0.5


def test_shear_is_measured_as_local_misregistration() -> None:
    """B sheared (x shift grows with y): one shift cannot align it; the block residual spread says by how much."""
    size, k, block = 768, 0.006, 128
    a = texture(size=size, seed=8)
    m = np.array([[1.0, k, -k * size / 2], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # x_b = x_a + k (y_a - size/2)
    b, valid = warp(a, m)
    s = CompareSettings(registration="phase", local_block_px=block)
    reg = register(a, b, None, valid, s)
    centres = np.arange(block / 2, size - block / 2 + 1, block / 2)
    xs, ys = np.meshgrid(centres, centres)
    truth = np.column_stack([xs.ravel(), ys.ravel(), k * (ys.ravel() - size / 2) - reg.shift_x_px, np.full(xs.size, -reg.shift_y_px)])
    expected = local_spread(truth)
    assert expected == pytest.approx(1.4826 * k * size / 4, rel=0.2)  # MAD of a uniform ramp: a quarter of its range
    assert reg.local_spread_px == pytest.approx(expected, abs=0.2)
    assert reg.error_px >= reg.local_spread_px


# --- real pairs -------------------------------------------------------------------------------

# Real pairs come as a fixed seeded subset of pairs.csv rows (pairs_support); the reference shift is
# an independent SIFT estimate, since the listed shifts are quantised to 2.5 px and often off.

#: Pairs in the default run, and least SIFT matches for the reference to count.
REAL_PAIRS, MIN_SIFT_MATCHES = 4, 30


def _pairs(data_dir: Path) -> list[dict[str, str]]:
    return pair_rows(data_dir)


def _read(data_dir: Path, sub: str, name: str, reduce: int) -> np.ndarray:
    return read_grey(data_dir, sub, name, reduce).astype(np.float32)


def _ncc(ga: np.ndarray, gb: np.ndarray, dx: float, dy: float) -> float:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = ga.shape
    wb = cv2.warpAffine(gb, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    inside = cv2.warpAffine(np.ones_like(ga), m, (w, h), flags=cv2.WARP_INVERSE_MAP) > 0.5
    x, y = ga[inside] - ga[inside].mean(), wb[inside] - wb[inside].mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def test_real_pairs_shift_agrees_with_an_independent_sift_estimate(data_dir: Path) -> None:
    """Seeded pairs: phase correlation at 1/4 resolution vs SIFT at 1/2, full-resolution pixels.

    Measured on seed 19 (docs/testing.md): most pairs agree within 1 px; a pair with local
    distortion can disagree by several pixels, so the test asserts the median and a majority.
    """
    errors = []
    for r in seeded_subset(_pairs(data_dir), REAL_PAIRS):
        ref, n = sift_shift(read_grey(data_dir, r["subdir_a"], r["image_a"], 2), read_grey(data_dir, r["subdir_b"], r["image_b"], 2))
        assert n >= MIN_SIFT_MATCHES, (r["image_a"], r["image_b"], n)
        a = _read(data_dir, r["subdir_a"], r["image_a"], 4)
        b = _read(data_dir, r["subdir_b"], r["image_b"], 4)
        reg = register(a, b, settings=CompareSettings(registration="phase"))
        assert reg.quality > 0.5
        errors.append(float(np.hypot(4 * reg.shift_x_px - 2 * ref[0], 4 * reg.shift_y_px - 2 * ref[1])))
    print("phase vs SIFT, full-resolution px:", np.round(errors, 2).tolist())  # shown with -s
    assert np.median(errors) <= 1.0, errors
    assert np.mean(np.array(errors) <= 2.0) > 0.5, errors


@pytest.mark.slow
def test_all_real_pairs_register_at_least_as_well_as_pairs_csv(data_dir: Path) -> None:
    """Over all pairs: the estimated shift aligns the images at least as well as the listed one."""
    rows = _pairs(data_dir)
    errors, better = [], 0
    for r in rows:
        a = _read(data_dir, r["subdir_a"], r["image_a"], 2)
        b = _read(data_dir, r["subdir_b"], r["image_b"], 2)
        reg = register(a, b)
        sx, sy = float(r["shift_x_px_fullres"]), float(r["shift_y_px_fullres"])
        errors.append(np.hypot(2 * reg.shift_x_px - sx, 2 * reg.shift_y_px - sy))
        ga, gb = gradient_image(a), gradient_image(b)
        better += _ncc(ga, gb, reg.shift_x_px, reg.shift_y_px) >= _ncc(ga, gb, sx / 2, sy / 2) - 0.01
    errors = np.array(errors)
    assert better >= 0.9 * len(rows)
    assert np.median(errors) <= 5.0
    assert (errors <= 2.0).sum() >= 10
