"""Training runs that survive: a run killed with SIGKILL continues from its last checkpoint to the
same weights, checkpoints are never half-written, unreadable images are skipped by name."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

pytestmark = pytest.mark.train

REPO = Path(__file__).resolve().parents[1]


def small_tree(data_dir: Path, root: Path, n: int = 2, corrupt: bool = True) -> Path:
    """A data tree with ``n`` real VEDAI images (all training data: a dataset under 5 images has no
    validation split) and, with ``corrupt``, an image file that is not an image."""
    ds = root / "vedai"
    (ds / "images").mkdir(parents=True)
    (ds / "labels").mkdir()
    shutil.copy(data_dir / "classes.csv", root / "classes.csv")
    labels = sorted((data_dir / "vedai" / "labels").glob("*.txt"))[:n]
    for label in labels:
        shutil.copy(label, ds / "labels" / label.name)
        image = next((data_dir / "vedai" / "images").glob(f"{label.stem}.*"))
        shutil.copy(image, ds / "images" / image.name)
    if corrupt:
        (ds / "images" / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        shutil.copy(labels[0], ds / "labels" / "zz_corrupt.txt")
    return root


def test_checkpoints_come_at_least_every_ten_minutes() -> None:
    from sitewatch.cli.train import command
    from sitewatch.detect.train.loop import TrainConfig

    assert TrainConfig(data="d", out="o").checkpoint_every_s <= 600
    option = next(p for p in command.params if p.name == "checkpoint_every")
    assert option.default * 60 <= 600 and option.type.max == 10.0


def test_unreadable_images_are_skipped_by_name(data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sitewatch.detect.train.data import load_split

    tree = small_tree(data_dir, tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="sitewatch.detect.train.data"):
        images = load_split(tree, "train", ["vedai"])
    assert len(images) == 2 and "zz_corrupt" not in {im.name for im in images}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{tree / 'vedai' / 'images' / 'zz_corrupt.png'}: unreadable image, skipped (cannot decode image)"]


def _train_args(tree: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "sitewatch.cli.main", "train", "--data", str(tree), "--out", str(out),
        "--steps", "12", "--batch", "1", "--size", "64", "--datasets", "vedai", "--threads", "1",
        "--log-every", "3", "--no-export", *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}


LOG_LINE = re.compile(r"step (\d+)/\S+ lr (\S+) (.*?) \|")


def _log_steps(log: str) -> list[tuple[int, str]]:
    """``(step, "lr … loss … hm …")`` of each progress line of a train.log."""
    return [(int(m.group(1)), f"{m.group(2)} {m.group(3)}") for m in LOG_LINE.finditer(log)]


def test_run_killed_with_sigkill_resumes_to_the_same_run(data_dir: Path, tmp_path: Path) -> None:
    tree = small_tree(data_dir, tmp_path / "data")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run(_train_args(tree, straight), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "zz_corrupt.png: unreadable image, skipped" in done.stderr

    # Checkpoint after every step, kill as soon as the first one is on disk.
    proc = subprocess.Popen(
        _train_args(tree, killed, "--checkpoint-every", "0"), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    ckpt = killed / "last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # The checkpoint on disk is whole (written beside and renamed), from the middle of the run.
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    killed_at = state["step"]
    assert 1 <= killed_at < 12

    resumed = subprocess.run(_train_args(tree, killed, "--resume"), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr

    a = torch.load(straight / "last.ckpt", map_location="cpu", weights_only=False)
    b = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert a["step"] == b["step"] == 12
    assert b["metadata"]["steps_seen"] == a["metadata"]["steps_seen"] == "12"
    for k, v in a["model"].items():
        torch.testing.assert_close(v, b["model"][k], rtol=1e-5, atol=1e-6)

    # The log goes on where the checkpoint was: after the resume line, steps beyond it only, and
    # once a logging window lies wholly after the kill, the same losses as the run never stopped.
    log = (killed / "train.log").read_text()
    before, marker, after = log.partition(f"resuming from {ckpt} at step {killed_at}")
    assert marker
    steps_after = [s for s, _ in _log_steps(after)]
    assert steps_after == list(range((killed_at // 3 + 1) * 3, 13, 3))
    reference = dict(_log_steps((straight / "train.log").read_text()))
    whole_windows = [(s, v) for s, v in _log_steps(after) if s - 3 >= killed_at]
    assert whole_windows and all(reference[s] == v for s, v in whole_windows)
    assert not list(killed.glob("*.tmp"))


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sitewatch.detect.train import loop

    path = tmp_path / "last.ckpt"
    loop.save_checkpoint(path, {"step": 1, "w": torch.arange(4)})

    def dies_midway(obj, f, *a, **k):  # noqa: ANN001, ANN202 - torch.save's signature
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        loop.save_checkpoint(path, {"step": 2})
    assert torch.load(path, weights_only=False)["step"] == 1
    np.testing.assert_array_equal(torch.load(path, weights_only=False)["w"].numpy(), np.arange(4))
