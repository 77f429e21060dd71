"""Co-registration of two passes: the residual shift (and rotation/scale) between their pixels.

Frames
------
A :class:`Registration` maps pixel coordinates of image A to pixel coordinates of image B
(x right, y down, pixels): a ground point at ``(x, y)`` in A is at ``M @ (x, y, 1)`` in B. For a
pure translation this is the ``(x + shift_x, y + shift_y)`` convention of
``airbus-pleiades/pairs.csv``.

Method
------
1. Phase correlation (:func:`skimage.registration.phase_cross_correlation`, sub-pixel by
   upsampling) of Hann-windowed gradient-magnitude images, so that radiometric differences
   (season, sun, sensor) matter little. Quality = ``1 - second peak / first peak`` of the
   phase-correlation surface (0: no distinct peak, 1: a single sharp peak).
2. Feature matching (SIFT, ORB where SIFT is unavailable) + RANSAC similarity
   (:func:`cv2.estimateAffinePartial2D`) when phase correlation is poor or rotation/scale shows;
   its translation is then refined by phase correlation of the warped images.
3. Local check: with B warped onto A by the chosen transform, blocks of the grid are
   phase-correlated again (:func:`local_residuals`). Off-nadir views, terrain and
   orthorectification differences make different parts of a scene shift by different amounts, so
   one transform cannot align every pixel; the spread of the block residuals (robust: 1.4826 x
   median absolute deviation, per axis, combined) is the measured local misregistration and sets
   ``error_px`` when it exceeds the peak-quality estimate, so that object matching tolerances
   allow for it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import sobel, window
from skimage.registration import phase_cross_correlation

from sitewatch.compare.settings import CompareSettings
from sitewatch.errors import CompareError

log = logging.getLogger(__name__)

Matrix = tuple[float, float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class Registration:
    """An A-pixel → B-pixel affine (similarity) transform and how well it is known.

    Attributes:
        matrix: ``(a, b, c, d, e, f)`` with ``xb = a*xa + b*ya + c``, ``yb = d*xa + e*ya + f``.
        quality: 0..1, phase-correlation peak ratio or RANSAC inlier ratio.
        method: "phase-correlation", "features", "features+phase-correlation", "georeference",
            "identity".
        overlap: fraction of A's valid pixels that are valid in B after registration, 0..1.
        inliers: RANSAC inliers of feature matching, or None.
        error_px: estimated 1-sigma registration error, pixels of A: the larger of the
            phase-correlation peak estimate and the measured local misregistration.
        local_spread_px: measured 1-sigma spread of local (block) residual shifts after
            registration, pixels of A, or None when not measured (too few textured blocks).
        local_blocks: blocks that entered ``local_spread_px``.
    """

    matrix: Matrix
    quality: float
    method: str
    overlap: float = 1.0
    inliers: int | None = None
    error_px: float = 0.5
    local_spread_px: float | None = None
    local_blocks: int = 0

    @classmethod
    def translation(cls, dx: float, dy: float, **kw: object) -> Registration:
        """A pure shift: A pixel ``(x, y)`` is B pixel ``(x + dx, y + dy)``."""
        kw.setdefault("quality", 1.0)
        kw.setdefault("method", "identity" if dx == dy == 0 else "translation")
        return cls((1.0, 0.0, float(dx), 0.0, 1.0, float(dy)), **kw)  # type: ignore[arg-type]

    @property
    def shift_x_px(self) -> float:
        """Translation term along x, pixels of B (the shift itself for a pure translation)."""
        return self.matrix[2]

    @property
    def shift_y_px(self) -> float:
        """Translation term along y, pixels of B."""
        return self.matrix[5]

    @property
    def scale(self) -> float:
        """B pixels per A pixel."""
        a, b = self.matrix[0], self.matrix[3]
        return math.hypot(a, b)

    @property
    def rotation_deg(self) -> float:
        """Rotation of A's axes in B, degrees clockwise on screen (x right, y down)."""
        return math.degrees(math.atan2(self.matrix[3], self.matrix[0]))

    def as_array(self) -> np.ndarray:
        """The 3x3 homogeneous matrix."""
        a, b, c, d, e, f = self.matrix
        return np.array([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]])

    def apply(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map A pixel coordinates to B pixel coordinates."""
        a, b, c, d, e, f = self.matrix
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        return a * xs + b * ys + c, d * xs + e * ys + f

    def inverse_apply(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map B pixel coordinates to A pixel coordinates."""
        inv = np.linalg.inv(self.as_array())
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        return inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2], inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]

    def then(self, other: np.ndarray) -> np.ndarray:
        """3x3 matrix of ``other ∘ self`` (apply self, then ``other``)."""
        return other @ self.as_array()

    def with_matrix(self, m: np.ndarray, **kw: object) -> Registration:
        """A copy with a new 3x3 (or 2x3) matrix and optionally other fields replaced."""
        fields = {
            "quality": self.quality,
            "method": self.method,
            "overlap": self.overlap,
            "inliers": self.inliers,
            "error_px": self.error_px,
            "local_spread_px": self.local_spread_px,
            "local_blocks": self.local_blocks,
        }
        fields.update(kw)
        return Registration(_to_tuple(m), **fields)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return {
            "shift_x_px": round(self.shift_x_px, 3),
            "shift_y_px": round(self.shift_y_px, 3),
            "rotation_deg": round(self.rotation_deg, 4),
            "scale": round(self.scale, 5),
            "matrix": [round(v, 6) for v in self.matrix],
            "quality": round(self.quality, 3),
            "method": self.method,
            "overlap": round(self.overlap, 3),
            "inliers": self.inliers,
            "error_px": round(self.error_px, 3),
            "local_spread_px": None if self.local_spread_px is None else round(self.local_spread_px, 3),
            "local_blocks": self.local_blocks,
        }


def _to_tuple(m: np.ndarray) -> Matrix:
    m = np.asarray(m, dtype=float)
    return (float(m[0, 0]), float(m[0, 1]), float(m[0, 2]), float(m[1, 0]), float(m[1, 1]), float(m[1, 2]))


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """Grey level 0-255 (float32) of an RGB (rows, cols, 3) or grey (rows, cols) image."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(
        np.float32
    )


def gradient_image(grey: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Gradient magnitude (Sobel), zero near invalid pixels so masks add no edges, unit std."""
    g = sobel(ndimage.gaussian_filter(grey.astype(np.float32), 1.0))
    if valid is not None and not valid.all():
        g[~ndimage.binary_erosion(valid, iterations=4, border_value=1)] = 0.0
    g = g - g[g > 0].mean() if (g > 0).any() else g
    if valid is not None and not valid.all():
        g[~ndimage.binary_erosion(valid, iterations=4, border_value=1)] = 0.0
    std = float(g.std())
    return g / std if std > 0 else g


def _peak_quality(a: np.ndarray, b: np.ndarray, exclude_px: int = 4) -> tuple[float, tuple[int, int]]:
    """``1 - second / first`` peak of the phase-correlation surface, and the integer peak (dy, dx)."""
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-12
    surface = np.fft.fftshift(np.real(np.fft.ifft2(cross)))
    iy, ix = np.unravel_index(int(np.argmax(surface)), surface.shape)
    first = float(surface[iy, ix])
    masked = surface.copy()
    masked[
        max(iy - exclude_px, 0) : iy + exclude_px + 1, max(ix - exclude_px, 0) : ix + exclude_px + 1
    ] = -np.inf
    second = float(masked.max())
    if first <= 0:
        return 0.0, (0, 0)
    cy, cx = surface.shape[0] // 2, surface.shape[1] // 2
    return float(np.clip(1.0 - max(second, 0.0) / first, 0.0, 1.0)), (iy - cy, ix - cx)


def phase_correlate(
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    valid_a: np.ndarray | None = None,
    valid_b: np.ndarray | None = None,
    *,
    upsample_factor: int = 20,
) -> tuple[float, float, float]:
    """Translation between two same-shape grey images by phase correlation of gradient images.

    Args:
        grey_a, grey_b: grey images (rows, cols) on the same grid.
        valid_a, valid_b: optional bool masks of valid pixels.
        upsample_factor: sub-pixel precision is ``1 / upsample_factor`` pixel.

    Returns:
        ``(dx, dy, quality)``: a ground point at ``(x, y)`` in A is at ``(x + dx, y + dy)`` in B
        (pixels); quality 0..1 (see module docstring).
    """
    if grey_a.shape != grey_b.shape:
        raise ValueError(f"images differ in shape: {grey_a.shape} vs {grey_b.shape}")
    win = window("hann", grey_a.shape).astype(np.float32)
    ga = gradient_image(grey_a, valid_a) * win
    gb = gradient_image(grey_b, valid_b) * win
    quality, _ = _peak_quality(ga, gb)
    shift, _, _ = phase_cross_correlation(ga, gb, upsample_factor=upsample_factor, normalization="phase")
    # skimage returns the shift that registers B onto A, i.e. minus the A→B displacement.
    return -float(shift[1]), -float(shift[0]), quality


def _features(grey: np.ndarray, valid: np.ndarray | None, n: int) -> tuple[list, np.ndarray | None, int]:
    img = np.clip(grey, 0, 255).astype(np.uint8)
    img = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(img)
    mask = (
        None
        if valid is None
        else ndimage.binary_erosion(valid, iterations=8, border_value=1).astype(np.uint8) * 255
    )
    if hasattr(cv2, "SIFT_create"):
        det = cv2.SIFT_create(nfeatures=n)
        norm = cv2.NORM_L2
    else:  # pragma: no cover - OpenCV builds without SIFT
        # cv2.ORB_create exists at run time (OpenCV 4 and 5) but is missing from OpenCV 5's type stubs
        det = cv2.ORB_create(nfeatures=n)  # type: ignore[attr-defined]
        norm = cv2.NORM_HAMMING
    kp, desc = det.detectAndCompute(img, mask)
    return kp, desc, norm


def match_features(
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    valid_a: np.ndarray | None = None,
    valid_b: np.ndarray | None = None,
    *,
    n_features: int = 4000,
    ratio: float = 0.75,
    ransac_px: float = 2.0,
) -> tuple[np.ndarray | None, int, int]:
    """Similarity transform A→B from SIFT (or ORB) matches and RANSAC.

    Images may differ in shape. Returns ``(matrix 2x3 or None, inliers, tentative matches)``.
    """
    kpa, da, norm = _features(grey_a, valid_a, n_features)
    kpb, db, _ = _features(grey_b, valid_b, n_features)
    if da is None or db is None or len(kpa) < 3 or len(kpb) < 3:
        return None, 0, 0
    pairs = cv2.BFMatcher(norm).knnMatch(da, db, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < 3:
        return None, 0, len(good)
    src = np.array([kpa[m.queryIdx].pt for m in good], dtype=np.float32)
    dst = np.array([kpb[m.trainIdx].pt for m in good], dtype=np.float32)
    m, inl = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=ransac_px,
        maxIters=5000,
        confidence=0.999,
        refineIters=20,
    )
    if m is None or inl is None:
        return None, 0, len(good)
    return m, int(inl.sum()), len(good)


def warp_to_a(
    image_b: np.ndarray, reg: Registration | np.ndarray, shape_a: tuple[int, int], *, nearest: bool = False
) -> np.ndarray:
    """Resample image B onto A's pixel grid (rows, cols) = ``shape_a``; outside B reads 0."""
    m = reg.as_array() if isinstance(reg, Registration) else np.asarray(reg, dtype=float)
    flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    src = image_b.astype(np.uint8) if image_b.dtype == bool else image_b
    out = cv2.warpAffine(
        src,
        m[:2].astype(np.float64),
        (shape_a[1], shape_a[0]),
        flags=flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out.astype(bool) if image_b.dtype == bool else out


def _overlap(valid_a: np.ndarray, valid_b: np.ndarray, m: np.ndarray) -> float:
    wb = warp_to_a(valid_b, m, valid_a.shape, nearest=True)
    na = int(valid_a.sum())
    return float((valid_a & wb).sum()) / na if na else 0.0


def _corner_gap(m: np.ndarray, shape: tuple[int, int], dx: float, dy: float) -> float:
    """Largest distance between a similarity and a pure shift at the grid corners, pixels."""
    h, w = shape
    pts = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=float)
    sim = pts @ np.asarray(m, dtype=float)[:2].T
    shift = pts[:, :2] + [dx, dy]
    return float(np.hypot(*(sim - shift).T).max())


def register(
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    valid_a: np.ndarray | None = None,
    valid_b: np.ndarray | None = None,
    settings: CompareSettings | None = None,
) -> Registration:
    """Co-register two grey images of the same ground on (roughly) the same grid.

    Args:
        grey_a, grey_b: grey images (rows, cols), same shape, same nominal pixel size.
        valid_a, valid_b: bool masks of valid pixels (nodata/outside False), or None.
        settings: thresholds (:class:`CompareSettings`).

    Returns:
        The A→B :class:`Registration` (pixels of these images).

    Raises:
        CompareError: the images do not overlap enough, or no method reaches ``min_quality``.
    """
    s = settings or CompareSettings()
    va = np.ones(grey_a.shape, bool) if valid_a is None else valid_a.astype(bool)
    vb = np.ones(grey_b.shape, bool) if valid_b is None else valid_b.astype(bool)
    if va.sum() == 0 or vb.sum() == 0:
        raise CompareError("cannot register: one pass has no valid pixels over the compared area")
    if (va & vb).sum() < s.min_overlap * min(va.sum(), vb.sum()):
        raise CompareError(
            f"passes do not overlap: {100 * (va & vb).sum() / va.sum():.0f} % of the compared area is "
            f"valid in both (minimum {100 * s.min_overlap:.0f} %)"
        )
    candidates: list[Registration] = []
    if s.registration in ("auto", "phase"):
        dx, dy, q = phase_correlate(grey_a, grey_b, va, vb, upsample_factor=s.upsample_factor)
        reg = Registration.translation(
            dx, dy, quality=q, method="phase-correlation", error_px=_error_from_quality(q)
        )
        candidates.append(reg)
        log.debug("phase correlation: dx=%.2f dy=%.2f quality=%.3f", dx, dy, q)
    # Features are cheap next to reading imagery, and reveal rotation/scale that phase correlation ignores.
    if s.registration in ("auto", "features"):
        feat = _feature_registration(grey_a, grey_b, va, vb, s)
        if feat is not None:
            candidates.append(feat)
    if not candidates:
        raise CompareError("cannot register the passes: feature matching found too few consistent matches")
    best = max(candidates, key=lambda r: r.quality)
    if s.registration == "auto" and len(candidates) == 2:
        phase, feat = candidates
        gap = _corner_gap(feat.as_array(), grey_a.shape, phase.shift_x_px, phase.shift_y_px)
        # A reliable feature similarity that departs from the shift means rotation/scale.
        rotated = gap > s.translation_only_residual_px and feat.quality >= max(s.min_quality, phase.quality)
        best = feat if rotated or phase.quality < s.min_phase_quality else phase
    if best.quality < s.min_quality:
        raise CompareError(
            f"cannot register the passes: registration quality {best.quality:.2f} is below "
            f"{s.min_quality:.2f} (different ground, heavy cloud or very different imagery)"
        )
    ov = _overlap(va, vb, best.as_array())
    if ov < s.min_overlap:
        raise CompareError(
            f"passes do not overlap: only {100 * ov:.0f} % of pass A is covered by pass B after registration"
        )
    m = best.as_array()
    res = local_residuals(
        grey_a, warp_to_a(grey_b, m, grey_a.shape), va, warp_to_a(vb, m, grey_a.shape, nearest=True), s
    )
    spread = local_spread(res)
    error = best.error_px if spread is None else max(best.error_px, spread)
    log.debug("local misregistration: %s px over %d blocks", spread, len(res))
    return best.with_matrix(m, overlap=ov, error_px=error, local_spread_px=spread, local_blocks=len(res))


def local_residuals(
    grey_a: np.ndarray,
    grey_b_on_a: np.ndarray,
    valid_a: np.ndarray,
    valid_b_on_a: np.ndarray,
    settings: CompareSettings | None = None,
) -> np.ndarray:
    """Residual shifts of blocks of two images already registered onto one grid.

    Blocks of ``settings.local_block_px`` (half-overlapping) that are at least 90 % valid in both
    images are phase-correlated; blocks with a peak quality below ``min_phase_quality`` (flat
    ground, water) or a residual beyond ``local_max_residual_px`` (moving objects filling the
    block) are left out.

    Returns:
        Array (n, 4) of block centre x, y and residual dx, dy (pixels of A): a ground point at the
        block centre in A is at ``(x + dx, y + dy)`` in the warped B.
    """
    s = settings or CompareSettings()
    size = s.local_block_px
    h, w = grey_a.shape
    if h < size or w < size:
        return np.zeros((0, 4))
    ok = valid_a & valid_b_on_a
    out = []
    for y in range(0, h - size + 1, size // 2):
        for x in range(0, w - size + 1, size // 2):
            if ok[y : y + size, x : x + size].mean() < 0.9:
                continue
            dx, dy, q = phase_correlate(
                grey_a[y : y + size, x : x + size],
                grey_b_on_a[y : y + size, x : x + size],
                upsample_factor=10,
            )
            if q >= s.min_phase_quality and math.hypot(dx, dy) <= s.local_max_residual_px:
                out.append((x + size / 2, y + size / 2, dx, dy))
    return np.array(out, dtype=float).reshape(-1, 4)


def local_spread(residuals: np.ndarray, min_blocks: int = 6) -> float | None:
    """Robust 1-sigma spread of block residuals (1.4826 x MAD per axis, combined), or None if too few."""
    if len(residuals) < min_blocks:
        return None
    d = residuals[:, 2:4]
    mad = 1.4826 * np.median(np.abs(d - np.median(d, axis=0)), axis=0)
    return float(math.hypot(*mad))


def _error_from_quality(q: float) -> float:
    """A conservative 1-sigma registration error (pixels) from phase-correlation quality."""
    return float(np.clip(0.25 / max(q, 0.05), 0.25, 5.0))


def _feature_registration(
    ga: np.ndarray, gb: np.ndarray, va: np.ndarray, vb: np.ndarray, s: CompareSettings
) -> Registration | None:
    m, inliers, tentative = match_features(ga, gb, va, vb)
    if m is None or inliers < s.min_inliers:
        log.debug("feature matching: %d inliers of %d matches, not used", inliers, tentative)
        return None
    m3 = np.vstack([m, [0.0, 0.0, 1.0]])
    # Refine the translation sub-pixel: phase-correlate A with B warped into A's frame.
    wb = warp_to_a(gb, m3, ga.shape)
    wvb = warp_to_a(vb, m3, ga.shape, nearest=True)
    dx, dy, q = phase_correlate(ga, wb, va, wvb, upsample_factor=s.upsample_factor)
    method = "features"
    if q >= s.min_phase_quality and math.hypot(dx, dy) < 3.0:
        m3 = m3 @ np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
        method = "features+phase-correlation"
    ratio = inliers / max(tentative, 1)
    quality = float(np.clip(max(ratio, q if method != "features" else 0.0), 0.0, 1.0))
    return Registration(
        _to_tuple(m3), quality=quality, method=method, inliers=inliers, error_px=_error_from_quality(quality)
    )
