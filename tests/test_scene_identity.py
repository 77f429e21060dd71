"""One scene, one pass: scenes are identified by resolved real path and content hash; paths stored absolute."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import sitewatch.pipeline
import sitewatch.sites
from sitewatch.errors import SiteError
from sitewatch.pipeline import scene_identity
from sitewatch.store import open_store
from test_scan import UTM, UTM_T, FakeDetector, FakeSite, _aoi_px, write_geotiff
from test_scan_cli import run

AOI = _aoi_px(UTM_T, UTM, 100, 100, 500, 400)


@pytest.fixture
def site_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    def get_site(name: str) -> FakeSite:
        if name != "testbase":
            raise SiteError(f"unknown site '{name}'; known: testbase")
        return FakeSite("testbase", AOI)

    monkeypatch.setattr(sitewatch.sites, "get_site", get_site, raising=False)
    det = FakeDetector([(200.0, 200.0, 60, 40, 30, "aircraft"), (300.0, 250.0, 60, 40, 30, "aircraft")])
    monkeypatch.setattr(sitewatch.pipeline, "load_default_detector", lambda model=None: det)


def test_scene_identity_resolves_spellings_and_hashes_bytes(tmp_path: Path) -> None:
    f = write_geotiff(tmp_path / "small.tif", 800, 600, UTM, UTM_T)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.tif").symlink_to(f)
    want = (str(f.resolve()), "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest())
    for spelling in (str(f), f"{tmp_path}/sub/../small.tif", f"{tmp_path}//small.tif", str(tmp_path / "link.tif")):
        assert scene_identity(spelling) == want
    assert scene_identity("https://example.org/a.tif") == ("https://example.org/a.tif", None)


def test_rescans_under_other_names_replace_one_pass(site_patched, tmp_path: Path, monkeypatch, capsys) -> None:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    f = write_geotiff(work / "small.tif", 800, 600, UTM, UTM_T)
    (work / "link.tif").symlink_to(f)
    shutil.copy(f, work / "copy.tif")
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    monkeypatch.chdir(work)
    for spelling in ("small.tif", "sub/../small.tif", "link.tif", ".//small.tif", f"{work}//small.tif", "copy.tif"):
        code, out, err = run(["scan", spelling, "--site", "testbase", "--store", url, "--json"], capsys)
        assert code == 0, err
    with open_store(url) as store:
        passes = store.list_passes("testbase")
    assert len(passes) == 1
    assert passes[0].scene_path == str((work / "copy.tif").resolve()) and os.path.isabs(passes[0].scene_path)
    assert passes[0].scene_hash == "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
    assert len(passes[0].detections) == 2


def test_relative_scan_is_compared_from_another_folder(site_patched, tmp_path: Path, monkeypatch, capsys) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    write_geotiff(work / "a.tif", 800, 600, UTM, UTM_T)
    b = write_geotiff(work / "b.tif", 800, 600, UTM, UTM_T)
    with open(b, "r+b") as fh:  # other bytes, same pixels: a second scene
        fh.seek(0, 2)
        fh.write(b"\0")
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    monkeypatch.chdir(work)
    for name, when in (("a.tif", "2024-05-01"), ("b.tif", "2024-05-02")):
        assert run(["scan", name, "--site", "testbase", "--store", url, "--acquired", when], capsys)[0] == 0
    monkeypatch.chdir(elsewhere)
    code, out, err = run(["compare", "testbase", "--store", url, "--json"], capsys)
    assert code == 0, err
    comp = json.loads(out)
    assert not any("pixels not compared" in w for w in comp["warnings"])
    assert comp["registration"]["method"] != "georeference"
    assert comp["counts"]["aircraft"]["remained"] == 2
