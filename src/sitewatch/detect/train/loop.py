"""The training run: optimisation loop with time budget, checkpoints, resume, validation, export.

A run writes into its output folder:

* ``last.ckpt``: model, optimiser, step, planned steps, elapsed time, config (written every few
  minutes, atomically, and at the end); ``--resume`` continues from it;
* ``snapshots/step-NNNNNNN.ckpt`` (with ``snapshot_every_s``): the weights at regular intervals,
  without the optimiser, for :func:`~sitewatch.detect.train.export.average_checkpoints`;
* ``val_metrics.json``: validation precision / recall / F1 per category at the chosen threshold;
* ``train.log`` (through the CLI's log handler).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitewatch.errors import ModelError
from sitewatch.types import CATEGORIES

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of a training run (stored in the checkpoint)."""

    data: str
    out: str
    minutes: float | None = 60.0
    steps: int | None = None
    batch: int = 8
    size: int = 384
    lr: float = 2e-3
    backbone_lr_mult: float = 0.3
    weight_decay: float = 1e-4
    warmup_steps: int = 60
    seed: int = 0
    device: str = "auto"
    width: int = 64
    workers: int = 0
    freeze_blocks: int = 3
    threads: int = 2
    checkpoint_every_s: float = 240.0
    #: Keep the weights every this many seconds under ``snapshots/`` (None: keep none).
    snapshot_every_s: float | None = None
    log_every: int = 10
    datasets: list[str] | None = None
    limit_images: int | None = None
    #: End this invocation after this many steps, leaving a resumable checkpoint (splits a run
    #: into sessions; the schedule still follows the whole run).
    stop_after_steps: int | None = None
    pretrained: bool = True
    #: Start from the weights of an exported model (ONNX) instead of the ImageNet backbone.
    init: str | None = None
    #: "auto" (bf16 autocast where the CPU has native bf16, else fp32), "bf16" or "fp32".
    precision: str = "auto"
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: no CUDA device available")
    return name


def _precision(name: str, device: str) -> str:
    """The arithmetic of the forward/backward pass: ``"bf16"`` (autocast, fp32 master weights) or
    ``"fp32"``."""
    import torch

    if name != "auto":
        return name
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16" if native else "fp32"


def lr_at(step: int, progress: float | None, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 2 % of ``base`` as ``progress``
    (fraction of the run done: steps or time) goes from 0 to 1; ``None``: constant."""
    if step < warmup:
        return base * (step + 1) / warmup
    if progress is None:
        return base
    t = min(1.0, max(0.0, progress))
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


class _Batches:
    """Endless batches of sample indices starting at ``start`` (resumable)."""

    def __init__(self, start: int, batch: int):
        self.start, self.batch = start, batch

    def __iter__(self):
        step = self.start
        while True:
            yield [step * self.batch + j for j in range(self.batch)]
            step += 1


#: Steps and crops of shipped models exported before the ``steps_seen`` / ``crops_seen`` keys
#: existed, from their model card (3,276 steps of 8 crops for 1.2.0).
EARLIER_LIFETIMES: dict[str, tuple[int, int]] = {"sitewatch-det 1.2.0": (3276, 26208)}


def lifetime_from_metadata(meta: dict[str, str]) -> dict[str, Any]:
    """Steps, crops and commands a model's weights have seen, from its ONNX metadata.

    Models exported before these keys existed take their figures from :data:`EARLIER_LIFETIMES`
    (or count from zero); their commands are kept either way.
    """

    def num(key: str) -> int:
        try:
            return int(float(meta.get(key, "0") or 0))
        except ValueError:
            return 0

    try:
        commands = json.loads(meta.get("train_history", "[]"))
    except ValueError:
        commands = []
    if not commands and meta.get("train_command"):
        commands = [c.strip() for c in meta["train_command"].split(" && ") if c.strip()]
    steps, crops = num("steps_seen"), num("crops_seen")
    if "crops_seen" not in meta:
        steps, crops = EARLIER_LIFETIMES.get(f"{meta.get('name', '')} {meta.get('version', '')}", (0, 0))
    return {"steps": steps, "crops": crops, "commands": commands}


def lifetime_metadata(cfg: TrainConfig, step: int) -> dict[str, str]:
    """The cumulative training record of a checkpoint at ``step``: earlier models' steps, crops and
    commands (from ``--init``) plus this run's."""
    prior = dict(cfg.extra.get("prior") or {"steps": 0, "crops": 0, "commands": []})
    if not prior.get("crops") and cfg.extra.get("init_model") in EARLIER_LIFETIMES:
        prior["steps"], prior["crops"] = EARLIER_LIFETIMES[cfg.extra["init_model"]]
    own = list(cfg.extra.get("commands", [cfg.command])) or [cfg.command]
    history = [*prior.get("commands", []), *[c for c in own if c]]
    return {
        "steps_seen": str(int(prior.get("steps", 0)) + step),
        "crops_seen": str(int(prior.get("crops", 0)) + step * cfg.batch),
        "train_history": json.dumps(history),
    }


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """Write a checkpoint atomically (torch format)."""
    import torch

    # Written beside the target, flushed to disk, then renamed over it: a run killed at any moment
    # leaves the previous checkpoint or the new one, never a partial file.
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run (or continue) training; returns the path of ``last.ckpt``."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    from sitewatch.detect.train.data import CropSampler, collate, load_split
    from sitewatch.detect.train.losses import detection_loss
    from sitewatch.detect.train.model import SitewatchNet, freeze_bn, freeze_early

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.ckpt"
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)

    state: dict[str, Any] | None = None
    if resume:
        if not ckpt_path.exists():
            raise ModelError(f"{ckpt_path}: nothing to resume from")
        state = torch.load(str(ckpt_path), map_location="cpu", weights_only=False)
        if "optimizer" not in state or "torch_rng" not in state:
            # A snapshot or an average of snapshots holds weights only (sitewatch train average).
            raise ModelError(
                f"{ckpt_path}: weights only (a snapshot or an average), no optimiser state to resume; "
                "export it and start a run from it with --init"
            )
        saved = state["config"]
        # Keep the original run's plan; a new time budget or step count may extend it.
        for k in ("minutes", "steps"):
            if getattr(cfg, k) is None:
                setattr(cfg, k, saved.get(k))
        for k in (
            "batch",
            "size",
            "seed",
            "width",
            "freeze_blocks",
            "lr",
            "backbone_lr_mult",
            "warmup_steps",
            "datasets",
            "limit_images",
            "command",
            "init",
        ):
            setattr(cfg, k, saved.get(k, getattr(cfg, k)))
        # Every invocation that shaped the weights is kept, in order, for the model card.
        history = list(saved.get("extra", {}).get("commands", [saved.get("command", "")]))
        cfg.extra = {
            **saved.get("extra", {}),
            **cfg.extra,
            "commands": [*history, cfg.extra.get("invocation", "")],
        }
        log.info("resuming from %s at step %d", ckpt_path, state["step"])

    model = SitewatchNet(pretrained=cfg.pretrained and state is None and not cfg.init, width=cfg.width)
    prior = {"steps": 0, "crops": 0, "commands": []}
    if cfg.init and state is None:
        from sitewatch.detect.train.export import load_onnx_weights

        meta = load_onnx_weights(model, Path(cfg.init))
        prior = lifetime_from_metadata(meta)
        cfg.extra = {
            **cfg.extra,
            "prior": prior,
            "init_model": f"{meta.get('name', '')} {meta.get('version', '')}".strip(),
        }
        log.info(
            "starting from %s (%s; %d crops seen before)", cfg.init, cfg.extra["init_model"], prior["crops"]
        )
    t0 = time.time()
    images = load_split(Path(cfg.data), "train", cfg.datasets, cfg.limit_images)
    log.info(
        "cached %d training images (%.0f MB) in %.0f s",
        len(images),
        sum(i.rgb.nbytes for i in images) / 1e6,
        time.time() - t0,
    )
    chips, backgrounds = [], []
    if cfg.extra.get("copy_paste", True):
        from sitewatch.detect.train.paste import backgrounds_for, extract_chips, load_empty_aprons

        chips = extract_chips(images)
        backgrounds = backgrounds_for(images, load_empty_aprons(Path(cfg.data)))
        log.info("copy-paste: %d helicopter chips, %d backgrounds", len(chips), len(backgrounds))
    hard = []
    if cfg.extra.get("hard_regions"):
        from sitewatch.detect.train.hard import read_regions

        hard = read_regions(Path(cfg.extra["hard_regions"]))
        log.info("hard regions: %d from %s", len(hard), cfg.extra["hard_regions"])
    sampler = CropSampler(
        images,
        cfg.size,
        cfg.seed,
        weights=cfg.extra.get("dataset_weights"),
        chips=chips,
        backgrounds=backgrounds,
        hard=hard,
        zoom_out=float(cfg.extra.get("zoom_out", 0.0)),
    )
    if sampler.zoom_out:
        log.info("zoomed-out crops: %.0f %% of those of aircraft images with a GSD", 100 * sampler.zoom_out)

    class _DS(Dataset):
        def __len__(self) -> int:
            return 1 << 40

        def __getitem__(self, i: int):
            return sampler.sample(i)

    model = model.to(device)
    freeze_early(model, cfg.freeze_blocks)
    groups = [
        {
            "params": [p for p in model.backbone_parameters() if p.requires_grad],
            "lr_mult": cfg.backbone_lr_mult,
        },
        {"params": model.head_parameters(), "lr_mult": 1.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, total, elapsed = 0, cfg.steps, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed_s"]
        total = state.get("total_steps") or total
        if cfg.steps:
            total = cfg.steps

    def to_torch(samples):
        return {k: torch.from_numpy(v) for k, v in collate(samples).items()}

    loader = DataLoader(
        _DS(),
        batch_sampler=_Batches(step, cfg.batch),
        collate_fn=to_torch,
        num_workers=cfg.workers,
        persistent_workers=False,
        prefetch_factor=4 if cfg.workers else None,
    )

    def checkpoint() -> None:
        save_checkpoint(
            ckpt_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "total_steps": total,
                "elapsed_s": elapsed,
                "config": asdict(cfg),
                "torch_rng": torch.get_rng_state(),
                "metadata": {"train_command": cfg.command, **lifetime_metadata(cfg, step)},
            },
        )
        log.info("checkpoint %s (step %d)", ckpt_path, step)

    def snapshot() -> None:
        path = out / "snapshots" / f"step-{step:07d}.ckpt"
        path.parent.mkdir(exist_ok=True)
        save_checkpoint(
            path,
            {
                "model": model.state_dict(),
                "step": step,
                "config": asdict(cfg),
                "metadata": {"train_command": cfg.command, **lifetime_metadata(cfg, step)},
            },
        )
        log.info("snapshot %s", path)

    precision = _precision(cfg.precision, device)
    if device == "cpu":
        # Module.to(memory_format=...) is documented, but torch's type hints leave it out
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    log.info("precision %s on %s, %d threads", precision, device, torch.get_num_threads())
    # A network restored from an exported (BatchNorm-folded) model keeps every BatchNorm frozen.
    all_bn = bool(cfg.init or cfg.extra.get("prior"))
    model.train()
    freeze_bn(model, everything=all_bn)
    # With a time budget (and no step count) the schedule follows wall-clock time, so a run on a
    # busy machine still ends on time; with --steps it follows the step count.
    budget_s = cfg.minutes * 60.0 if cfg.minutes and not cfg.steps else None
    if budget_s is None and total is None:
        raise ModelError("training needs --minutes or --steps")
    n_steps = total or 0  # the run's length in steps when it has no time budget
    run_start = time.time() - elapsed
    last_ckpt = last_snapshot = time.time()
    timing_from: tuple[int, float] | None = None
    sums: dict[str, float] = {}
    n_sum = 0
    it = iter(loader)  # draws a seed from the global generator: restore its state after this
    if state is not None:
        torch.set_rng_state(state["torch_rng"])
    while (elapsed < budget_s) if budget_s else (step < n_steps):
        t_data = time.time()
        batch = {k: v.to(device, non_blocking=True) for k, v in next(it).items()}
        if device == "cpu":
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        t_comp = time.time()
        sums["data_s"] = sums.get("data_s", 0.0) + (t_comp - t_data)
        lr = lr_at(step, elapsed / budget_s if budget_s else step / n_steps, cfg.lr, cfg.warmup_steps)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out_t = model.forward_train(batch["image"])
        out_t = {k: v.float() for k, v in out_t.items()}
        loss, parts = detection_loss(out_t, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        sums["step_s"] = sums.get("step_s", 0.0) + (time.time() - t_comp)
        elapsed = time.time() - run_start
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        n_sum += 1
        if step == (state["step"] if state else 0) + 3:
            timing_from = (step, time.time())
        if step % cfg.log_every == 0:
            per = (
                (time.time() - timing_from[1]) / (step - timing_from[0])
                if timing_from and step > timing_from[0]
                else float("nan")
            )
            if budget_s:
                eta = (budget_s - elapsed) / 60
                total = (
                    step + int((budget_s - elapsed) / per) if per == per else None
                )  # estimate, for the log
            else:
                eta = (n_steps - step) * per / 60
            data_s, step_s = sums.pop("data_s", 0.0) / n_sum, sums.pop("step_s", 0.0) / n_sum
            log.info(
                "step %d/%s lr %.2e %s | %.2f s/step (%.2f steps/s, %.1f crops/s; "
                "data %.2f s, model %.2f s), %.1f min elapsed, ~%.1f min left",
                step,
                total or "?",
                lr,
                " ".join(f"{k} {v / n_sum:.3f}" for k, v in sums.items()),
                per,
                1 / per if per == per else float("nan"),
                cfg.batch / per if per == per else float("nan"),
                data_s,
                step_s,
                elapsed / 60,
                eta,
            )
            sums, n_sum = {}, 0
        if cfg.stop_after_steps and step - (state["step"] if state else 0) >= cfg.stop_after_steps:
            log.info("stopping after %d steps of this session", cfg.stop_after_steps)
            break
        if time.time() - last_ckpt > cfg.checkpoint_every_s:
            checkpoint()
            last_ckpt = time.time()
        if cfg.snapshot_every_s is not None and time.time() - last_snapshot > cfg.snapshot_every_s:
            snapshot()
            last_snapshot = time.time()
    checkpoint()
    del it, loader
    return ckpt_path


# --------------------------------------------------------------------------- validation


def decode(
    heatmap: np.ndarray, geometry: np.ndarray, threshold: float = 0.05, top_k: int = 400
) -> list[tuple]:
    """Peaks of one image's outputs: ``(score, category index, cx, cy, length, width, heading_deg)``.

    A simple decoder for threshold selection (3x3 local maxima, no box NMS).
    """
    from scipy.ndimage import maximum_filter

    peaks = (heatmap == maximum_filter(heatmap, size=(1, 3, 3))) & (heatmap >= threshold)
    c, r, q = np.nonzero(peaks)
    scores = heatmap[c, r, q]
    order = np.argsort(-scores)[:top_k]
    dets = []
    for i in order:
        ox, oy, length, width, cos2, sin2 = geometry[:, r[i], q[i]]
        heading = (math.degrees(math.atan2(sin2, cos2)) / 2.0) % 180.0
        dets.append(
            (
                float(scores[i]),
                int(c[i]),
                (q[i] + ox) * 4.0,
                (r[i] + oy) * 4.0,
                float(length),
                float(width),
                heading,
            )
        )
    return dets


def predict_image(model: Any, rgb: np.ndarray, tile: int = 1024) -> list[tuple]:
    """Decoded peaks over a whole image, tiled into ``tile`` squares (zero-padded to multiples of 32)."""
    import torch

    h, w = rgb.shape[:2]
    dets: list[tuple] = []
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            crop = rgb[y0 : y0 + tile, x0 : x0 + tile]
            ch, cw = crop.shape[:2]
            ph, pw = -(-ch // 32) * 32, -(-cw // 32) * 32
            buf = np.zeros((ph, pw, 3), np.float32)
            buf[:ch, :cw] = crop
            with torch.no_grad():
                hm, geo = model(torch.from_numpy(buf.transpose(2, 0, 1)[None].copy()))
            for d in decode(hm[0].numpy(), geo[0].numpy()):
                dets.append((d[0], d[1], d[2] + x0, d[3] + y0, *d[4:]))
    return dets


def match_counts(
    images: list[Any], predictions: list[list[tuple]], thresholds: np.ndarray
) -> dict[str, np.ndarray]:
    """TP / FP / FN per threshold and category (centre within max(4 px, half the label width)).

    Detections near difficult labels, and detections of categories an image's dataset does not
    label, count neither way.
    """
    nt, nc = len(thresholds), len(CATEGORIES)
    tp, fp, fn = np.zeros((nt, nc)), np.zeros((nt, nc)), np.zeros((nt, nc))
    for im, dets in zip(images, predictions, strict=True):
        for ti, thr in enumerate(thresholds):
            for c in range(nc):
                if not im.channels[c]:
                    continue
                sel = np.flatnonzero(im.cats == c)
                gt = im.boxes[sel]
                diff = im.difficult[sel]
                used = np.zeros(len(gt), bool)
                for d in (d for d in dets if d[1] == c and d[0] >= thr):
                    if len(gt) == 0:
                        fp[ti, c] += 1
                        continue
                    dist = np.hypot(gt[:, 0] - d[2], gt[:, 1] - d[3])
                    ok = (dist <= np.maximum(4.0, gt[:, 3] / 2)) & ~used
                    if not ok.any():
                        fp[ti, c] += 1
                        continue
                    j = int(np.argmin(np.where(ok, dist, np.inf)))
                    used[j] = True
                    if not diff[j]:
                        tp[ti, c] += 1
                fn[ti, c] += int((~used & ~diff).sum())
    return {"tp": tp, "fp": fp, "fn": fn}


#: Below this best validation F1 a category is too weak to tune: it keeps at least the pooled threshold.
WEAK_CATEGORY_F1 = 0.3


def category_thresholds(
    thresholds: np.ndarray, counts: dict[str, np.ndarray], pooled: float
) -> dict[str, dict[str, Any]]:
    """Operating threshold per category from validation counts.

    Each category takes the threshold of its best F1 (rarer categories score lower than the pooled
    optimum). A category whose best F1 is below :data:`WEAK_CATEGORY_F1` would only trade one kind
    of error for another at a low threshold, flooding scenes with false alarms; it runs at
    ``max(best, pooled)`` instead and is marked ``"weak"``.

    Args:
        thresholds: the candidate thresholds, shape ``(T,)``.
        counts: ``"tp"``, ``"fp"``, ``"fn"`` arrays of shape ``(T, len(CATEGORIES))``.
        pooled: the threshold of the best pooled F1.

    Returns:
        ``{category: {"threshold", "f1", "weak"}}`` for categories with validation objects.
    """
    f1_cat = 2 * counts["tp"] / np.maximum(1e-9, 2 * counts["tp"] + counts["fp"] + counts["fn"])
    out: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(CATEGORIES):
        if counts["tp"][:, c].sum() + counts["fn"][:, c].sum() == 0:
            continue
        i = int(np.argmax(f1_cat[:, c]))
        f1 = round(float(f1_cat[i, c]), 3)
        weak = f1 < WEAK_CATEGORY_F1
        thr = max(float(thresholds[i]), pooled) if weak else float(thresholds[i])
        out[name] = {"threshold": thr, "f1": f1, "weak": weak}
    return out


def validate(model: Any, data_root: Path, datasets: list[str] | None = None) -> dict[str, Any]:
    """Run the model over the validation split; pick the threshold with the best pooled F1."""
    from sitewatch.detect.train.data import load_split

    model = model.to("cpu").eval()
    images = load_split(Path(data_root), "val", datasets)
    t0 = time.time()
    preds = [predict_image(model, im.rgb) for im in images]
    thresholds = np.round(np.arange(0.05, 0.951, 0.025), 3)
    counts = match_counts(images, preds, thresholds)
    tp, fp, fn = (counts[k].sum(axis=1) for k in ("tp", "fp", "fn"))
    f1 = 2 * tp / np.maximum(1e-9, 2 * tp + fp + fn)
    best = int(np.argmax(f1))
    per_cat = {}
    for c, name in enumerate(CATEGORIES):
        t, f, n = (counts[k][best, c] for k in ("tp", "fp", "fn"))
        per_cat[name] = {
            "tp": int(t),
            "fp": int(f),
            "fn": int(n),
            "precision": round(t / max(1.0, t + f), 3),
            "recall": round(t / max(1.0, t + n), 3),
            "f1": round(2 * t / max(1.0, 2 * t + f + n), 3),
        }
    per_cat_thr = category_thresholds(thresholds, counts, float(thresholds[best]))
    by_ds: dict[str, Any] = {}
    for ds in sorted({im.dataset for im in images}):
        idx = [i for i, im in enumerate(images) if im.dataset == ds]
        cd = match_counts([images[i] for i in idx], [preds[i] for i in idx], thresholds[best : best + 1])
        t, f, n = (cd[k].sum() for k in ("tp", "fp", "fn"))
        by_ds[ds] = {
            "images": len(idx),
            "tp": int(t),
            "fp": int(f),
            "fn": int(n),
            "f1": round(2 * t / max(1.0, 2 * t + f + n), 3),
        }
    return {
        "score_threshold": float(thresholds[best]),
        "f1": round(float(f1[best]), 4),
        "precision": round(float(tp[best] / max(1.0, tp[best] + fp[best])), 4),
        "recall": round(float(tp[best] / max(1.0, tp[best] + fn[best])), 4),
        "per_category": per_cat,
        "per_category_best": per_cat_thr,
        "per_dataset": by_ds,
        "f1_by_threshold": {f"{t:.3f}": round(float(v), 4) for t, v in zip(thresholds, f1, strict=True)},
        "val_images": len(images),
        "seconds": round(time.time() - t0, 1),
        "matching": "centre distance <= max(4 px, half label width), same category; at working GSD",
    }


def train_command(config: dict[str, Any]) -> str:
    """The command line(s) that trained a checkpoint, from its stored config.

    A resumed run was shaped by every invocation, in order, so all of them (joined by `` && ``)
    reproduce it; a run never resumed has one.
    """
    commands = [c for c in config.get("extra", {}).get("commands", []) if c]
    return " && ".join(commands) if commands else config.get("command", "")


def finish(
    ckpt_path: Path, data_root: Path, onnx_out: Path, datasets: list[str] | None = None
) -> dict[str, Any]:
    """Validate the checkpoint, store the metrics next to it and export the ONNX model."""
    from sitewatch.detect.train.data import WORKING_GSD_M
    from sitewatch.detect.train.export import default_metadata, export_onnx, load_checkpoint_model

    model, ckpt = load_checkpoint_model(ckpt_path)
    metrics = validate(model, data_root, datasets)
    (Path(ckpt_path).parent / "val_metrics.json").write_text(json.dumps(metrics, indent=2))
    cfg = ckpt.get("config", {})
    lifetime = {
        k: v
        for k, v in (ckpt.get("metadata") or {}).items()
        if k in ("steps_seen", "crops_seen", "train_history")
    }
    history = json.loads(lifetime.get("train_history", "[]"))
    meta = {
        **lifetime,
        "train_command": " && ".join(history) if history else train_command(cfg),
        "score_threshold": f"{metrics['score_threshold']:.3f}",
        "working_gsd_m": f"{WORKING_GSD_M}",
        "input_tile": "512",
        # Additional key: best validation threshold per category (JSON), where one is known.
        "score_thresholds": json.dumps({k: v["threshold"] for k, v in metrics["per_category_best"].items()}),
    }
    ckpt["metadata"] = meta
    save_checkpoint(Path(ckpt_path), ckpt)
    export_onnx(model, onnx_out, default_metadata(**meta))
    return metrics
