"""The reference library package data: complete, sourced, plausible; the validator rejects bad rows."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from sitewatch.cli.main import cli, main
from sitewatch.errors import LibraryError
from sitewatch.identify.library import (
    library_from_rows,
    load_library,
    load_matching,
    load_roles,
    role_phrase,
    validate_rows,
)
from sitewatch.types import CATEGORIES

GOOD = {
    "id": "test-jet",
    "name": "Test Jet",
    "aliases": ["Testy"],
    "category": "aircraft",
    "role": "fighter",
    "length_m": 15.0,
    "width_m": 10.0,
    "operators": ["XX"],
    "source": "https://example.org/test-jet",
}


def test_bundled_library_counts_and_required_types() -> None:
    lib = load_library()
    n = Counter(t.category for t in lib.types)
    assert n["aircraft"] >= 40 and n["helicopter"] >= 10 and n["ship"] >= 15
    assert n["large-vehicle"] + n["small-vehicle"] >= 15
    required = [
        "An-124", "An-22", "An-12", "An-26", "An-72", "Il-76", "Il-78", "A-50", "Il-20", "Il-38", "Il-62", "Tu-154",
        "Tu-134", "Tu-95", "Tu-160", "Tu-22M3", "Su-24", "Su-25", "Su-27", "Su-30", "Su-35", "Su-34", "Su-57",
        "MiG-29", "MiG-31", "Be-200", "C-17", "C-5", "C-130", "KC-135", "B-52", "B-1B", "A-10", "A320", "A320neo",
        "A321", "A321neo", "737-800", "747-400", "777-300ER", "787-9", "A330", "E-3", "P-8", "MQ-9", "F-16", "F-15",
        "F-35", "Tornado", "Ka-52", "Mi-8", "Mi-17", "Mi-24", "Mi-35", "Mi-26", "Mi-28", "Ka-27", "Ka-226", "AH-64",
        "UH-60", "CH-47", "Admiral Grigorovich", "Admiral Gorshkov", "Project 636.3", "Ropucha", "Ivan Gren",
        "Buyan-M", "Karakurt", "Slava", "Udaloy", "Admiral Kuznetsov", "Bykov", "Alligator", "Natya", "Arleigh Burke",
        "5P85SM2", "92N6", "96L6", "55K6", "Pantsir-S1", "Tor-M2", "Buk", "KamAZ-5350", "Ural-4320", "MZKT-7930",
        "BTR-82A", "BMP-2", "BMP-3", "T-72B3", "T-90", "Tigr",
        "Ruslan", "Condor", "Fencer", "Blackjack",
    ]
    missing = []
    for key in required:
        try:
            lib.get(key)
        except LibraryError:
            missing.append(key)
    assert missing == []
    assert lib.get("condor").id == "an-124" and lib.get("FENCER").id == "su-24"


def test_every_row_is_sourced_valid_and_plausible() -> None:
    lib = load_library()
    ids = [t.id for t in lib.types]
    assert len(ids) == len(set(ids))
    keys = [k for t in lib.types for k in {x.lower() for x in (t.id, t.name, *t.aliases)}]
    assert len(keys) == len(set(keys)), [k for k, c in Counter(keys).items() if c > 1]
    plausible = lib.matching["categories"]
    for t in lib.types:
        assert t.category in CATEGORIES
        assert t.source.startswith("http") or "(http" in t.source, t.id
        assert t.role in lib.roles and t.category in lib.roles[t.role].categories
        lo, hi = plausible[t.category]["plausible"]["length_m"]
        assert lo <= t.length_m <= hi and t.width_m > 0
        for state, long_side, short_side in t.box_states():
            assert long_side >= short_side > 0, (t.id, state)
    swing = {t.id for t in lib.types if t.swing_wing}
    assert {"tu-160", "b-1b", "su-24", "tu-22m3", "tornado"} <= swing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": ""}, "missing source"),
        ({"source": None}, "missing source"),
        ({"length_m": -3.0}, "length_m -3.0 must be positive"),
        ({"length_m": 400.0}, "outside the plausible"),
        ({"width_m": 60.0}, "width/length"),
        ({"category": "tank"}, "category 'tank'"),
        ({"role": "frigate"}, "not valid for category aircraft"),
        ({"role": "space fighter"}, "not in roles.yaml"),
        ({"span_spread_m": 10.0, "span_swept_m": 12.0}, "span_swept_m must be smaller"),
        ({"span_swept_m": 8.0}, "need both"),
    ],
)
def test_validator_rejects_bad_rows(change: dict, message: str) -> None:
    bad = {**GOOD, **change}
    problems = validate_rows([bad], load_roles(), load_matching())
    assert any(message in p for p in problems), problems
    with pytest.raises(LibraryError, match="test-jet"):
        library_from_rows([bad])


def test_validator_rejects_duplicates_and_accepts_good_row() -> None:
    assert validate_rows([GOOD], load_roles(), load_matching()) == []
    dup_alias = {**GOOD, "id": "other", "name": "Other", "aliases": ["testy"]}
    problems = validate_rows([GOOD, dup_alias], load_roles(), load_matching())
    assert any("'testy' already used by test-jet" in p for p in problems)
    problems = validate_rows([GOOD, {**GOOD, "aliases": []}], load_roles(), load_matching())
    assert any("duplicate id" in p for p in problems)


def test_load_library_from_file_with_bad_row(tmp_path) -> None:
    path = tmp_path / "lib.yaml"
    path.write_text(json.dumps({"types": [{**GOOD, "source": ""}]}))
    with pytest.raises(LibraryError, match=r"lib\.yaml: invalid reference library: row 1 \(test-jet\): missing source"):
        load_library(path)
    path.write_text("types: 3\n")
    with pytest.raises(LibraryError, match="top-level 'types:' list"):
        load_library(path)


def test_role_phrase() -> None:
    assert role_phrase("heavy transport", ["an-124", "c-5m"]) == "a heavy transport (An-124 or C-5M class)"
    assert role_phrase("AEW") == "an AEW aircraft (A-50 or E-3 class)"
    assert role_phrase("frigate") == "a frigate (Admiral Gorshkov or Admiral Grigorovich class)"
    assert load_library().role_of("Condor") == "heavy transport"
    with pytest.raises(LibraryError, match="unknown role group"):
        role_phrase("spaceship")


def test_cli_list_and_show() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["library", "list", "--category", "helicopter", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) >= 10 and all(r["category"] == "helicopter" and r["source"] for r in rows)
    res = runner.invoke(cli, ["library", "list", "--role", "heavy transport"])
    assert res.exit_code == 0 and "an-124" in res.output and "mi-8" not in res.output
    res = runner.invoke(cli, ["library", "show", "Blackjack", "--json"])
    assert res.exit_code == 0
    d = json.loads(res.output)
    assert d["id"] == "tu-160" and d["span_swept_m"] < d["span_spread_m"] and d["source"].startswith("https://")


def test_cli_unknown_type_is_one_line_error(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["library", "show", "Starship"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown equipment type 'Starship' (see `sitewatch library list`)"
