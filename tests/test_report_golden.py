"""The outputs of the demo, built from its store, against stored expected files.

Two demos: the SIMULATED Hmeimim site (a detector that finds exactly the simulated objects) and the
real Pléiades pair (a detector that returns the label boxes; passes in image pixels, no ground
position). Each demo's imagery, scan and claims steps fill a store once per module; then

* :func:`sitewatch.report.build_report_data` compares, assesses and assembles the report as the
  demo, the CLI and the API do, and its JSON twin is compared field by field with
  ``report_golden_hmeimim_simulated.json``;
* every shape a detection is written in — each export format, the store's rows, ``detect --json``
  and ``--geojson``, the API's features — is read back, normalised and reduced to one digest per
  column (or property), compared with ``outputs_golden_hmeimim_simulated.json``, so a failure names
  the output, layer and column that changed. An output refused for a pass without a ground
  position (STAC, ``--geojson``) is recorded as refused, with the error's class.

The real pair's expected files are ``*_golden_real_pair.json``.

Volatile fields (generation and storage times, version, the temporary folder) are replaced and
floats rounded before the comparison.

To regenerate after an intended change: ``SITEWATCH_UPDATE_GOLDEN=1 pytest
tests/test_report_golden.py``, then review the diff of the expected files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely

from sitewatch.demo.steps import run_demo, step_claims, step_imagery, step_scan
from sitewatch.report import build_report_data
from sitewatch.sites import get_site
from sitewatch.store import open_store
from sitewatch.types import Pass
from test_demo import _truth_detector

DATA = Path(__file__).parent / "data"
#: Expected files per demo: the report's JSON twin and the outputs' digests.
EXPECTED = {
    "simulated": (DATA / "report_golden_hmeimim_simulated.json", DATA / "outputs_golden_hmeimim_simulated.json"),
    "real-pair": (DATA / "report_golden_real_pair.json", DATA / "outputs_golden_real_pair.json"),
}
#: Decimals kept of a float in an output's digest (1e-7 degree is about 1 cm, the exports' precision).
DIGEST_DECIMALS = 7
KML = "{http://www.opengis.net/kml/2.2}"


def _normalised(value: Any, folders: dict[str, str], decimals: int = 6) -> Any:
    """``value`` with each folder replaced by its name (``{path: "<tmp>"}``) and floats rounded to ``decimals``."""
    if isinstance(value, dict):
        return {k: _normalised(v, folders, decimals) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(v, folders, decimals) for v in value]
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, str):
        for path, name in folders.items():
            value = value.replace(path, name)
        return value
    return value


def _update(path: Path, value: Any) -> None:
    if os.environ.get("SITEWATCH_UPDATE_GOLDEN"):
        path.write_text(json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Demo:
    kind: str
    tmp: Path
    store_url: str
    site: Any
    passes: list[Pass]
    data: Path | None = None

    @property
    def folders(self) -> dict[str, str]:
        """Folders named in outputs, replaced before comparison (they differ between machines)."""
        out = {str(self.tmp): "<tmp>"}
        if self.data is not None:
            out[str(self.data.resolve())] = "<data>"
            out[str(self.data)] = "<data>"
        return out


@pytest.fixture(scope="module", params=list(EXPECTED))
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    import sitewatch.pipeline
    from sitewatch.demo.scenario import real_pair
    from test_scenario import LabelDetector

    kind = request.param
    data = request.getfixturevalue("data_dir") if kind == "real-pair" else None
    tmp = tmp_path_factory.mktemp("golden")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SITEWATCH_HOME", str(tmp / "home"))
        mp.setenv("XDG_CONFIG_HOME", str(tmp / "config"))
        for var in ("SITEWATCH_STORE_URL", "SITEWATCH_CONFIG", "SITEWATCH_MODEL", "SITEWATCH_SCORE_THRESHOLD"):
            mp.delenv(var, raising=False)
        if data is None:
            _truth_detector(mp)
        else:
            mp.setattr(sitewatch.pipeline, "load_default_detector", lambda model=None: LabelDetector())
        result = run_demo(tmp / "out", data, steps=[step_imagery, step_scan, step_claims])
        site = real_pair(data)[1] if data is not None else get_site(result.site)
        with open_store(result.store_url) as store:
            passes = store.list_passes(site.name)
        yield Demo(kind, tmp, result.store_url, site, passes, data)


def test_demo_report_json_is_unchanged(demo: Demo) -> None:
    with open_store(demo.store_url) as store:
        data = build_report_data(store, demo.site)
    twin = data.to_json_dict()
    assert twin.pop("generated") and twin.pop("sitewatch_version")
    got = _normalised(twin, demo.folders)
    path = EXPECTED[demo.kind][0]
    _update(path, got)
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert got["simulated"] is (demo.kind == "simulated")
    assert got["site"]["name"] == {"simulated": "hmeimim", "real-pair": "airfield-p"}[demo.kind]
    for key in sorted(expected.keys() | got.keys()):  # one section at a time: a failure names the section
        assert got.get(key) == expected.get(key), key


# --- every shape of a detection ------------------------------------------------------------------


def test_demo_detections_fit_the_published_records(demo: Demo) -> None:
    from sitewatch.records import DetectionRecord, FlatDetectionRecord

    for d in (d for p in demo.passes for d in p.detections):
        DetectionRecord.of(d)
        FlatDetectionRecord.of(d)


#: One output read back: ``{layer: {"schema": ..., "columns": {name: [values]}}}``.
Layers = dict[str, dict[str, Any]]


def _plain(value: Any) -> Any:
    """A JSON-able Python value of a pandas/numpy/shapely cell (missing → None, times as ISO text)."""
    if isinstance(value, shapely.Geometry):
        return shapely.to_wkt(value, rounding_precision=DIGEST_DECIMALS)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    return value


def _frame_layer(frame: pd.DataFrame) -> dict[str, Any]:
    schema = {c: str(t) for c, t in frame.dtypes.items()}
    if isinstance(frame, gpd.GeoDataFrame) and frame.crs is not None:
        schema["crs"] = frame.crs.to_string()
    return {"schema": schema, "columns": {c: [_plain(v) for v in frame[c]] for c in frame.columns}}


def _records_layer(records: list[dict[str, Any]]) -> dict[str, Any]:
    keys = list(dict.fromkeys(k for r in records for k in r))
    return {"schema": keys, "columns": {k: [r.get(k, "<absent>") for r in records] for k in keys}}


def _features_layer(fc: dict[str, Any]) -> dict[str, Any]:
    """A FeatureCollection: its members besides ``features``, each property, id and geometry."""
    feats = fc["features"]
    layer = _records_layer([f["properties"] for f in feats])
    layer["schema"] = {"members": sorted(fc), "feature_members": sorted({k for f in feats for k in f}),
                       "properties": layer["schema"]}  # fmt: skip
    layer["columns"] |= {"<id>": [f.get("id", "<absent>") for f in feats],
                         "<geometry>": [f["geometry"] for f in feats],
                         **{f"<{k}>": fc[k] for k in fc if k not in ("type", "features")}}  # fmt: skip
    return layer


def _read_geojson(path: Path) -> Layers:
    return {"detections": _features_layer(json.loads(path.read_text(encoding="utf-8")))}


def _read_ogr(path: Path) -> Layers:
    out = {}
    for name, _geom_type in pyogrio.list_layers(path):
        info = pyogrio.read_info(path, layer=name)
        layer = _frame_layer(pyogrio.read_dataframe(path, layer=name))
        layer["schema"] |= {"<geometry_type>": info["geometry_type"], "<fields>": list(info["fields"]),
                            "<types>": list(info["dtypes"])}  # fmt: skip
        out[name] = layer
    return out


def _read_parquet(path: Path) -> Layers:
    layer = _frame_layer(gpd.read_parquet(path))
    geo = json.loads(pq.read_metadata(path).metadata[b"geo"])
    geo.pop("creator", None)  # the writing library's version
    for col in geo["columns"].values():  # PROJJSON differs between PROJ versions; its id does not
        col["crs"] = col["crs"]["id"]
    arrow = [f"{f.name}: {f.type}" for f in pq.read_schema(path)]
    layer["schema"] |= {"<geo>": geo, "<arrow>": arrow}
    return {"detections": layer}


def _read_csv(path: Path) -> Layers:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"detections": _records_layer(rows)}


def _read_kml(path: Path) -> Layers:
    """Each placemark's name, description, time stamp, inline style, data fields and coordinates."""
    root = ET.parse(path).getroot()
    rows = []
    for pm in root.iter(f"{KML}Placemark"):
        row: dict[str, Any] = {"<id>": pm.get("id")}
        for tag in ("name", "description", "TimeStamp/{k}when", "Style/{k}LineStyle/{k}color",
                    "Style/{k}LineStyle/{k}width", "Style/{k}PolyStyle/{k}color"):  # fmt: skip
            el = pm.find(f"{KML}" + tag.replace("{k}", KML))
            row[tag.replace("{k}", "")] = None if el is None else el.text
        for sd in pm.iter(f"{KML}SimpleData"):
            row[sd.get("name")] = sd.text
        coords = [el.text for el in pm.iter(f"{KML}coordinates")]
        row["<coordinates>"] = [[[round(float(v), DIGEST_DECIMALS) for v in xyz.split(",")] for xyz in c.split()]
                                for c in coords]  # fmt: skip
        rows.append(row)
    layer = _records_layer(rows)
    fields = [(f.get("name"), f.get("type")) for f in root.iter(f"{KML}SimpleField")]
    layer["schema"] = {"fields": fields, "data": layer["schema"]}
    return {"detections": layer}


def _read_stac(path: Path) -> Layers:
    out: Layers = {}
    for f in sorted(path.rglob("*.json")) + sorted(path.rglob("*.geojson")):
        doc = json.loads(f.read_text(encoding="utf-8"))
        rel = f.relative_to(path).as_posix()
        if doc.get("type") == "FeatureCollection":
            out[rel] = _features_layer(doc)
        else:
            out[rel] = {"schema": sorted(doc), "columns": doc}
    return out


READERS: dict[str, Callable[[Path], Layers]] = {
    "geojson": _read_geojson, "geoparquet": _read_parquet, "kml": _read_kml, "csv": _read_csv,
    "flatgeobuf": _read_ogr, "gpkg": _read_ogr, "stac": _read_stac,
}  # fmt: skip


def _export(demo: Demo, fmt: str) -> Layers:
    from sitewatch.report.exports import FORMATS, export_passes

    chosen = FORMATS[fmt]
    target = demo.tmp / "exports" / (fmt if chosen.folder else f"detections{chosen.suffix}")
    target.parent.mkdir(exist_ok=True)
    export_passes(demo.passes, demo.site, fmt, target, overwrite=True)
    return READERS[fmt](target)


def _store_rows(demo: Demo) -> Layers:
    con = sqlite3.connect(demo.store_url.removeprefix("sqlite:///"))
    try:
        cur = con.execute("SELECT * FROM detections ORDER BY id")
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    for r in rows:  # geometry and JSON columns as values, not their text
        r["footprint"] = _plain(shapely.from_wkt(r["footprint"])) if r["footprint"] else None
        r["candidates"] = json.loads(r["candidates"])
    return {"detections": _records_layer(rows)}


def _detect_json(demo: Demo) -> Layers:
    return {"detections": _records_layer([d.to_dict() for p in demo.passes for d in p.detections])}


def _detect_geojson(demo: Demo) -> Layers:
    from sitewatch.cli.detect import to_geojson
    from sitewatch.imagery import open_scene

    out = {}
    for p in demo.passes:
        with open_scene(p.scene_path) as scene:
            out[f"pass-{p.id}"] = _features_layer(to_geojson(scene, p.detections, p.model))
    return out


def _api_features(demo: Demo) -> Layers:
    from sitewatch.api.views import detection_feature
    from sitewatch.store import pass_to_feature_collection

    out = {}
    for p in demo.passes:
        fc = pass_to_feature_collection(p)
        assert fc["pass"].pop("created")
        out[f"pass-{p.id}"] = _features_layer(fc)
        out[f"pass-{p.id}-api"] = _features_layer(
            {"type": "FeatureCollection", "features": [detection_feature(p, d, "remained") for d in p.detections]}
        )
    return out


OUTPUTS: dict[str, Callable[[Demo], Layers]] = {
    **{f"export-{fmt}": (lambda demo, fmt=fmt: _export(demo, fmt)) for fmt in READERS},
    "store-rows": _store_rows,
    "detect-json": _detect_json,
    "detect-geojson": _detect_geojson,
    "features": _api_features,
}


def _digest(values: Any) -> str:
    text = json.dumps(values, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _digested(layers: Layers, folders: dict[str, str]) -> dict[str, Any]:
    out = {}
    for name, layer in layers.items():
        columns = _normalised(layer["columns"], folders, DIGEST_DECIMALS)
        out[name] = {"schema": _normalised(layer["schema"], folders),
                     "rows": max((len(v) for v in columns.values() if isinstance(v, list)), default=0),
                     "columns": {c: _digest(v) for c, v in columns.items()}}  # fmt: skip
    return out


def _read_or_refused(read: Callable[[Demo], Layers], demo: Demo) -> dict[str, Any]:
    from sitewatch.errors import SitewatchError

    try:
        return _digested(read(demo), demo.folders)
    except SitewatchError as e:
        return {"<refused>": {"schema": type(e).__name__, "rows": 0, "columns": {}}}


@pytest.fixture(scope="module")
def outputs(demo: Demo) -> dict[str, Any]:
    got = {name: _read_or_refused(read, demo) for name, read in OUTPUTS.items()}
    _update(EXPECTED[demo.kind][1], got)
    return got


@pytest.mark.parametrize("output", list(OUTPUTS))
def test_demo_detection_outputs_are_unchanged(output: str, demo: Demo, outputs: dict[str, Any]) -> None:
    expected = json.loads(EXPECTED[demo.kind][1].read_text(encoding="utf-8"))[output]
    got = outputs[output]
    assert sorted(got) == sorted(expected), "layers"
    for layer in sorted(expected):
        g, e = got[layer], expected[layer]
        assert g["schema"] == e["schema"], f"{output}/{layer}: schema"
        assert g["rows"] == e["rows"], f"{output}/{layer}: rows"
        changed = sorted(c for c in g["columns"].keys() | e["columns"].keys() if g["columns"].get(c) != e["columns"].get(c))
        assert not changed, f"{output}/{layer}: columns changed: {', '.join(changed)}"
