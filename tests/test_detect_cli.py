"""``sitewatch detect`` on good and bad input, with the exact-answer block model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.warp import transform as warp_transform

from detect_support import BLOCK_LENGTH, BLOCK_WIDTH, write_block_model
from sitewatch.cli.main import main
from sitewatch.imagery import open_scene
from sitewatch.types import Detection, OrientedBox

BLOCKS = [(40, 24), (100, 80), (152, 148)]  # 4-aligned top-left corners of 4x4 red blocks


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return write_block_model(tmp_path / "block.onnx")


def _rgb(w: int = 200, h: int = 180, value: int = 255) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 1] = 60  # some green everywhere: not a flat image
    for x, y in BLOCKS:
        rgb[y : y + 4, x : x + 4, 0] = value
    return rgb


def _png(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _tif(path: Path, bands: np.ndarray, **profile) -> Path:
    count, h, w = bands.shape
    meta = {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": bands.dtype.name, **profile}
    with rasterio.open(path, "w", **meta) as ds:
        ds.write(bands)
    return path


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    try:
        main(["detect", *args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _centres(out: str) -> list[tuple[float, float]]:
    return sorted(tuple(d["center"]) for d in json.loads(out))


def _expected(blocks=BLOCKS) -> list[tuple[float, float]]:
    return sorted((x + 2.0, y + 2.0) for x, y in blocks)


def test_json_output_schema_and_exact_boxes(tmp_path, model, capsys) -> None:
    code, out, err = run(capsys, str(_png(tmp_path / "a.png", _rgb())), "--model", str(model), "--json", "--tile", "64", "--overlap", "16")
    assert code == 0, err
    items = json.loads(out)
    assert _centres(out) == _expected()
    d = items[0]
    assert set(d) >= {"category", "score", "corners", "center", "length_px", "width_px", "heading_px_deg", "heading_deg", "footprint"}
    assert (d["category"], d["length_px"], d["width_px"], d["heading_px_deg"]) == ("aircraft", BLOCK_LENGTH, BLOCK_WIDTH, 0.0)
    assert d["footprint"] is None and len(d["corners"]) == 4


def test_jsonl_and_out_file_and_summary(tmp_path, model, capsys) -> None:
    img = _png(tmp_path / "a.png", _rgb())
    code, out, _ = run(capsys, str(img), "--model", str(model), "--jsonl")
    assert code == 0 and len(out.strip().splitlines()) == 3
    dest = tmp_path / "dets.json"
    code, out, _ = run(capsys, str(img), "--model", str(model), "--out", str(dest))
    assert code == 0
    assert "aircraft" in out and "3" in out  # summary table
    assert _centres(dest.read_text()) == _expected()


def test_score_threshold_option(tmp_path, model, capsys) -> None:
    rgb = _rgb()
    rgb[24:28, 40:44, 0] = 180  # dim block: score sigmoid(0.1 * 52) = 0.9945
    img = _png(tmp_path / "a.png", rgb)
    assert len(json.loads(run(capsys, str(img), "--model", str(model), "--json")[1])) == 3
    assert len(json.loads(run(capsys, str(img), "--model", str(model), "--json", "--score", "0.999")[1])) == 2


def test_score_threshold_from_environment(tmp_path, model, capsys, monkeypatch) -> None:
    from sitewatch.detect.onnx import OnnxDetector

    rgb = _rgb()
    rgb[24:28, 40:44, 0] = 180  # dim block: score 0.9945
    img = _png(tmp_path / "a.png", rgb)
    monkeypatch.setenv("SITEWATCH_SCORE_THRESHOLD", "0.999")
    assert len(json.loads(run(capsys, str(img), "--model", str(model), "--json")[1])) == 2
    assert OnnxDetector(model).score_threshold == 0.999  # what scan and evaluate build
    assert len(json.loads(run(capsys, str(img), "--model", str(model), "--json", "--score", "0.5")[1])) == 3  # the option wins
    monkeypatch.setenv("SITEWATCH_SCORE_THRESHOLD", "2")
    code, _, err = run(capsys, str(img), "--model", str(model), "--json")
    assert code == 2 and "SITEWATCH_SCORE_THRESHOLD" in err and "Traceback" not in err


def test_geojson_wgs84_polygons(tmp_path, model, capsys) -> None:
    t = Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)
    img = _tif(tmp_path / "geo.tif", _rgb().transpose(2, 0, 1).copy(), crs="EPSG:32633", transform=t)
    code, out, err = run(capsys, str(img), "--model", str(model), "--geojson")
    assert code == 0, err
    fc = json.loads(out)
    assert set(fc) == {"type", "features"}  # RFC 7946: no foreign top-level members
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    for f in fc["features"]:
        ring = f["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) == 5
        assert shapely.LinearRing(ring).is_ccw  # RFC 7946 §3.1.6
        assert all(len(repr(v).split(".")[-1]) <= 7 for pt in ring for v in pt)
        p = f["properties"]
        box = OrientedBox(p["cx_px"], p["cy_px"], p["length_px"], p["width_px"], p["heading_px_deg"])
        xs, ys = t * (box.corners()[:, 0], box.corners()[:, 1])
        lon, lat = warp_transform("EPSG:32633", "EPSG:4326", list(xs), list(ys))
        for ex in zip(lon, lat, strict=True):  # vertex by vertex, whatever the winding
            assert min(max(abs(v[0] - ex[0]), abs(v[1] - ex[1])) for v in ring[:4]) <= 6e-8
        assert 14.9 < lon[0] < 15.1 and 37.0 < lat[0] < 37.1  # UTM 33N, 500 km E, 4100 km N
        # the same meaning as in `sitewatch export`: heading_deg from true north, heading_px_deg in the image.
        # The long axis is image-up (0 deg); UTM 33N at 15 E is its central meridian: grid north = true north.
        assert p["heading_px_deg"] == 0.0 and min(p["heading_deg"], 180.0 - p["heading_deg"]) < 0.01
        assert p["length_m"] == pytest.approx(BLOCK_LENGTH * 0.5, rel=0.1) and p["scene"] == str(img)


def test_detect_measures_with_gsd_and_site_priors(tmp_path, model, capsys) -> None:
    img = _png(tmp_path / "shot.png", _rgb())
    code, out, err = run(capsys, str(img), "--model", str(model), "--json", "--gsd", "0.61")
    assert code == 0, err
    dets = json.loads(out)
    for d in dets:
        m = d["measurement"]
        assert m["gsd_m"] == 0.61 and m["heading_deg"] is None  # not georeferenced: no true north
        assert m["length_m"] == pytest.approx(BLOCK_LENGTH * 0.61, rel=0.1) and m["width_m"] == pytest.approx(BLOCK_WIDTH * 0.61, rel=0.15)
        assert 0 < m["length_sigma_m"] < m["length_m"] and m["width_sigma_m"] > 0
        assert d["candidates"] and 0.99 <= sum(c["probability"] for c in d["candidates"]) <= 1.0 + 1e-6
        assert all(c["prior_weight"] == 1.0 for c in d["candidates"])
    code, out, err = run(capsys, str(img), "--model", str(model), "--json", "--gsd", "0.61", "--site", "hmeimim")
    assert code == 0, err
    weights = {c["type_id"]: c["prior_weight"] for d in json.loads(out) for c in d["candidates"]}
    assert any(w != 1.0 for w in weights.values()), weights  # the site's type priors applied
    code, out, err = run(capsys, str(img), "--model", str(model), "--gsd", "0.61")
    metres = re.search(r"(\d+\.\d) ± (\d+\.\d)", out)  # the summary states metres ± 1σ
    assert code == 0 and metres and float(metres.group(1)) == pytest.approx(BLOCK_LENGTH * 0.61, rel=0.1), out
    code, _, err = run(capsys, str(img), "--model", str(model), "--json", "--site", "atlantis-xyz")
    assert code == 2 and "atlantis-xyz" in err and err.strip().count("\n") == 0


def test_detect_json_validates_against_published_schema(tmp_path, model, capsys) -> None:
    import jsonschema

    from sitewatch.records import DETECTION_SCHEMA_PATH, detection_list_schema, detection_schema

    root = Path(__file__).resolve().parents[1]
    published = json.loads((root / DETECTION_SCHEMA_PATH).read_text())
    assert published == detection_schema(), f"regenerate: python -m sitewatch.records > {DETECTION_SCHEMA_PATH}"
    t = Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)
    geo = _tif(tmp_path / "geo.tif", _rgb().transpose(2, 0, 1).copy(), crs="EPSG:32633", transform=t)
    for args in ([str(geo)], [str(_png(tmp_path / "a.png", _rgb())), "--gsd", "0.61"], [str(tmp_path / "a.png")]):
        code, out, err = run(capsys, *args, "--model", str(model), "--json")
        assert code == 0, err
        records = json.loads(out)
        jsonschema.Draft202012Validator(detection_list_schema()).validate(records)
        for r in records:
            jsonschema.Draft202012Validator(published).validate(r)
    bad = records[0] | {"heading_px_deg": 200.0}  # the schema is not a rubber stamp
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(published).validate(bad)


def test_geojson_refused_without_georeference(tmp_path, model, capsys) -> None:
    img = _png(tmp_path / "shot.png", _rgb())
    code, out, err = run(capsys, str(img), "--model", str(model), "--geojson")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "shot.png" in err and "not georeferenced" in err


def _bad_files(tmp: Path) -> dict[str, Path]:
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "notes.txt").write_text("not an image\n" * 20)
    (tmp / "trunc.png").write_bytes(_png(tmp / "full.png", _rgb()).read_bytes()[:300])
    _png(tmp / "tiny.png", np.zeros((1, 1, 3), np.uint8))
    return {
        "missing": tmp / "missing.tif",
        "empty": tmp / "empty.png",
        "text": tmp / "notes.txt",
        "truncated": tmp / "trunc.png",
        "1x1": tmp / "tiny.png",
        "folder": tmp,
    }


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "1x1", "folder"])
def test_bad_images_refused_in_one_line(tmp_path, model, capsys, case: str) -> None:
    path = _bad_files(tmp_path)[case]
    code, out, err = run(capsys, str(path), "--model", str(model), "--json")
    assert code != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] or path.name in lines[0]
    assert "Traceback" not in err


def test_bad_model_refused_in_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x00garbage" * 50)
    img = _png(tmp_path / "a.png", _rgb())
    code, _, err = run(capsys, str(img), "--model", str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "m.onnx" in err
    code, _, err = run(capsys, str(img), "--model", str(tmp_path / "m.onnx"), "--tile", "100")
    assert code == 2 and "multiple of 32" in err


def _stretch_case(kind: str) -> np.ndarray:
    """Non-8-bit / odd-band rasters holding the blocks; the percentile stretch keeps them bright red."""
    rgb = _rgb().transpose(2, 0, 1).astype(np.float64)
    if kind == "uint16":
        return (rgb * 40 + 1000).astype(np.uint16)
    if kind == "float32":
        return (rgb * 1.7 + 12.5).astype(np.float32)  # radiance-like floats
    if kind == "rgba":
        return np.concatenate([rgb, np.full((1, *rgb.shape[1:]), 255)]).astype(np.uint8)
    if kind == "rgbn":
        return np.concatenate([rgb, np.full((1, *rgb.shape[1:]), 90)]).astype(np.uint8)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["uint16", "float32", "rgba", "rgbn"])
def test_bit_depths_and_band_layouts_are_detected(tmp_path, model, capsys, kind: str) -> None:
    img = _tif(tmp_path / f"{kind}.tif", _stretch_case(kind))
    code, out, err = run(capsys, str(img), "--model", str(model), "--json")
    assert code == 0, err
    assert _centres(out) == _expected()


def test_single_band_image_runs(tmp_path, model, capsys) -> None:
    grey = np.zeros((1, 100, 100), np.uint8)
    grey[0, 40:44, 60:64] = 255  # bright in all three channels after grey → RGB
    code, out, err = run(capsys, str(_tif(tmp_path / "grey.tif", grey)), "--model", str(model), "--json")
    assert code == 0, err
    assert _centres(out) == [(62.0, 42.0)]


def test_nodata_area_is_skipped(tmp_path, model, capsys) -> None:
    bands = _rgb(256, 128).transpose(2, 0, 1).copy()
    bands[:, :, :128] = 0  # left half nodata: one block there is not reported
    bands[0, 80:84, 200:204] = 255
    img = _tif(tmp_path / "nodata.tif", bands, nodata=0)
    code, out, err = run(capsys, str(img), "--model", str(model), "--json", "--tile", "64", "--overlap", "0")
    assert code == 0, err
    assert _centres(out) == [(202.0, 82.0)]


def test_entry_point_subprocess_no_traceback(tmp_path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "detect", str(tmp_path / "x.jpg")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert r.stdout == "" and line.startswith(f"error: {tmp_path / 'x.jpg'}: ") and "empty" in line


def test_provider_and_multiscale_options(tmp_path, model, capsys) -> None:
    img = str(_png(tmp_path / "a.png", _rgb()))
    code, out, err = run(capsys, img, "--model", str(model), "--json", "--provider", "auto", "--multiscale", "--batch-size", "2")
    assert code == 0, err
    # At half scale a 4 px block is 2 px: too dim a cell for the block model, so the answer is unchanged.
    assert _centres(out) == _expected()
    code, _, err = run(capsys, img, "--model", str(model), "--provider", "nosuch")
    assert code == 2 and "not available" in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The input shapes of every ONNX model call, in order (cleared by the test as it goes)."""
    from sitewatch.detect.onnx import OnnxBackend

    calls: list[tuple[int, ...]] = []
    original = OnnxBackend.run

    def counted(self, images):  # noqa: ANN001, ANN202
        calls.append(images.shape)
        return original(self, images)

    monkeypatch.setattr(OnnxBackend, "run", counted)
    return calls


def test_flip_test_option(tmp_path, model, capsys, model_calls) -> None:
    """--flip-test runs the model on each batch twice, once mirrored. The block model is
    mirror-symmetric (uniform 4x4 kernels), so averaging with the mirrored tiles leaves every
    score, hence the answer, as it is."""
    img = str(_png(tmp_path / "a.png", _rgb()))
    code, plain, err = run(capsys, img, "--model", str(model), "--json")
    assert code == 0, err
    n_plain, model_calls[:] = len(model_calls), []
    code, flipped, err = run(capsys, img, "--model", str(model), "--json", "--flip-test")
    assert code == 0, err
    assert n_plain > 0 and len(model_calls) == 2 * n_plain
    assert _centres(flipped) == _centres(plain) == _expected()
    scores = [sorted(d["score"] for d in json.loads(x)) for x in (plain, flipped)]
    assert scores[1] == pytest.approx(scores[0], abs=1e-6)


def test_thorough_mode_runs_the_half_scale_and_mirrored_passes(tmp_path, model, capsys, monkeypatch, model_calls) -> None:
    """--thorough, and the setting detect_thorough (environment or config file), run exactly the
    model calls of --multiscale --flip-test: every batch of both scales twice; --no-thorough turns
    the setting off. The block model's objects are smaller than the half-scale pass's floor, so
    the answer stays the plain one."""
    img = str(_png(tmp_path / "a.png", _rgb()))
    config = tmp_path / "config.toml"
    config.write_text("detect_thorough = true\n")
    runs = {}
    for name, flags, env in (
        ("plain", (), {}),
        ("multiscale", ("--multiscale",), {}),
        ("both", ("--multiscale", "--flip-test"), {}),
        ("thorough", ("--thorough",), {}),
        ("environment", (), {"SITEWATCH_DETECT_THOROUGH": "1"}),
        ("config file", (), {"SITEWATCH_CONFIG": str(config)}),
        ("turned off", ("--no-thorough",), {"SITEWATCH_CONFIG": str(config)}),
    ):
        for var in ("SITEWATCH_DETECT_THOROUGH", "SITEWATCH_CONFIG"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        model_calls[:] = []
        code, out, err = run(capsys, img, "--model", str(model), "--json", *flags)
        assert code == 0, err
        runs[name] = (sorted(model_calls), _centres(out))
    n_plain, n_multi = len(runs["plain"][0]), len(runs["multiscale"][0])
    assert 0 < n_plain < n_multi
    assert len(runs["both"][0]) == 2 * n_multi
    assert runs["thorough"][0] == runs["environment"][0] == runs["config file"][0] == runs["both"][0]
    assert runs["turned off"][0] == runs["plain"][0]
    assert all(centres == _expected() for _, centres in runs.values())


def test_upscale_option_runs_the_consensus_2x_pass(tmp_path, capsys, model_calls) -> None:
    """--upscale on a small image of unknown GSD adds the 2x pass and, for each of its batches, the
    same batch at native size: calls of the plain run plus twice the 2x pass's batches."""
    model = write_block_model(tmp_path / "m.onnx", working_gsd_m="0.3")
    img = str(_png(tmp_path / "a.png", _rgb()))
    shapes = {}
    for flags in ((), ("--upscale",)):
        model_calls[:] = []
        code, _, err = run(capsys, img, "--model", str(model), "--json", *flags)
        assert code == 0, err
        shapes[flags] = list(model_calls)
    plain, upscaled = shapes[()], shapes[("--upscale",)]
    assert plain and all(c[2:] == (64, 64) for c in plain)  # the model's 64 px tiles
    halved = [c for c in upscaled if c[2:] == (32, 32)]  # the 2x pass's tiles at native size
    assert halved and len(upscaled) == len(plain) + 2 * len(halved)


def test_streamed_outputs_equal_the_whole_list(tmp_path, model, capsys, monkeypatch) -> None:
    """Detections are identified and written a chunk at a time: chunks of one give the same JSON,
    JSONL, GeoJSON and summary as one chunk, and the streamed writers equal ``json.dumps`` of the
    whole list (empty included)."""
    from sitewatch.cli import detect as cli_detect

    t = Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)
    img = _tif(tmp_path / "geo.tif", _rgb().transpose(2, 0, 1).copy(), crs="EPSG:32633", transform=t)
    outputs = {}
    for chunk in (512, 1):
        monkeypatch.setattr(cli_detect, "IDENTIFY_CHUNK", chunk)
        for flag in ("--json", "--jsonl", "--geojson", "--no-refine"):
            code, out, err = run(capsys, str(img), "--model", str(model), flag)
            assert code == 0, err
            outputs[chunk, flag] = re.sub(r"\d+\.\d s$", "", out.strip(), flags=re.M)  # the summary's time
    for flag in ("--json", "--jsonl", "--geojson", "--no-refine"):
        assert outputs[1, flag] == outputs[512, flag], flag
    dets = [Detection.from_dict(d) for d in json.loads(outputs[1, "--json"])]
    assert len(dets) == 3 and all(d.measurement is not None for d in dets)
    assert len(outputs[1, "--jsonl"].splitlines()) == 3
    assert "total" in outputs[1, "--no-refine"] and "3" in outputs[1, "--no-refine"]
    with open_scene(img) as scene:
        for ds in (dets, []):
            assert "".join(cli_detect._json_array(iter(ds), None)) == json.dumps([d.to_dict() for d in ds])
            assert "".join(cli_detect._json_array(iter(ds), 1)) == json.dumps([d.to_dict() for d in ds], indent=1)
            geo = "".join(cli_detect._geojson_text(scene, iter(ds), "m"))
            assert geo == json.dumps(cli_detect.to_geojson(scene, ds, "m"))


def test_no_identify_writes_the_same_boxes_unmeasured(tmp_path, model, capsys) -> None:
    """--no-identify: the same boxes, scores and footprints as the default, without measurement or
    candidates; the identification options cannot be combined with it."""
    t = Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)
    img = _tif(tmp_path / "geo.tif", _rgb().transpose(2, 0, 1).copy(), crs="EPSG:32633", transform=t)
    runs = {}
    for flag in ("--identify", "--no-identify"):
        code, out, err = run(capsys, str(img), "--model", str(model), "--json", flag)
        assert code == 0, err
        runs[flag] = [Detection.from_dict(d) for d in json.loads(out)]
    full, bare = runs["--identify"], runs["--no-identify"]
    assert len(bare) == len(full) == 3
    for a, b in zip(full, bare, strict=True):
        assert (a.box, a.category, a.score, a.footprint) == (b.box, b.category, b.score, b.footprint)
        assert a.measurement is not None and b.measurement is None and not b.candidates
    for extra in (["--site", "hmeimim"], ["--no-refine"]):
        code, out, err = run(capsys, str(img), "--model", str(model), "--no-identify", *extra)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--no-identify" in err


@pytest.mark.parametrize("flag", ["--json", "--jsonl", "--geojson"])
def test_failure_part_way_leaves_no_partial_document(tmp_path, model, capsys, monkeypatch, flag: str) -> None:
    """A scene whose identification fails after the first chunk has been written: standard output
    gets nothing (not a truncated array for the next program in a pipe), the error is one line and
    the exit is non-zero; without the failure the same run prints the whole document."""
    from sitewatch.cli import detect as cli_detect
    from sitewatch.errors import SceneError

    t = Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)
    img = _tif(tmp_path / "geo.tif", _rgb().transpose(2, 0, 1).copy(), crs="EPSG:32633", transform=t)
    monkeypatch.setattr(cli_detect, "IDENTIFY_CHUNK", 1)
    monkeypatch.setattr(cli_detect, "STDOUT_SPOOL_BYTES", 64)  # the spool goes to a file part-way
    code, whole, err = run(capsys, str(img), "--model", str(model), flag)
    assert code == 0, err
    assert len(whole) > 64
    real = cli_detect.identify
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SceneError(f"{img}: window 1 unreadable")
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_detect, "identify", failing)
    code, out, err = run(capsys, str(img), "--model", str(model), flag)
    assert len(calls) == 2  # it failed after the first detection was made
    assert code != 0 and out == ""
    assert err.strip().splitlines() == [f"error: {img}: window 1 unreadable"]


def test_full_disk_while_spooling_standard_output_is_one_error_line(tmp_path, model, capsys, monkeypatch) -> None:
    """The spool of a document for standard output overflows to a temporary file; a full disk there
    (an OSError that names no file) is one ``error:`` line and exit 2, not an internal error, and
    nothing reaches standard output."""
    import errno
    import tempfile

    from sitewatch.cli import detect as cli_detect

    t = Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)
    img = _tif(tmp_path / "geo.tif", _rgb().transpose(2, 0, 1).copy(), crs="EPSG:32633", transform=t)
    monkeypatch.setattr(cli_detect, "STDOUT_SPOOL_BYTES", 64)  # the spool goes to a file part-way

    class FullDisk(tempfile.SpooledTemporaryFile):
        def rollover(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli_detect.tempfile, "SpooledTemporaryFile", FullDisk)
    code, out, err = run(capsys, str(img), "--model", str(model), "--json")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["error: No space left on device (while writing a temporary or output file)"]
