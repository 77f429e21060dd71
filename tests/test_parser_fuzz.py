"""Fuzzing the parsers of user files: label files, STAC items, site GeoJSON, indicator files, claims text.

Each parser either returns or raises a :class:`~sitewatch.errors.SitewatchError` (which the CLI
turns into one line and exit status 2); any other exception is a crash. Inputs are random and
random mutations of valid files; the budget is fixed (``FUZZ_EXAMPLES`` per parser, about 10 s in
all on the 2-core machine), so the run is part of the default suite.
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitewatch.errors import SitewatchError

FUZZ_EXAMPLES = 60
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)


def _mutate(obj: Any, draw_paths: list[tuple[list[Any], Any]]) -> Any:
    """``obj`` with each ``(path, value)`` applied: the value replaces what the path names (a key
    that is missing is added; ``...`` as value deletes it)."""
    out = copy.deepcopy(obj)
    for path, value in draw_paths:
        node = out
        for key in path[:-1]:
            if isinstance(node, dict) and key in node or isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
                node = node[key]
            else:
                break
        else:
            last = path[-1]
            if isinstance(node, dict):
                if value is ...:
                    node.pop(last, None)
                else:
                    node[last] = value
            elif isinstance(node, list) and isinstance(last, int) and -len(node) <= last < len(node):
                node[last] = value
    return out


def _write(text: str | bytes, suffix: str) -> Path:
    with tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False) as f:
        f.write(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return Path(f.name)


def _only_user_errors(fn, *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(SitewatchError):
        fn(*args, **kwargs)


# --------------------------------------------------------------------------- DOTA label files

label_line = st.one_of(
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.integers(-5, 5000).map(str),
                       st.sampled_from(["plane", "ship", "helicopter", "small-vehicle", "", "1", "0", "nan", "-"])),
             max_size=12).map(" ".join),
    st.text(max_size=40),
)


@FUZZ
@given(
    header=st.sampled_from(["imagesource:x\ngsd:0.5\n", "imagesource:x\ngsd:null\n", "gsd:abc\n", "", "imagesource:\ngsd:-1\n"]),
    lines=st.lists(label_line, max_size=6),
    raw=st.binary(max_size=64),
)
def test_label_files_parse_or_fail_cleanly(header: str, lines: list[str], raw: bytes) -> None:
    from sitewatch.dota import parse_label_file

    for content in (header + "\n".join(lines), raw):
        path = _write(content, ".txt")
        try:
            _only_user_errors(parse_label_file, path, path.with_suffix(".png"), "fuzz", {("fuzz", "plane"): "aircraft"})
        finally:
            path.unlink()


# --------------------------------------------------------------------------- STAC items

VALID_ITEM = {
    "type": "Feature",
    "stac_version": "1.0.0",
    "id": "pass-1",
    "geometry": {"type": "Polygon", "coordinates": [[[35.9, 35.4], [35.95, 35.4], [35.95, 35.45], [35.9, 35.45], [35.9, 35.4]]]},
    "bbox": [35.9, 35.4, 35.95, 35.45],
    "properties": {"datetime": "2024-12-10T08:00:00Z", "gsd": 0.5},
    "links": [],
    "assets": {"visual": {"href": "scene.tif", "type": "image/tiff; application=geotiff", "roles": ["visual"]}},
}
item_paths = st.lists(
    st.sampled_from([["type"], ["stac_version"], ["id"], ["geometry"], ["geometry", "coordinates"], ["bbox"], ["properties"],
                     ["properties", "datetime"], ["properties", "gsd"], ["links"], ["assets"], ["assets", "visual"],
                     ["assets", "visual", "href"], ["assets", "visual", "roles"]]),
    max_size=3,
)


@FUZZ
@given(paths=item_paths, values=st.lists(json_values | st.just(...), min_size=3, max_size=3), junk=json_values)
def test_stac_items_parse_or_fail_cleanly(paths: list[list[str]], values: list[Any], junk: Any) -> None:
    from sitewatch.imagery.stac import choose_asset, item_datetime, read_item

    for obj in (_mutate(VALID_ITEM, list(zip(paths, values, strict=False))), junk):
        path = _write(json.dumps(obj, default=str), ".json")
        try:
            try:
                item = read_item(path)
            except SitewatchError:
                continue
            _only_user_errors(choose_asset, item)
            _only_user_errors(item_datetime, item)
        finally:
            path.unlink()


# --------------------------------------------------------------------------- site GeoJSON

VALID_SITES = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "properties": {"site": "test-base", "title": "Test base", "kind": "airbase", "role": "aoi"},
         "geometry": {"type": "Polygon", "coordinates": [[[35.9, 35.4], [35.95, 35.4], [35.95, 35.45], [35.9, 35.45], [35.9, 35.4]]]}},
        {"type": "Feature", "properties": {"site": "test-base", "role": "zone", "zone": "apron"},
         "geometry": {"type": "Polygon", "coordinates": [[[35.91, 35.41], [35.92, 35.41], [35.92, 35.42], [35.91, 35.41]]]}},
    ],
}
site_paths = st.lists(
    st.sampled_from([["type"], ["features"], ["features", 0], ["features", 0, "geometry"], ["features", 0, "geometry", "coordinates"],
                     ["features", 0, "properties"], ["features", 0, "properties", "kind"], ["features", 0, "properties", "site"],
                     ["features", 1, "properties", "zone"], ["features", 1, "geometry", "type"], ["features", 0, "properties", "priors"],
                     ["features", 0, "properties", "aliases"]]),
    max_size=3,
)


@FUZZ
@given(paths=site_paths, values=st.lists(json_values | st.just(...), min_size=3, max_size=3), junk=json_values)
def test_site_geojson_parses_or_fails_cleanly(paths: list[list[Any]], values: list[Any], junk: Any) -> None:
    from sitewatch.sites.site import sites_from_geojson

    for obj in (_mutate(VALID_SITES, list(zip(paths, values, strict=False))), junk):
        _only_user_errors(sites_from_geojson, obj, source="fuzz.geojson")


# --------------------------------------------------------------------------- indicator files


def _valid_indicators() -> list[dict[str, Any]]:
    from sitewatch.assess import indicators

    data = yaml.safe_load((Path(indicators.__file__).parent / "data" / "indicators.yaml").read_text())
    items = data.get("indicators") if isinstance(data, dict) else data
    return items[:3]


ind_paths = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(["name", "title", "when", "weight", "message", "category", "supports", "conditions", "x"])),
    max_size=3,
)


@FUZZ
@given(paths=ind_paths, values=st.lists(json_values | st.just(...), min_size=3, max_size=3), text=st.text(max_size=80))
def test_indicator_files_parse_or_fail_cleanly(paths: list[tuple[int, str]], values: list[Any], text: str) -> None:
    from sitewatch.assess.indicators import _read

    valid = _valid_indicators()
    mutated = _mutate(valid, [([i, key], v) for (i, key), v in zip(paths, values, strict=False)])
    for doc in (yaml.safe_dump({"indicators": mutated}, allow_unicode=True), text):
        _only_user_errors(_read, None, doc, "fuzz.yaml")


# --------------------------------------------------------------------------- claims text

words = st.sampled_from(
    ["Satellite", "imagery", "of", "Hmeimim", "air", "base", "shows", "two", "An-124", "Il-76", "aircraft", "\u201c", "\u201d", '"',
     "150", "vehicles", "left", "He", "said", "Reuters", "reported", ".", ",", "Kremlin", "spokesman", "on", "10", "December", "\n",
     "\x1b[2J", "\u202e", "frigates", "departed", "Tartus", "Ka-52", "over", "–", "?", "!", "the", "outlet"]
)


@FUZZ
@given(tokens=st.lists(words, max_size=60), noise=st.text(max_size=60))
def test_claims_text_parses_or_fails_cleanly(tokens: list[str], noise: str) -> None:
    from sitewatch.assess.claims import extract_claims

    for text in (" ".join(tokens), noise, " ".join(tokens) + noise):
        _only_user_errors(extract_claims, text, source="fuzz", published=None)
