import json
from pathlib import Path

from click.testing import CliRunner
from shapely.geometry import box, mapping

from sitewatch.cli.main import cli, main
from sitewatch.sites import get_site, user_watchlist_path


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.output


def test_list_and_show_json() -> None:
    code, out = _run("sites", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    names = [r["name"] for r in rows]
    assert names[:2] == ["hmeimim", "tartus"] and len(names) >= 8
    assert rows[0]["center"] == [35.4011, 35.9486]
    code, out = _run("sites", "show", "Khmeimim", "--json")
    d = json.loads(out)
    assert code == 0 and d["name"] == "hmeimim" and "RU" in d["priors"]["operators"] and "runway" in d["zones"]
    code, out = _run("sites", "show", "tartous")
    assert code == 0 and "Tartus naval facility" in out and "zone piers" in out


def test_add_bbox_and_zone_files(tmp_path: Path) -> None:
    zone = tmp_path / "apron.geojson"
    zone.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": mapping(box(20.001, 40.001, 20.004, 40.004))}))
    code, out = _run("sites", "add", "my-field", "--kind", "airbase", "--bbox", "20,40,20.01,40.01",
                     "--zone", f"apron={zone}", "--alias", "Field One", "--country", "gr", "--json")
    assert code == 0, out
    assert json.loads(out)["zones"] == ["apron"]
    site = get_site("field one")
    assert site.country == "GR" and site.aoi.equals(box(20, 40, 20.01, 40.01))
    code, out = _run("sites", "show", "my-field", "--geojson")
    assert json.loads(out)["features"][1]["properties"] == {"site": "my-field", "role": "zone", "zone": "apron"}


def test_add_aoi_file_and_import(tmp_path: Path) -> None:
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(box(30, 10, 30.02, 10.02))}]}))
    code, out = _run("sites", "add", "depot-x", "--kind", "depot", "--aoi", str(aoi))
    assert code == 0 and "added site depot-x" in out
    exported = tmp_path / "export.geojson"
    code, out = _run("sites", "export", "depot-x")
    exported.write_text(out.replace("depot-x", "depot-y"))
    code, out = _run("sites", "import", str(exported), "--json")
    assert code == 0 and [s["name"] for s in json.loads(out)] == ["depot-y"]


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    bad_cases = [
        (["sites", "show", "hmeimin"], "error: unknown site 'hmeimin'; did you mean: hmeimim?"),
        (["sites", "add", "x", "--kind", "airbase", "--bbox", "1,2,3"], "error: --bbox '1,2,3': expected W,S,E,N"),
        (["sites", "add", "x", "--kind", "airbase", "--aoi", str(tmp_path / "nope.geojson")], "nope.geojson: file not found"),
        (["sites", "add", "hmeimim", "--kind", "airbase", "--bbox", "1,2,1.1,2.1"], "error: site 'hmeimim' already exists"),
        (["sites", "import", str(tmp_path / "none.json")], "none.json: file not found"),
    ]
    for argv, expected in bad_cases:
        try:
            main(argv)
        except SystemExit as e:
            assert e.code == 2, argv
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert not user_watchlist_path().exists()
