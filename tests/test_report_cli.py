"""`sitewatch report`: bad input gives one line and exit 2; a stored site renders end to end."""

from __future__ import annotations

import pytest

from sitewatch.cli.main import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_unsupported_extension_is_one_line(tmp_path, capsys) -> None:
    code, _, err = _run(["report", "hmeimim", "-o", str(tmp_path / "r.docx")], capsys)
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'r.docx'}: unsupported report format '.docx'; use .html, .pdf or .json"
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_one_line(tmp_path, capsys) -> None:
    code, _, err = _run(["report", "hmeimim", "-o", str(tmp_path / "nope" / "r.pdf")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "does not exist" in err and "Traceback" not in err


def test_existing_outputs_are_not_replaced_without_overwrite(tmp_path, capsys) -> None:
    import os

    (tmp_path / "r.html").write_text("mine")
    code, _, err = _run(["report", "hmeimim", "-o", str(tmp_path / "r.html")], capsys)
    assert code == 2 and err.strip() == f"error: {tmp_path / 'r.html'}: exists; use --overwrite to replace it"
    (tmp_path / "t2.json").write_text("twin")  # the JSON twin is protected too
    code, _, err = _run(["report", "hmeimim", "-o", str(tmp_path / "t2.pdf")], capsys)
    assert code == 2 and err.strip() == f"error: {tmp_path / 't2.json'}: exists; use --overwrite to replace it"
    os.mkfifo(tmp_path / "p.html")
    code, _, err = _run(["report", "hmeimim", "-o", str(tmp_path / "p.html"), "--overwrite"], capsys)
    assert code == 2 and err.strip() == f"error: {tmp_path / 'p.html'}: exists and is a named pipe; report not written"
    assert (tmp_path / "r.html").read_text() == "mine" and (tmp_path / "t2.json").read_text() == "twin"


def test_report_end_to_end_from_store(tmp_path, capsys) -> None:
    """SIMULATED passes scanned into a store → compare → assess → report, with every footnote resolving."""
    import json
    import re

    from shapely.geometry import box

    from sitewatch.imagery import open_scene
    from sitewatch.imagery.simulate import simulate_site
    from sitewatch.pipeline import scan
    from sitewatch.report import write_report
    from sitewatch.store import open_store
    from sitewatch.store.span import PassSpan
    from test_scan import FakeDetector, FakeSite

    aoi = box(35.9425, 35.4012, 35.9455, 35.4035)
    sc = simulate_site(tmp_path / "img", aoi, site="simbase", extent_m=400, n_aircraft=5, n_helicopters=1,
                       n_vehicles=2, departed=3, arrived=1)
    site = FakeSite("simbase", aoi)
    with open_store() as store:
        for p in sc.passes:
            det = FakeDetector([(o.box.cx, o.box.cy, o.box.length, o.box.width, o.box.heading_deg, o.category) for o in p.objects])
            scan(open_scene(p.path), site, det, store)
        doc = store.add_document("example-news", "Three aircraft left simbase.", None, None, None)
        store.save_claims(doc, [{"id": "c1", "text": "Three aircraft left simbase.", "source": "example-news", "site": "simbase"}])
        stored = store.list_passes("simbase")
        out = write_report(store, site, tmp_path / "simbase.html")
        # --from after the first pass leaves one pass: no comparison, says what cannot be assessed, still renders.
        one = write_report(store, site, tmp_path / "one.html", span=PassSpan.parse(str(stored[1].id), None))
        assert [p.id for p in store.list_passes("simbase")] == [p.id for p in stored]  # the report only reads
    html = out.read_text()
    twin = json.loads((tmp_path / "simbase.json").read_text())
    assert twin["simulated"] is True and "SIMULATED IMAGERY" in html
    assert [p["id"] for p in twin["passes"]] == [p.id for p in stored]
    assert len(twin["comparisons"]) == 1
    cmp_counts = twin["comparisons"][0]["counts"]["aircraft"]
    assert {k: cmp_counts[k] for k in ("arrived", "departed", "remained")} == {"arrived": 1, "departed": 3, "remained": 2}
    # Every footnote of every key judgement resolves to an evidence entry of passes/detections in the store.
    keys = {e["key"]: e for e in twin["evidence"]}
    det_ids = {d.id for p in stored for d in p.detections}
    assert twin["assessment"]["judgements"]
    for j in twin["assessment"]["judgements"]:
        for k in j["evidence"]:
            assert k in keys
            assert set(keys[k]["detection_ids"]) <= det_ids
            assert set(keys[k]["pass_ids"]) <= {p.id for p in stored}
    anchors = set(re.findall(r'<li id="ev-([^"]+)"', html))
    assert set(re.findall(r'href="#ev-([^"]+)"', html)) <= anchors
    chip_statuses = {s for c in twin["chips"] for s in c["statuses"]}
    assert {"arrived", "departed"} <= chip_statuses
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) == 2 * len(twin["chips"]) + 2
    one_twin = json.loads((tmp_path / "one.json").read_text())
    assert [p["id"] for p in one_twin["passes"]] == [stored[1].id] and one_twin["comparisons"] == []
    assert any("cannot be assessed" in u for u in one_twin["assessment"]["unassessable"])
    assert "What cannot be assessed" in one.read_text()
    # An unknown site name is one line and exit 2, and writes nothing.
    code, _, err = _run(["report", "nowhere-xyz", "-o", str(tmp_path / "n.html")], capsys)
    assert code == 2 and err.startswith("error: unknown site 'nowhere-xyz'") and err.count("\n") == 1
    assert not (tmp_path / "n.html").exists() and not (tmp_path / "n.json").exists()


def test_report_on_real_pixel_space_pair(data_dir, tmp_path) -> None:
    """A real Airbus Pléiades pair (pixel space, 0.5 m) with its labels as detections: chips say north unknown."""
    import base64
    import csv
    import io
    from datetime import UTC, datetime

    import numpy as np
    from PIL import Image
    from shapely.geometry import box

    from sitewatch.compare import compare_passes
    from sitewatch.dota import parse_label_file
    from sitewatch.imagery import open_scene
    from sitewatch.report import assemble_report_data, render_html
    from sitewatch.types import Detection, Pass
    from test_scan import FakeSite

    root = data_dir / "airbus-pleiades"
    with (root / "pairs.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["n_aircraft_a"] and r["n_aircraft_b"] and r["n_aircraft_a"] != r["n_aircraft_b"])
    passes, next_id = [], 1
    for n, key in enumerate(("a", "b")):
        img = root / row[f"subdir_{key}"] / row[f"image_{key}"]
        lab = parse_label_file(root / "labels" / (img.stem + ".txt"), img, "airbus-pleiades")
        dets = []
        for o in lab.objects:
            if o.category != "ignore":
                dets.append(Detection(o.box, o.category, 1.0, id=next_id))
                next_id += 1
        passes.append(Pass(site="pair", scene_path=str(img), acquired=datetime(2024, 1, 1 + 14 * n, tzinfo=UTC), footprint_wkt=None,
                           aoi_coverage=1.0, gsd_m=0.5, model="labels 1.0", detections=dets, id=n + 1))
    site = FakeSite("pair", box(0, 0, 0, 0))
    comp = compare_passes(passes[0], passes[1], site)
    r = assemble_report_data(site, passes, comparisons=[comp], open_scene=lambda p: open_scene(p, gsd_m=0.5))
    assert [p.n_detections for p in r.passes] == [int(row["n_aircraft_a"]), int(row["n_aircraft_b"])]
    assert any("not georeferenced" in line and "north is unknown" in line for line in r.limitations)
    assert r.chips and {f.key for f in r.figures} == {"timeline"}  # no site map without an AOI
    chip = r.chips[0].after or r.chips[0].before
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(chip.png_b64))))
    assert img.shape[:2] == (360, 360)
    html = render_html(r)
    assert "pixel space" in html and "SIMULATED" not in html
