"""Evaluation per site group (airbus-pleiades): exact figures per group, their mean and the worst group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detect_support import write_block_model
from sitewatch.cli.main import main
from test_evaluate import _dota, _label


def _grouped_tree(tmp_path: Path) -> Path:
    """An airbus-pleiades folder: images a and b of one site (linked in pairs.csv), c of another."""
    root = _dota(
        tmp_path / "data" / "airbus-pleiades",
        {
            # 2 labelled blocks found, plus a dim unlabelled block (ranked last): AP 1, 3 vs 2 counted.
            "a": ([(40, 40, 255), (120, 40, 255), (160, 100, 200)], [_label(40, 40), _label(120, 40)]),
            # 1 labelled block found, the other is difficult: 1 vs 1 counted.
            "b": ([(60, 60, 255), (140, 60, 255)], [_label(60, 60), _label(140, 60, difficult=1)]),
            # A labelled object with nothing to see: missed, AP 0, 0 vs 1 counted.
            "c": ([], [_label(80, 80)]),
        },
    )
    (root / "pairs.csv").write_text("image_a,image_b\nb.png,a.png\n")
    return root.parent


def test_evaluate_reports_each_site_group_and_the_worst(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = write_block_model(tmp_path / "block.onnx")
    tree = _grouped_tree(tmp_path)
    main(["evaluate", str(tree), "--model", str(model), "--split", "all", "--by-dataset", "--json"])
    r = json.loads(capsys.readouterr().out)
    groups = r["by_group"]["airbus-pleiades"]
    assert list(groups) == ["a", "c"]  # a group is named by its smallest image name
    a, c = groups["a"]["aircraft"], groups["c"]["aircraft"]
    assert (a["images"], a["objects"], a["tp"], a["fp"], a["fn"]) == (2, 3, 3, 1, 0)
    assert a["ap50"] == pytest.approx(1.0) and a["count_mape"] == pytest.approx(25.0)  # mean of 50 % and 0 %
    assert (c["images"], c["objects"], c["tp"], c["fp"], c["fn"]) == (1, 1, 0, 0, 1)
    assert c["ap50"] == 0.0 and c["count_mape"] == pytest.approx(100.0)
    spread = r["group_spread"]["airbus-pleiades"]["aircraft"]
    assert spread == {
        "groups": 2,
        "ap50_mean": pytest.approx(0.5), "ap50_worst": 0.0, "ap50_worst_group": "c",
        "count_mape_mean": pytest.approx(62.5), "count_mape_worst": pytest.approx(100.0), "count_mape_worst_group": "c",
    }
    # The dataset as a whole: 4 objects, 3 found, one false alarm.
    whole = r["by_dataset"]["airbus-pleiades"]["aircraft"]
    assert (whole["objects"], whole["tp"], whole["fp"]) == (4, 3, 1)

    main(["evaluate", str(tree), "--model", str(model), "--split", "all", "--by-dataset"])
    table = capsys.readouterr().out
    # Row label -> cells (labels wrap at the 80 columns of a non-terminal: match their first line).
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]

    def row(label: str) -> list[str]:
        return next(r[1:] for r in rows if r[0].startswith(label))

    assert row("group a") == ["aircraft", "2", "3", "100.0", "75.0", "100.0", "25.0"]
    assert row("group c") == ["aircraft", "1", "1", "0.0", "-", "0.0", "100.0"]
    assert row("mean of 2") == ["aircraft", "", "", "50.0", "", "", "62.5"]
    assert row("worst AP50")[3] == "0.0" and row("worst count")[6] == "100.0"
    assert any(r[0] == "c" for r in rows)  # the worst group's id, wrapped under its label


def test_datasets_without_site_groups_have_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = write_block_model(tmp_path / "block.onnx")
    root = _dota(tmp_path / "hrplanes", {"a": ([(40, 40, 255)], [_label(40, 40)])})
    main(["evaluate", str(root), "--model", str(model), "--split", "all", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert r["by_group"] == {} and r["group_spread"] == {}
