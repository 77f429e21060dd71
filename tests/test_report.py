"""Report: model, chips, charts, HTML/PDF/JSON rendering, on synthetic passes with exact answers."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from pydantic import ValidationError
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box as shp_box

from ci_support import require_tool
from sitewatch.assess import Assessment, Claim, ClaimCheck, IndicatorResult
from sitewatch.assess.hypotheses import EvidenceItem, HypothesisResult
from sitewatch.compare import Comparison, ObjectChange, Registration
from sitewatch.errors import ReportError
from sitewatch.imagery.base import ArrayScene
from sitewatch.imagery.georef import Georef
from sitewatch.report import assemble_report_data, render_html, report_json, save_report
from sitewatch.report.chips import STATUS_COLOURS, ChipBox, nice_length_m, render_chip
from sitewatch.report.model import EvidenceEntry, Judgement, ReportData
from sitewatch.sites import Site
from sitewatch.types import CATEGORIES, Candidate, Detection, Measurement, OrientedBox, Pass

GSD = 0.5
UTM = CRS.from_epsg(32637)  # zone 37N (Syria)
ORIGIN = (260000.0, 3930000.0)  # UTM metres, upper-left corner
SIZE = 512


def _scene_tif(path: Path, boxes: list[OrientedBox]) -> Path:
    """A grey 512x512 GeoTIFF at 0.5 m GSD with a bright filled rectangle for each box."""
    import cv2

    # The same textured ground in every pass (so passes co-register), objects painted on top.
    noise = cv2.GaussianBlur(np.random.default_rng(7).normal(0, 1, (SIZE, SIZE)), (0, 0), 3)
    grey = np.clip(90 + 25 * noise / noise.std(), 40, 140).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    for b in boxes:
        cv2.fillPoly(rgb, [np.round(b.corners()).astype(np.int32)], (230, 230, 230))
    transform = Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1])
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=3, dtype="uint8",
                       crs=UTM, transform=transform) as ds:
        ds.write(rgb.transpose(2, 0, 1))
    return path


def _det(i: int, cx: float, cy: float, *, typed: bool = True) -> Detection:
    from pyproj import Transformer

    cands = (Candidate("il-76", "Il-76 Candid", "heavy transport", 0.8),) if typed else ()
    meas = Measurement(46.6, 50.5, 1.0, 1.0, 0.0, 2.0, GSD) if typed else None
    box = OrientedBox.make(cx, cy, 90, 60, 30)
    t = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    transform = Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1])
    footprint = tuple(t.transform(*(transform * (float(x), float(y)))) for x, y in box.corners())
    return Detection(box, "aircraft", 0.9, footprint=footprint, measurement=meas, candidates=cands, id=i)


def _site() -> Site:
    from pyproj import Transformer

    t = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    x0, y1 = t.transform(ORIGIN[0], ORIGIN[1])
    x1, y0 = t.transform(ORIGIN[0] + SIZE * GSD, ORIGIN[1] - SIZE * GSD)
    aoi = shp_box(x0, y0, x1, y1)
    return Site(name="testbase", title="Test Air Base", kind="airbase", country="SY", aoi=aoi,
                zones={"apron": shp_box(x0, y0, (x0 + x1) / 2, y1)})


def _pass(pid: int, path: Path, dets: list[Detection], day: int, *, simulated: bool = False) -> Pass:
    return Pass(site="testbase", scene_path=str(path), acquired=datetime(2024, 5, day, 8, 0, tzinfo=UTC),
                footprint_wkt=None, aoi_coverage=1.0, gsd_m=GSD, model="sitewatch-det 1.0.0", crs="EPSG:32637",
                transform=(GSD, 0.0, ORIGIN[0], 0.0, -GSD, ORIGIN[1]), simulated=simulated, detections=dets, id=pid)


def make_scenario(tmp_path: Path, *, simulated: bool = False):
    """Two passes: aircraft 1 remains (as 3), aircraft 2 departs, aircraft 4 arrives. Returns (site, passes, comparison)."""
    a1, a2 = _det(1, 120, 120), _det(2, 380, 140)
    b3, b4 = _det(3, 120, 120), _det(4, 300, 400, typed=False)
    pa = _pass(10, _scene_tif(tmp_path / "a.tif", [a1.box, a2.box]), [a1, a2], 1)
    pb = _pass(11, _scene_tif(tmp_path / "b.tif", [b3.box, b4.box]), [b3, b4], 8, simulated=simulated)
    objs = [
        ObjectChange("remained", "aircraft", "heavy transport", "apron", a1, b3, displacement_m=0.0),
        ObjectChange("departed", "aircraft", "heavy transport", "apron", a2, None),
        ObjectChange("arrived", "aircraft", "aircraft", None, None, b4),
    ]
    comp = Comparison(
        pass_a={"label": "A", "id": pa.id}, pass_b={"label": "B", "id": pb.id},
        registration=Registration.translation(0.0, 0.0, quality=0.9, method="phase-correlation"),
        objects=objs, counts={"aircraft": {"arrived": 1, "departed": 1, "remained": 1, "moved": 0}},
        sentence="One aircraft arrived, one departed and one remained.",
    )
    return _site(), [pa, pb], comp


def make_assessment(*, bad_ref: bool = False) -> Assessment:
    """An assessment of the scenario, with the claims and checks left to :func:`make_claims`."""
    ind = IndicatorResult("transport-surge", "Transport surge", "not-fired", evidence=["pass:10", "pass:11", "det:1"],
                          reason="fewer than 3 transports arrived")
    item = EvidenceItem("indicator:transport-surge", "indicator", "net aircraft change 0", 0.8, 1.0,
                        {"routine": "C", "reinforcement": "I"}, ["comparison:10-11"])
    return Assessment(
        site="testbase", generated=datetime(2024, 5, 9, tzinfo=UTC), passes=[], indicators=[ind], claims=[], checks=[],
        conflicts=[],
        key_judgements=[
            {"text": "Air activity at Test Air Base is likely unchanged overall.", "evidence": ["comparison:10-11", "indicator:transport-surge"]},
            {"text": "An Il-76 transport very likely remained on the apron.", "evidence": ["det:1", {"kind": "detection", "id": 3}]},
        ] + ([{"text": "Orphan.", "evidence": ["det:999"]}] if bad_ref else []),
        confidence={"level": "moderate", "reasons": ["Two passes one week apart."]},
        hypotheses=[HypothesisResult("routine", "Routine operations.", 1.2, 0.7, "likely", 0.0),
                    HypothesisResult("reinforcement", "Reinforcement.", -0.5, 0.3, "unlikely", 1.0)],
        ach_matrix={"hypotheses": ["routine", "reinforcement"], "rows": [item.to_dict()]},
    )


def make_claims() -> tuple[list[Claim], list[ClaimCheck]]:
    claims = [Claim("7", "A transport aircraft left the base this week.", "example-news",
                    published=datetime(2024, 5, 9, tzinfo=UTC)),
              Claim("c9", "Troops are training nearby.", "blog")]
    checks = [ClaimCheck("7", "corroborated", "1 aircraft departed between the passes.",
                         evidence=["claim:7", "pass:10", "pass:11", "det:2", "comparison:10-11"]),
              ClaimCheck("c9", "not-observable", "names no equipment", evidence=["claim:c9"])]
    return claims, checks


@pytest.fixture(scope="module")
def report_data(tmp_path_factory: pytest.TempPathFactory) -> ReportData:
    """Built once per module (chips, chart and map take a second or two); tests only read it."""
    from sitewatch.imagery import open_scene

    site, passes, comp = make_scenario(tmp_path_factory.mktemp("scenes"), simulated=True)
    claims, checks = make_claims()
    return assemble_report_data(site, passes, comparisons=[comp], assessment=make_assessment(),
                                claims=claims, claim_checks=checks, open_scene=open_scene)


def _png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def _has_colour(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 30) -> int:
    return int((np.abs(img.astype(int) - np.array(rgb)).max(axis=2) <= tol).sum())


# --------------------------------------------------------------------------------------- chips


def test_north_angle_from_transform() -> None:
    t = Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1])
    # UTM grid north differs from true north by the meridian convergence (< 3 deg here).
    assert abs(((Georef(t, UTM).true_north_deg(256, 256) + 180) % 360) - 180) < 3
    rotated = t * Affine.rotation(90)  # pixel axes turned 90 deg
    ang = Georef(rotated, UTM).true_north_deg(0, 0)
    assert abs(((ang - 90 + 180) % 360) - 180) < 3 or abs(((ang - 270 + 180) % 360) - 180) < 3


def test_nice_scale_length() -> None:
    assert nice_length_m(57.6) == 50
    assert nice_length_m(19.9) == 10
    assert nice_length_m(2.0) == 2


def test_chip_draws_status_colours_scale_and_north(tmp_path: Path) -> None:
    box = OrientedBox.make(100, 100, 60, 30, 45)
    scene = ArrayScene(np.full((200, 200, 3), 100, np.uint8), gsd_m=0.5, crs=UTM,
                       transform=Affine(0.5, 0, ORIGIN[0], 0, -0.5, ORIGIN[1]))
    png = render_chip(scene, Window(0, 0, 200, 200), [ChipBox(box, "departed", "aircraft")], size_px=200)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert img.shape == (200, 200, 3)
    red = _has_colour(img, STATUS_COLOURS["departed"], tol=10)
    assert red > 100
    # The red box outline lies around the box corners, nowhere near the image corners.
    ys, xs = np.nonzero(np.abs(img.astype(int) - np.array(STATUS_COLOURS["departed"])).max(axis=2) <= 10)
    assert 50 < xs.mean() < 150 and 40 < ys.mean() < 150
    # Scale bar (white on black) at bottom-left.
    assert (img[170:200, 0:80] == 255).all(axis=2).sum() > 50
    # Pixel-space scene: no scale bar, "north unknown".
    png2 = render_chip(ArrayScene(np.full((200, 200, 3), 100, np.uint8)), Window(0, 0, 200, 200), [], size_px=200)
    img2 = np.asarray(Image.open(io.BytesIO(png2)).convert("RGB"))
    assert (img2[170:200, 0:80] == 255).all(axis=2).sum() == 0


# --------------------------------------------------------------------------------------- model


def test_report_data_citations_resolve(report_data: ReportData) -> None:
    r = report_data
    keys = {e.key for e in r.evidence}
    assert r.assessment.judgements and all(j.evidence for j in r.assessment.judgements)
    for j in r.assessment.judgements:
        assert set(j.evidence) <= keys
    by_key = {e.key: e for e in r.evidence}
    assert by_key["cmp-10-11"].pass_ids == [10, 11] and by_key["cmp-10-11"].comparison == "C1"
    ind = by_key["ind-transport-surge"]
    assert (ind.kind, ind.pass_ids, ind.detection_ids) == ("indicator", [10, 11], [1])
    assert "Transport surge: not-fired" in ind.text
    assert r.assessment.ach_hypotheses == ["routine", "reinforcement"]
    assert r.assessment.ach_rows[0].cells == ["C", "I"] and r.assessment.ach_rows[0].weight == pytest.approx(0.8)
    assert r.assessment.ach_rows[0].evidence_keys == ["ind-transport-surge", "cmp-10-11"]
    assert by_key["det-1"].detection_ids == [1] and "2024-05-01" in by_key["det-1"].text
    assert by_key["claim-7"].source == "example-news" and by_key["claim-7"].claim_id == "7"
    assert [(c.id, c.verdict, c.evidence) for c in r.claims] == [
        ("7", "corroborated", ["claim-7", "pass-10", "pass-11", "det-2", "cmp-10-11"]),
        ("c9", "not-observable", ["claim-c9"]),
    ]
    assert r.assessment.judgements[1].evidence == ["det-1", "det-3"]
    pass_ids = {p.id for p in r.passes}
    det_ids = {d for p in r.passes for d in p.detection_ids}
    for e in r.evidence:
        assert set(e.pass_ids) <= pass_ids and set(e.detection_ids) <= det_ids


def test_unresolvable_reference_is_dropped_and_reported(tmp_path: Path) -> None:
    site, passes, comp = make_scenario(tmp_path)
    r = assemble_report_data(site, passes, comparisons=[comp], assessment=make_assessment(bad_ref=True))
    assert r.assessment.judgements[2].evidence == []
    assert any("det:999" in line for line in r.limitations)


def test_model_rejects_dangling_citation(report_data: ReportData) -> None:
    d = report_data.model_dump()
    d["assessment"]["judgements"].append(Judgement(text="x", evidence=["det-12345"]).model_dump())
    with pytest.raises(ValidationError, match="det-12345"):
        ReportData.model_validate(d)
    d = report_data.model_dump()
    d["evidence"].append(EvidenceEntry(key="det-5", kind="detection", text="x", detection_ids=[5]).model_dump())
    with pytest.raises(ValidationError, match="detections not in the report"):
        ReportData.model_validate(d)


def test_chip_labels_stay_inside_the_chip() -> None:
    """A label at the right edge moves left to end inside the chip; one wider than the chip is
    shortened with an ellipsis; a label that fits where it is stays there."""
    from PIL import Image, ImageDraw

    from sitewatch.report.chips import _font, _label

    font = _font(13)

    def drawn(x: float, text: str, size: int = 200) -> tuple[str, np.ndarray]:
        img = Image.new("RGB", (size, 40), (255, 255, 255))
        out = _label(ImageDraw.Draw(img), (x, 10), text, (255, 0, 0), font)
        band = np.flatnonzero((np.asarray(img)[10:25] == 0).all(axis=2).any(axis=0))
        return out, band

    text = "medium airliner-sized aircraft"
    out, band = drawn(250, text, size=300)
    assert out == text and band.max() < 299 and band.min() < 250  # moved left, not cut at the edge
    out, band = drawn(10, text, size=400)
    assert out == text and band.min() == 8  # fits where it is: 2 px of band before x = 10
    out, band = drawn(0, "large aircraft (45–60 m: Il-76/C-17-sized) " * 2)
    assert out.endswith("…") and band.min() >= 0 and band.max() <= 199 and len(out) < 80
    # A band that would cover the north arrow goes to the other place (below its box).
    img = Image.new("RGB", (300, 80), (255, 255, 255))
    _label(ImageDraw.Draw(img), (250, 10), "aircraft", (255, 0, 0), font, keep_clear=(240, 0, 300, 40), other_y=50)
    rows = np.flatnonzero((np.asarray(img) == 0).all(axis=2).any(axis=1))
    assert rows.min() >= 49 and rows.max() <= 70
    # ... and stays inside the chip when the box ends near its bottom.
    img = Image.new("RGB", (300, 80), (255, 255, 255))
    _label(ImageDraw.Draw(img), (250, 10), "aircraft", (255, 0, 0), font, keep_clear=(240, 0, 300, 40), other_y=75)
    rows = np.flatnonzero((np.asarray(img) == 0).all(axis=2).any(axis=1))
    assert rows.min() >= 41 and rows.max() <= 78


def test_inventory_and_chips(report_data: ReportData) -> None:
    r = report_data
    rows = {(x.category, x.role, x.type_name): x.counts for x in r.inventory}
    assert rows == {("aircraft", "heavy transport", "Il-76 Candid"): [2, 1], ("aircraft", "unidentified", "unidentified"): [0, 1]}
    assert r.chips, "expected before/after chips"
    statuses = {}
    for c in r.chips:
        for s, n in c.statuses.items():
            statuses[s] = statuses.get(s, 0) + n
    assert statuses == {"remained": 1, "departed": 1, "arrived": 1}
    dep = next(c for c in r.chips if "departed" in c.statuses)
    assert dep.before is not None and 2 in dep.before.detection_ids
    assert _has_colour(_png(dep.before.png_b64), STATUS_COLOURS["departed"], tol=10) > 50
    arr = next(c for c in r.chips if "arrived" in c.statuses)
    assert _has_colour(_png(arr.after.png_b64), STATUS_COLOURS["arrived"], tol=10) > 50
    assert _has_colour(_png(arr.before.png_b64), STATUS_COLOURS["arrived"], tol=10) == 0
    assert {f.key for f in r.figures} == {"timeline", "site-map"}


# --------------------------------------------------------------------------------------- HTML / JSON


def test_html_is_self_contained_with_footnotes(report_data: ReportData, tmp_path: Path) -> None:
    html = render_html(report_data)
    assert "SIMULATED IMAGERY" in html
    # Key judgements come first, before any other section.
    assert html.index('id="key-judgements"') < html.index('id="passes"') < html.index('id="evidence"')
    imgs = re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    n_chip_imgs = sum((c.before is not None) + (c.after is not None) for c in report_data.chips)
    assert len(imgs) == n_chip_imgs + 2  # chips + timeline + map
    for b64 in imgs:
        assert _png(b64).size > 0
    assert "http://" not in html and "https://" not in html
    anchors = set(re.findall(r'<li id="ev-([^"]+)"', html))
    links = re.findall(r'<a href="#ev-([^"]+)"', html)
    assert links and set(links) <= anchors
    # The judgement text carries its footnote numbers.
    fn = report_data.evidence_index()
    j = report_data.assessment.judgements[0]
    assert f'href="#ev-{j.evidence[0]}" title="{j.evidence[0]}">[{fn[j.evidence[0]]}]' in html
    assert "Moderate confidence</strong>: Two passes one week apart.." not in html
    assert "Moderate confidence</strong>: Two passes one week apart." in html and "corroborated" in html
    assert "<td class=\"ach-c\">C</td>" in html and "<li>sitewatch-det 1.0.0" in html


def test_save_html_writes_json_twin(report_data: ReportData, tmp_path: Path) -> None:
    out = save_report(report_data, tmp_path / "report.html")
    assert out.read_text().startswith("<!DOCTYPE html>")
    twin = json.loads((tmp_path / "report.json").read_text())
    assert twin["simulated"] is True
    assert twin["site"]["name"] == "testbase"
    assert [p["id"] for p in twin["passes"]] == [10, 11]
    assert "png_b64" not in json.dumps(twin)
    assert twin["assessment"]["judgements"][0]["evidence"] == ["cmp-10-11", "ind-transport-surge"]
    assert json.loads(report_json(report_data)) == twin | {"generated": twin["generated"]}


def test_single_pass_report_says_what_cannot_be_assessed(tmp_path: Path) -> None:
    from sitewatch.imagery import open_scene

    site, passes, _ = make_scenario(tmp_path)
    r = assemble_report_data(site, passes[:1], open_scene=open_scene)
    assert r.comparisons == [] and r.assessment.available is False
    assert any("only one pass" in u for u in r.assessment.unassessable)
    assert len(r.chips) >= 1 and all(c.before is None and c.after is not None for c in r.chips)
    assert _has_colour(_png(r.chips[0].after.png_b64), STATUS_COLOURS["observed"], tol=10) > 50
    html = render_html(r)
    assert "What cannot be assessed" in html and "only one pass is stored" in html


def test_bad_output_paths(report_data: ReportData, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"unsupported report format '\.docx'"):
        save_report(report_data, tmp_path / "r.docx")
    with pytest.raises(ReportError, match="does not exist"):
        save_report(report_data, tmp_path / "missing" / "r.html")
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(ReportError, match="is a folder"):
        save_report(report_data, tmp_path / "dir.html")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ReportError, match="does not exist"):
        save_report(report_data, tmp_path / "afile" / "r.pdf")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            # Root ignores permissions; a read-only mount still refuses it (containers mount /proc/sys so).
            ro_mount = Path("/proc/sys")
            if not ro_mount.is_dir() or os.access(ro_mount, os.W_OK):
                pytest.skip("running as root with no read-only mount: the unwritable-folder case cannot arise")
            with pytest.raises(ReportError, match="not writable"):
                save_report(report_data, ro_mount / "r.html")
            return
        with pytest.raises(ReportError, match="not writable"):
            save_report(report_data, ro / "r.html")
    finally:
        ro.chmod(0o700)
    assert list(ro.iterdir()) == []


# --------------------------------------------------------------------------------------- PDF


def _pdf_pages(pdf: Path, out: Path) -> list[np.ndarray]:
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(out / "page")], check=True)
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(out.glob("page-*.png"))]


def test_pdf_text_has_banner_judgements_and_footnotes(report_data: ReportData, tmp_path: Path) -> None:
    """The PDF's own text (pdftotext), not only its header: banner on every page, judgements with footnotes, evidence."""
    pdftotext = require_tool("pdftotext", "poppler-utils")
    pdf = save_report(report_data, tmp_path / "report.pdf")
    text = subprocess.run([pdftotext, str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) >= 4
    assert all("SIMULATED IMAGERY" in p for p in pages)
    assert "They are not observations of the real site." in " ".join(pages[0].split())
    fn = report_data.evidence_index()
    flat = " ".join(text.split())
    key = flat.index("Key judgements")
    assert key < flat.index("Passes") < flat.index("Evidence 1. ")
    for i, j in enumerate(report_data.assessment.judgements, 1):
        marks = "".join(f"[{fn[e]}]" for e in j.evidence)
        assert f"{i}. {j.text}{marks}" in flat[key:], (j.text, marks)
    # Every footnote number has its evidence entry, in order.
    entries = flat[flat.rindex("Evidence 1. ") :]
    positions = [entries.index(f"{n}. ") for n in sorted(fn.values())]
    assert positions == sorted(positions)
    assert "Comparison C1: pass id 10 (2024-05-01) → pass id 11 (2024-05-08)." in entries
    assert f"Page {len(pages)} of {len(pages)}" in flat


@pytest.mark.slow
def test_pdf_has_pages_chips_and_chart(report_data: ReportData, tmp_path: Path) -> None:
    pdf = save_report(report_data, tmp_path / "report.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert (tmp_path / "report.json").is_file()
    pages = _pdf_pages(pdf, tmp_path)
    assert len(pages) >= 4
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], check=True, capture_output=True, text=True).stdout
    n_img = len([ln for ln in listing.splitlines()[2:] if ln.strip() and " smask " not in ln])
    n_chip_imgs = sum((c.before is not None) + (c.after is not None) for c in report_data.chips)
    assert n_img >= n_chip_imgs + 2
    # Box colours of the chips survive into the rendered pages. Every status has the same legend
    # swatches (chip legend + change table header); "moved" has no box here, so its count is the
    # swatch baseline and the boxes of the other statuses must add to theirs.
    counts = {s: sum(_has_colour(p, c, tol=40) for p in pages) for s, c in STATUS_COLOURS.items()}
    for status in ("arrived", "departed", "remained"):
        assert counts[status] >= counts["moved"] + 25, counts
    # The SIMULATED banner (dark red) is on the first page.
    assert _has_colour(pages[0], (187, 0, 0), tol=20) > 100
    assert math.isclose(pages[0].shape[0] / pages[0].shape[1], 297 / 210, rel_tol=0.02)
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert f"Page 1 of {len(pages)}" in text and f"Page {len(pages)} of {len(pages)}" in text


def test_missing_scene_still_renders_and_says_why(tmp_path: Path) -> None:
    from sitewatch.imagery import open_scene

    site, passes, comp = make_scenario(tmp_path)
    Path(passes[1].scene_path).unlink()
    r = assemble_report_data(site, passes, comparisons=[comp], open_scene=open_scene)
    assert r.chips == []
    assert any(line.startswith(f"{passes[1].scene_path}: scene could not be re-read") for line in r.limitations)
    assert "No chips" in render_html(r)


def test_json_only_output(report_data: ReportData, tmp_path: Path) -> None:
    out = save_report(report_data, tmp_path / "twin.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twin.json"]
    d = json.loads(out.read_text())
    assert d["evidence_footnotes"] == report_data.evidence_index()
    assert [c["verdict"] for c in d["claims"]] == ["corroborated", "not-observable"]


def test_model_notes_from_the_model_file() -> None:
    from sitewatch.detect.reliability import model_metadata, model_notes

    meta = model_metadata("sitewatch-det")
    text = f"sitewatch-det {meta['version']}"
    desc, _ = model_notes([text, "nomodel 0.0.0-untrained", "nomodel 2.0"])
    expected = [text] + ([f"trained {meta['trained_at'][:10]}"] if meta.get("trained_at") else [])
    expected += [f"working GSD {meta['working_gsd_m']} m"] if meta.get("working_gsd_m") else []
    assert desc[2].startswith("; ".join(expected)) and len(expected) >= 2
    _, lim = model_notes(["nomodel 0.0.0-untrained", "nomodel 2.0"])
    assert lim == ["Detector model nomodel 0.0.0-untrained is UNTRAINED: its detections (and everything built on them) carry no meaning.",
                   "Detector model nomodel 2.0: no evaluation metrics are recorded with the model; see `sitewatch evaluate`."]


def test_no_detections_gives_overview_of_both_scenes(tmp_path: Path) -> None:
    from sitewatch.imagery import open_scene

    site, passes, _ = make_scenario(tmp_path)
    for p in passes:
        p.detections = []
    r = assemble_report_data(site, passes, open_scene=open_scene)
    assert len(r.chips) == 1 and r.chips[0].title == "Overview: P1 2024-05-01 → P2 2024-05-08"
    before, after = _png(r.chips[0].before.png_b64), _png(r.chips[0].after.png_b64)
    assert before.shape == after.shape == (360, 360, 3)
    # The painted objects of each scene (bright grey) show, no status colour does.
    assert _has_colour(before, (230, 230, 230), tol=4) > 1000 and _has_colour(after, (230, 230, 230), tol=4) > 1000
    assert all(_has_colour(before, c, tol=10) == 0 for c in STATUS_COLOURS.values())


def test_site_without_passes_still_renders(tmp_path: Path) -> None:
    site, _, _ = make_scenario(tmp_path)
    r = assemble_report_data(site, [])
    assert r.passes == [] and r.chips == [] and [f.key for f in r.figures] == ["site-map"]
    assert "No passes of this site are stored: nothing was observed." in r.limitations
    assert any("no passes" in u for u in r.assessment.unassessable)
    assert "No key judgements could be made." in render_html(r)


def test_stored_evaluation_names_weak_categories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnx")
    from detect_support import write_block_model
    from sitewatch.detect import reliability
    from sitewatch.detect.train.export import EVALUATION_KEY, attach_evaluation, read_metadata
    from sitewatch.errors import ModelError

    model = write_block_model(tmp_path / "m.onnx", version="2.0.0")
    before = read_metadata(model)

    def cat(objects: int, ap: float | None, p: float | None, r: float | None, mape: float) -> dict:
        return {"objects": objects, "ap50": ap, "precision": p, "recall": r, "count_mape": mape, "tp": 0}

    report = {"model": "block-test 2.0.0", "split": "val", "images": 12, "iou_threshold": 0.5, "by_dataset": {},
              "score_thresholds": dict.fromkeys(CATEGORIES, 0.5),  # the block model's own threshold
              "categories": {"aircraft": cat(40, 0.91, 0.9, 0.88, 4.0), "helicopter": cat(0, None, None, None, 0.0),
                             "ship": cat(30, 0.3, 0.5, 0.25, 60.0), "large-vehicle": cat(7, 0.8, 1.0, 0.71, 14.0)}}
    original = model.read_bytes()
    with pytest.raises(ModelError, match="evaluation is of 'other 1.0'"):
        attach_evaluation(model, {**report, "model": "other 1.0"})
    with pytest.raises(ModelError, match="with extra passes: the stored evaluation is of the default passes"):
        attach_evaluation(model, {**report, "model": "block-test 2.0.0 (mirrored)"})
    with pytest.raises(ModelError, match="not run at the model's own thresholds"):  # e.g. `evaluate --score 0.3`
        attach_evaluation(model, {**report, "score_thresholds": dict.fromkeys(CATEGORIES, 0.3)})
    with pytest.raises(ModelError, match="not a `sitewatch evaluate --json` report"):
        attach_evaluation(model, {"model": "block-test 2.0.0", "categories": []})

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    import onnx

    monkeypatch.setattr(onnx, "save", disk_full)
    with pytest.raises(ModelError, match="cannot write the model \\(No space left on device\\)"):
        attach_evaluation(model, report)
    monkeypatch.undo()
    assert model.read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    attach_evaluation(model, report)
    after = read_metadata(model)
    assert {k: v for k, v in after.items() if k != EVALUATION_KEY} == before  # nothing else touched
    assert json.loads(after[EVALUATION_KEY])["categories"]["ship"]["ap50"] == 0.3
    monkeypatch.setattr(reliability, "model_metadata", lambda name: after)
    desc, lim = reliability.model_notes(["block-test 2.0.0"])
    assert "held-out evaluation (val, 12 images): aircraft AP50 0.91 (P 0.90, R 0.88, count error 4 %)" in desc[0]
    assert lim == [
        "Detector model block-test 2.0.0 was not evaluated on helicopters (no held-out labels): its helicopters are unverified.",
        "Detector model block-test 2.0.0 is weak on ships (held-out AP50 0.30, recall 0.25 at its threshold): counts of ships "
        "are uncertain and an absence of ships is not evidence.",
        # A high AP50 on 7 objects does not vouch for a category.
        "Detector model block-test 2.0.0 is weak on large vehicles (held-out AP50 0.80 on only 7 objects, recall 0.71 at "
        "its threshold): counts of large vehicles are uncertain and an absence of large vehicles is not evidence.",
    ]
    # Passes detected with extra passes name them after the version; the model is described by the
    # evaluation of its default passes, once per model however many labels.
    desc, lim2 = reliability.model_notes(["block-test 2.0.0 (×0.5 scale, mirrored)", "block-test 2.0.0"] * 2)
    assert len(desc) == 1 and desc[0].startswith("block-test 2.0.0; passes also made with ×0.5 scale, mirrored; ")
    assert "held-out evaluation of the default passes (val, 12 images)" in desc[0]
    assert lim2 == lim
    weak = reliability.weak_categories(["block-test 2.0.0 (mirrored)", "block-test 2.0.0"])
    assert weak["ship"] == "held-out AP50 0.30 for block-test 2.0.0"
    assert reliability.model_base("my model (copy) 1.0") == "my model (copy) 1.0"
    # An evaluation of another version (the file was retrained since) is not used.
    _, lim = reliability.model_notes(["block-test 1.9.0"])
    assert lim == ["Detector model block-test 1.9.0: no evaluation metrics are recorded with the model; see `sitewatch evaluate`."]


def test_attach_evaluation_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnx")
    from detect_support import write_block_model
    from sitewatch.cli.main import main

    model = write_block_model(tmp_path / "m.onnx", version="2.0.0")
    original = model.read_bytes()
    bad = tmp_path / "eval.json"
    bad.write_text("[1, 2")
    for args, message in (([str(model), str(tmp_path / "none.json")], "cannot read the evaluation report"),
                          ([str(model), str(bad)], f"{bad}: cannot read the evaluation report"),
                          ([str(tmp_path / "none.onnx"), str(bad)], "cannot read the evaluation report"),
                          ([str(tmp_path), str(bad)], "cannot read the evaluation report")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main(["train", "attach-evaluation", *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, err
    bad.write_text('{"model": "block-test 2.0.0"}')
    with pytest.raises(SystemExit) as e:
        main(["train", "attach-evaluation", str(tmp_path), str(bad)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{tmp_path}: not a readable ONNX model" in err and "Traceback" not in err
    assert model.read_bytes() == original
