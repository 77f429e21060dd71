"""Training packs: the arrays round-trip, the pack's trainer runs with no sitewatch installed and its
checkpoint becomes a working ONNX model through `sitewatch train export`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

from sitewatch.cli.main import main  # noqa: E402
from sitewatch.detect.train.data import load_split  # noqa: E402
from sitewatch.detect.train.pack import MIN_QUALITY, pack_arrays, read_pack, unpack_arrays  # noqa: E402

pytestmark = pytest.mark.train

SUBSET = ["vedai", "simd-helicopters", "hrplanes"]


def test_pack_arrays_round_trip(data_dir: Path) -> None:
    images = load_split(data_dir, "train", ["simd-helicopters", "vedai"], 2)
    arrays, names, datasets = pack_arrays({"train": images, "val": images[:1]}, quality=90)
    back = unpack_arrays(arrays, names, datasets)
    assert [len(back[s]) for s in ("train", "val", "background")] == [len(images), 1, 0]
    for a, b in zip(images, back["train"], strict=True):
        assert (a.name, a.dataset, a.axis_aligned, a.has_gsd, a.scale, a.gsd_m) == (b.name, b.dataset, b.axis_aligned, b.has_gsd, b.scale, b.gsd_m)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.cats, b.cats)
        np.testing.assert_array_equal(a.difficult, b.difficult)
        np.testing.assert_array_equal(a.channels, b.channels)
        np.testing.assert_array_equal(a.helicopters, b.helicopters)
        assert a.rgb.shape == b.rgb.shape
        # Lossy but close: mean absolute error of a few grey levels at quality 90.
        assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).mean() < 4.0
    assert any(len(im.helicopters) for im in back["train"])


def test_helicopter_images_keep_a_high_quality(data_dir: Path) -> None:
    """At a low pack quality the images with a labelled helicopter are still stored at
    RARE_QUALITY (rotor blades survive): their pixels stay within a few grey levels, the others'
    do not, and with ``rare_quality=None`` every image takes the low quality."""
    from sitewatch.detect.train.pack import RARE_QUALITY, image_quality

    images = load_split(data_dir, "train", ["simd-helicopters", "vedai"], 2)
    heli = [im for im in images if len(im.helicopters)]
    plain = [im for im in images if not len(im.helicopters)]
    assert heli and plain
    assert {image_quality(im, MIN_QUALITY) for im in heli} == {RARE_QUALITY}
    assert {image_quality(im, MIN_QUALITY) for im in plain} == {MIN_QUALITY}

    def error(rare: int | None) -> dict[str, float]:
        arrays, names, datasets = pack_arrays({"train": images}, quality=MIN_QUALITY, rare_quality=rare)
        back = unpack_arrays(arrays, names, datasets)["train"]
        return {a.name: float(np.abs(a.rgb.astype(int) - b.rgb.astype(int)).mean()) for a, b in zip(images, back, strict=True)}

    kept, flat = error(RARE_QUALITY), error(None)
    for im in heli:
        assert kept[im.name] < 0.6 * flat[im.name]
    for im in plain:
        assert kept[im.name] == flat[im.name]


def _run_trainer(pack: Path, *args: str) -> subprocess.CompletedProcess:
    """Run PACK/train_pack.py with no sitewatch on the path: the sitewatch checkouts' ``src``
    folders (and PYTHONPATH) are removed, so only the pack's ``lib`` can provide it."""
    boot = (
        "import sys, runpy\n"
        "sys.path = [p for p in sys.path if not p.rstrip('/').endswith('/src')]\n"
        f"sys.argv = ['train_pack.py', *{list(args)!r}]\n"
        f"runpy.run_path({str(pack / 'train_pack.py')!r}, run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, "-c", boot], cwd=pack.parent, env=env, capture_output=True, text=True, timeout=600)


def test_pack_trains_without_sitewatch_and_exports(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "pack"
    main(["train", "pack", "--data", str(data_dir), "-o", str(pack), "--datasets", ",".join(SUBSET), "--limit-images", "2"])
    out = capsys.readouterr().out
    assert f"wrote {pack}: 6 training, 6 validation" in out
    meta = json.loads((pack / "pack.json").read_text())
    assert meta["format"] == 1 and meta["init"] == "imagenet" and meta["datasets"] == sorted([*SUBSET, "empty-aprons"])
    assert (pack / "data.npz").stat().st_size <= 60 * 2**20
    for rel in ("train_pack.py", "init.pt", "lib/sitewatch/detect/train/model.py", "lib/efficientnet_lite_pytorch/model.py"):
        assert (pack / rel).is_file(), rel

    done = _run_trainer(
        pack, "--device", "cpu", "--steps", "3", "--batch", "2", "--size", "64", "--workers", "1", "--threads", "1",
        "--val-crops", "4", "--log-every", "1", "--snapshot-every", "0",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"sitewatch code from {pack / 'lib' / 'sitewatch'}, efficientnet_lite_pytorch from {pack / 'lib'}" in done.stdout
    assert "step 3/3" in done.stdout
    ckpt = pack / "run" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["step"] == 3 and state["metadata"]["crops_seen"] == "6"
    assert sorted(p.name for p in (pack / "run" / "snapshots").iterdir()) == [f"step-000000{k}.ckpt" for k in (1, 2, 3)]
    val = json.loads((pack / "run" / "val_loss.json").read_text())
    assert val["step"] == 3 and val["val_loss_before"] > 0 and val["val_loss_after"] > 0

    # Continued to 5 steps: the run's own crop size and batch, the loss of the same checkpoint again.
    done = _run_trainer(pack, "--device", "cpu", "--steps", "5", "--workers", "0", "--threads", "1", "--val-crops", "4", "--resume")
    assert done.returncode == 0, done.stderr + done.stdout
    again = json.loads((pack / "run" / "val_loss.json").read_text())
    assert again["step"] == 5 and again["size"] == 64 and again["crops_seen"] == "10"
    assert again["val_loss_before"] == val["val_loss_after"]

    model = tmp_path / "model.onnx"
    main(["train", "export", str(ckpt), "-o", str(model)])
    from sitewatch.detect.train.export import read_metadata

    meta = read_metadata(model)
    assert meta["steps_seen"] == "5" and meta["crops_seen"] == "10"
    history = json.loads(meta["train_history"])
    # The pack's command (here pytest's own command line) with the first run, then the resumed run.
    assert len(history) == 2
    assert history[0].endswith(" && python train_pack.py --device cpu --steps 3 --batch 2 --size 64 --workers 1 --threads 1 --val-crops 4 --log-every 1 --snapshot-every 0")
    assert history[1] == "python train_pack.py --device cpu --steps 5 --workers 0 --threads 1 --val-crops 4 --resume"
    capsys.readouterr()
    image = next((data_dir / "vedai" / "images").iterdir())
    main(["detect", str(image), "--model", str(model), "--gsd", "0.125", "--score", "0.01", "--json"])
    detections = json.loads(capsys.readouterr().out)
    assert isinstance(detections, list)


def test_pack_starts_from_a_shipped_model_with_its_history(data_dir: Path, tmp_path: Path) -> None:
    from sitewatch.detect.train.export import SHIPPED_MODEL, load_onnx_weights, read_metadata
    from sitewatch.detect.train.model import SitewatchNet

    pack = tmp_path / "pack"
    main(["train", "pack", "--data", str(data_dir), "-o", str(pack), "--datasets", "vedai", "--limit-images", "1", "--init", str(SHIPPED_MODEL)])
    meta, images = read_pack(pack)
    shipped = read_metadata(SHIPPED_MODEL)
    assert meta["init_model"] == f"{shipped['name']} {shipped['version']}" and meta["prior"]["crops"] > 0
    restored = SitewatchNet(pretrained=False)
    load_onnx_weights(restored, SHIPPED_MODEL)
    init = torch.load(pack / "init.pt", weights_only=True)
    for k, v in restored.state_dict().items():
        torch.testing.assert_close(init[k], v, rtol=0, atol=0)
    assert len(images["train"]) == 1 and len(images["val"]) == 1


def test_pack_half_init_and_fewer_validation_images(data_dir: Path, tmp_path: Path) -> None:
    from sitewatch.detect.train.export import SHIPPED_MODEL, load_onnx_weights
    from sitewatch.detect.train.model import SitewatchNet

    full, small = tmp_path / "full", tmp_path / "small"
    common = ["--data", str(data_dir), "--datasets", "vedai", "--limit-images", "2", "--init", str(SHIPPED_MODEL)]
    main(["train", "pack", *common, "-o", str(full)])
    main(["train", "pack", *common, "-o", str(small), "--val-images", "1", "--half-init"])
    meta_full, images_full = read_pack(full)
    meta, images = read_pack(small)
    assert len(images_full["val"]) == 2 and len(images["val"]) == 1
    assert len(images["train"]) == len(images_full["train"]) == 2
    assert meta_full["init_dtype"] == "float32" and meta["init_dtype"] == "float16"
    half = torch.load(small / "init.pt", weights_only=True)
    assert (small / "init.pt").stat().st_size < 0.55 * (full / "init.pt").stat().st_size
    restored = SitewatchNet(pretrained=False)
    load_onnx_weights(restored, SHIPPED_MODEL)
    net = SitewatchNet(pretrained=False)
    net.load_state_dict(half)  # what train_pack.py does: float16 values into the float32 network
    for k, v in restored.state_dict().items():
        got = net.state_dict()[k]
        assert got.dtype == v.dtype
        if v.is_floating_point():
            assert half[k].dtype == torch.float16
            assert float((got - v).abs().max()) <= 1e-3 * max(float(v.abs().max()), 1e-3), k
        else:
            assert torch.equal(got, v), k


@pytest.mark.parametrize("case", ["not-empty", "no-tree", "too-big"])
def test_pack_bad_input_gives_one_line_and_writes_nothing(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    out = tmp_path / "pack"
    args = ["train", "pack", "--data", str(data_dir), "-o", str(out), "--datasets", "vedai", "--limit-images", "1"]
    if case == "not-empty":
        out.mkdir()
        (out / "keep.txt").write_text("keep")
    elif case == "no-tree":
        args[3] = str(tmp_path / "nowhere")
    else:
        args += ["--max-mib", "0.01", "--quality", str(MIN_QUALITY)]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    expected = {
        "not-empty": f"{out}: already exists and is not empty",
        "no-tree": f"{tmp_path / 'nowhere'}: not a sitewatch data tree",
        "too-big": f"MiB at WebP quality {MIN_QUALITY}, over the 0.01 MiB limit",
    }[case]
    assert expected in err[0]
    if case == "not-empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".pack.partial"))


def test_a_trainer_module_importing_an_unpacked_module_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sitewatch.detect.train import pack
    from sitewatch.errors import ModelError

    # data.py pastes chips with paste.py: a pack without paste.py would fail on the GPU machine.
    monkeypatch.setattr(pack, "TRAINER_MODULES", tuple(m for m in pack.TRAINER_MODULES if not m.endswith("/paste.py")))
    with pytest.raises(ModelError, match=r"sitewatch/detect/train/data.py imports sitewatch.detect.train.paste, which the training pack does not carry"):
        pack.copy_sources(tmp_path / "lib")
    assert not (tmp_path / "lib").exists()
