"""Metric size and true heading of an oriented box, with 1-sigma uncertainties.

Error budget (each term a 1-sigma, combined in quadrature per dimension):

* GSD: ``size * gsd_rel_sigma`` (a STAC/GeoTIFF GSD is good to a few percent, a screenshot's less).
* Box fit: ``gsd * hypot(sigma_px, sigma_rel * size_px)`` from ``data/boxfit.yaml`` per category;
  the measured bias (``bias_rel``) is divided out first. ``sigma_rel`` includes the between-site
  term ``sigma_site_rel`` where the model has one (:func:`box_fit`). Where the box was refined on the chip,
  the silhouette's and the detector's boxes are two measurements of one object; each side is their
  best linear unbiased combination (:func:`combine_boxes`), and its sigma replaces this term.
* Off-nadir: parts of an object at height ``h`` are displaced by ``h * tan(off_nadir)`` along the
  view azimuth, so the box of an elevated structure is stretched by between 0 and that amount
  along the view direction (projected on each box axis). It is modelled as uniform on that
  interval: half of it is subtracted, ``1/sqrt(12)`` of it is added to the sigma. Objects on the
  ground are not stretched; terrain only moves them (a position error, not a size error).

Heading: the bearing of the box's length axis, degrees clockwise from true north in [0, 180),
computed on the ellipsoid (pyproj ``Geod``) from the axis end points transformed to lon/lat. That
accounts for grid convergence (UTM grid north is not true north away from the central meridian),
rotated transforms and geographic CRSs whose pixels are not square on the ground.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import yaml
from pyproj import Geod

from sitewatch.errors import GeoreferenceError
from sitewatch.imagery.georef import Georef
from sitewatch.types import Measurement, OrientedBox

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True, slots=True)
class BoxFit:
    """Box-fit error model of one category (see ``data/boxfit.yaml``)."""

    sigma_px: tuple[float, float]
    sigma_rel: tuple[float, float]
    bias_rel: tuple[float, float]
    elevation_frac: tuple[float, float]


@functools.lru_cache(maxsize=1)
def _bundled_boxfit_doc() -> dict[str, Any]:
    with resources.files("sitewatch.identify.data").joinpath("boxfit.yaml").open("r", encoding="utf-8") as f:
        return yaml.safe_load(f)


#: A box-fit model in use instead of the bundled one (:func:`boxfit_model`), or None.
_boxfit_in_use: dict[str, Any] | None = None


def _boxfit_doc() -> dict[str, Any]:
    return _bundled_boxfit_doc() if _boxfit_in_use is None else _boxfit_in_use


def bundled_boxfit() -> dict[str, Any]:
    """A copy of the bundled box-fit model (``data/boxfit.yaml``) as a document."""
    return copy.deepcopy(_bundled_boxfit_doc())


@contextlib.contextmanager
def boxfit_model(doc: dict[str, Any]) -> Iterator[None]:
    """Measure with ``doc`` (a document of the form of ``data/boxfit.yaml``) in place of the bundled
    box-fit model inside the ``with`` block, in this process.

    For evaluations that must not use a model fitted on the objects they score: a box-fit model
    fitted without one site measures that site's objects (leave-one-site-out,
    :func:`sitewatch.identify.evaluate.boxfit_without`).
    """
    global _boxfit_in_use
    before, _boxfit_in_use = _boxfit_in_use, doc
    try:
        yield
    finally:
        _boxfit_in_use = before


#: Box sources with their own box-fit model in ``data/boxfit.yaml``: the detector's box, and the
#: silhouette box that :mod:`sitewatch.identify.refine` fits on the chip (section ``silhouette``).
BOX_SOURCES = ("detector", "silhouette")


def box_fit(category: str, source: str = "detector") -> BoxFit:
    """The box-fit error model of a category for boxes from ``source`` (:data:`BOX_SOURCES`).

    The relative term is the within-site ``sigma_rel`` and the between-site ``sigma_site_rel``
    (where the model has one: the bias of a new site is known only to that) in quadrature.

    Raises:
        KeyError: no model for that category and source (silhouette boxes: see
            :func:`refined_categories`).
    """
    doc = _boxfit_doc() if source == "detector" else _boxfit_doc()[source]
    c = doc["categories"][category]
    elevation = c.get("elevation_frac", _boxfit_doc()["categories"][category]["elevation_frac"])
    within, site = _pair(c["sigma_rel"]), _pair(c.get("sigma_site_rel", [0.0, 0.0]))
    sigma_rel = (math.hypot(within[0], site[0]), math.hypot(within[1], site[1]))
    return BoxFit(_pair(c["sigma_px"]), sigma_rel, _pair(c["bias_rel"]), _pair(elevation))


def refined_categories() -> frozenset[str]:
    """Categories whose boxes are refined on the chip (those with a silhouette box-fit model)."""
    return frozenset(_boxfit_doc().get("silhouette", {}).get("categories", {}))


def _pair(values: Sequence[Any]) -> tuple[float, float]:
    """``[length, width]`` from the YAML as floats."""
    length, width = values
    return float(length), float(width)


def box_correlation(category: str) -> tuple[float, float]:
    """Correlation ``[length, width]`` of the detector's and the silhouette's relative box errors
    on the same objects (``data/boxfit.yaml``, section ``silhouette``; 0 where not measured)."""
    c = _boxfit_doc()["silhouette"]["categories"][category]
    return _pair(c.get("correlation", [0.0, 0.0]))


def blue_weight(sigma_a: float, sigma_b: float, rho: float) -> tuple[float, float]:
    """Weight of ``a`` and the 1-sigma of the best linear unbiased combination of two measurements.

    ``w * a + (1 - w) * b`` with 1-sigmas ``sigma_a``, ``sigma_b`` and error correlation ``rho``
    has the least variance at ``w = (sb² - rho sa sb) / (sa² + sb² - 2 rho sa sb)``. Where that
    falls outside [0, 1] (one measurement much better and strongly correlated) the better one is
    taken alone.
    """
    va, vb, cab = sigma_a**2, sigma_b**2, rho * sigma_a * sigma_b
    den = va + vb - 2.0 * cab
    if den <= 0.0:  # identical, fully correlated measurements
        return 0.5, sigma_a
    w = (vb - cab) / den
    if not 0.0 <= w <= 1.0:
        return (1.0, sigma_a) if sigma_a <= sigma_b else (0.0, sigma_b)
    return w, math.sqrt(max(va * vb - cab**2, 0.0) / den)


def combine_boxes(
    detector: OrientedBox, silhouette: OrientedBox, category: str, *, correct_bias: bool = True
) -> tuple[OrientedBox, BoxFit]:
    """One box from the detector's box and the silhouette refined on the chip, and its error model.

    The two are measurements of the same object with their own box-fit models (``data/boxfit.yaml``:
    the category's and its ``silhouette`` entry) and correlated errors (:func:`box_correlation`).
    Each side (long with long, short with short) is the bias-corrected sides' best linear unbiased
    combination (:func:`blue_weight`): each box weighs by how precise its model says it is at
    the object's size, and a box that the correlation makes redundant gets no weight (with
    sitewatch-det 1.8.0's models, on an aircraft 200 px long, the detector carries about 13 % of
    the length and 57 % of the width; with 1.7.0's about 80 % and 86 %; with 1.6.0's the
    silhouette carried all of the length and half of the width).
    Both models' relative terms are taken at one size, the mean of the two bias-corrected sides:
    each at its own box's size would give the smaller box the smaller sigma, hence the larger
    weight, and pull every combination towards the smaller box. Centre and heading are the
    silhouette's.

    Args:
        correct_bias: divide each box's measured bias out first (False: as measured).

    Returns:
        The combined box (pixels) and a box-fit model with its 1-sigma per side as the pixel term
        and no bias (already divided out), for :func:`measure_box`.
    """
    det_fit, sil_fit = box_fit(category), box_fit(category, "silhouette")
    rho = box_correlation(category)
    sides, sigmas = [], []
    for k, (d, s) in enumerate(((detector.length, silhouette.length), (detector.width, silhouette.width))):
        if correct_bias:
            d, s = d / (1.0 + det_fit.bias_rel[k]), s / (1.0 + sil_fit.bias_rel[k])
        # Relative terms at one size for both: each at its own measured size would favour
        # whichever box is smaller and pull the combination down.
        size = 0.5 * (d + s)
        sd = math.hypot(det_fit.sigma_px[k], det_fit.sigma_rel[k] * size)
        ss = math.hypot(sil_fit.sigma_px[k], sil_fit.sigma_rel[k] * size)
        w, sigma = blue_weight(sd, ss, rho[k])
        sides.append(w * d + (1.0 - w) * s)
        sigmas.append(sigma)
    heading = silhouette.heading_deg
    if sides[1] > sides[0]:  # the combination swapped which side is longer
        sides.reverse()
        sigmas.reverse()
        heading = (heading + 90.0) % 180.0
    box = OrientedBox(silhouette.cx, silhouette.cy, sides[0], sides[1], heading)
    return box, BoxFit((sigmas[0], sigmas[1]), (0.0, 0.0), (0.0, 0.0), sil_fit.elevation_frac)


def box_fit_status(source: str = "detector") -> str:
    """How the box-fit numbers were obtained (e.g. ``"measured with sitewatch-det 1.3.0"``)."""
    doc = _boxfit_doc() if source == "detector" else _boxfit_doc().get(source, {})
    return str(doc.get("status", ""))


def ground_axes(box: OrientedBox, geo: Georef) -> tuple[float, float, float]:
    """Ground length and width (metres, geodesic) and true bearing of the length axis.

    Returns:
        ``(length_m, width_m, heading_deg)``; heading in degrees clockwise from true north in [0, 180).
    """
    ux, uy = box.axis
    vx, vy = -uy, ux
    hl, hw = box.length / 2.0, box.width / 2.0
    xs = np.array([box.cx - ux * hl, box.cx + ux * hl, box.cx - vx * hw, box.cx + vx * hw])
    ys = np.array([box.cy - uy * hl, box.cy + uy * hl, box.cy - vy * hw, box.cy + vy * hw])
    lon, lat = geo.lonlat(xs, ys)
    az, _, length = _GEOD.inv(lon[0], lat[0], lon[1], lat[1])
    _, _, width = _GEOD.inv(lon[2], lat[2], lon[3], lat[3])
    return float(length), float(width), float(az) % 180.0


def measure_box(
    box: OrientedBox,
    category: str,
    *,
    gsd_m: float | None,
    gsd_rel_sigma: float = 0.05,
    georef: Georef | None = None,
    off_nadir_deg: float | None = None,
    view_azimuth_deg: float | None = None,
    fit: BoxFit | None = None,
) -> Measurement:
    """Metric length/width (and true heading when georeferenced) of a box, with 1-sigma errors.

    Args:
        box: oriented box, pixels (length >= width).
        category: detection category (selects the box-fit model).
        gsd_m: ground sample distance, metres per pixel (used when ``georef`` is None; with a
            georeference the ground size comes from the geodesic lengths of the box axes).
        gsd_rel_sigma: relative 1-sigma of the GSD (e.g. 0.02 for an orthorectified product,
            0.05-0.10 for a screenshot whose scale was set by hand).
        georef: pixel-to-lon/lat mapping, or None.
        off_nadir_deg: sensor off-nadir angle, degrees, or None (treated as near nadir).
        view_azimuth_deg: view azimuth, degrees clockwise from north, or None.
        fit: box-fit error model to use instead of the category's detector model in
            ``data/boxfit.yaml`` (e.g. a hand-drawn label box has no detector bias).

    Raises:
        GeoreferenceError: neither a GSD nor a georeference is given.
    """
    heading: float | None = None
    if georef is not None:
        length_m, width_m, heading = ground_axes(box, georef)
        gsd_l = length_m / box.length if box.length > 0 else (gsd_m or 0.0)
        gsd_w = width_m / box.width if box.width > 0 else gsd_l
    elif gsd_m is not None and gsd_m > 0:
        gsd_l = gsd_w = float(gsd_m)
        length_m, width_m = box.length * gsd_l, box.width * gsd_w
    else:
        raise GeoreferenceError("no GSD and no georeference: cannot measure in metres")
    fit = fit or box_fit(category)
    length_m /= 1.0 + fit.bias_rel[0]
    width_m /= 1.0 + fit.bias_rel[1]
    sig_fit_l = gsd_l * math.hypot(fit.sigma_px[0], fit.sigma_rel[0] * box.length)
    sig_fit_w = gsd_w * math.hypot(fit.sigma_px[1], fit.sigma_rel[1] * box.width)

    stretch_l = stretch_w = 0.0
    if off_nadir_deg is not None and off_nadir_deg > 0:
        along = heading if heading is not None else box.heading_deg  # screenshots: assume north-up
        delta = math.radians((view_azimuth_deg if view_azimuth_deg is not None else along) - along)
        proj_l, proj_w = abs(math.cos(delta)), abs(math.sin(delta))
        if view_azimuth_deg is None:  # direction unknown: worst case on each axis
            proj_l = proj_w = 1.0
        t = math.tan(math.radians(min(off_nadir_deg, 60.0)))
        stretch_l = fit.elevation_frac[0] * length_m * t * proj_l
        stretch_w = fit.elevation_frac[1] * length_m * t * proj_w
        length_m -= stretch_l / 2.0
        width_m -= stretch_w / 2.0

    sig_l = math.sqrt((length_m * gsd_rel_sigma) ** 2 + sig_fit_l**2 + stretch_l**2 / 12.0)
    sig_w = math.sqrt((width_m * gsd_rel_sigma) ** 2 + sig_fit_w**2 + stretch_w**2 / 12.0)
    heading_sigma = None
    if heading is not None:
        sig_px = math.hypot(fit.sigma_px[1], fit.sigma_rel[1] * box.width)
        ambiguous = box.length - box.width < 2.0 * sig_px
        heading_sigma = (
            90.0 if ambiguous else min(90.0, math.degrees(math.atan2(math.sqrt(2.0) * sig_px, box.length)))
        )
    gsd_out = math.sqrt(gsd_l * gsd_w) if georef is not None else float(gsd_m)  # type: ignore[arg-type]
    return Measurement(
        length_m=round(length_m, 3),
        width_m=round(width_m, 3),
        length_sigma_m=round(sig_l, 3),
        width_sigma_m=round(sig_w, 3),
        heading_deg=None if heading is None else round(heading, 2),
        heading_sigma_deg=None if heading_sigma is None else round(heading_sigma, 2),
        gsd_m=round(gsd_out, 5),
    )
