"""Train sitewatch's detector from a training pack, on a machine with PyTorch (and a CUDA GPU).

This file is copied into every pack written by ``sitewatch train pack`` (see
:mod:`sitewatch.detect.train.pack`) and runs from there with only PyTorch, numpy and OpenCV
installed: the sitewatch code it needs is in ``lib/`` beside it. Example::

    python PACK/train_pack.py --minutes 10                # GPU: batch 64, bf16 autocast
    python PACK/train_pack.py --minutes 10 --resume       # continue PACK/run/last.ckpt
    python PACK/train_pack.py --device cpu --steps 3 --batch 2 --size 64 --workers 0   # a smoke test

It runs sitewatch's own training loop (:func:`sitewatch.detect.train.loop.train`: schedule,
checkpoints every few minutes written atomically, resume, bf16 autocast where the device has
it, copy-paste augmentation) with the images read from the pack instead of a data tree, and
writes ``OUT/last.ckpt`` (a sitewatch checkpoint: ``sitewatch train export OUT/last.ckpt -o
model.onnx --data ../shared/data`` makes the shipped model of it), ``OUT/train.log`` and
``OUT/val_loss.json`` (the loss on fixed validation crops, before and after).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _parser(defaults: dict) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_pack.py", description=__doc__.split("\n")[0])
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes", type=float, default=None, help="time budget of the optimisation loop (default 10)"
    )
    budget.add_argument(
        "--steps", type=int, default=None, help="number of optimisation steps instead of a time budget"
    )
    p.add_argument("--batch", type=int, default=defaults.get("batch", 64))
    p.add_argument(
        "--size", type=int, default=defaults.get("size", 384), help="crop side, pixels (multiple of 32)"
    )
    p.add_argument("--lr", type=float, default=defaults.get("lr", 2e-3))
    p.add_argument("--warmup-steps", type=int, default=defaults.get("warmup_steps", 60))
    p.add_argument("--freeze-blocks", type=int, default=defaults.get("freeze_blocks", 3))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="data-loading processes (default: CPUs - 2 on a GPU, 0 on the CPU)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="compute threads of the main process (default 4 on a GPU, 2 on the CPU)",
    )
    p.add_argument("--checkpoint-every", type=float, default=5.0, help="minutes between checkpoints")
    p.add_argument(
        "--snapshot-every",
        type=float,
        default=None,
        help="minutes between snapshots of the weights (OUT/snapshots/, for `sitewatch train average`)",
    )
    p.add_argument("--log-every", type=int, default=20, help="steps between log lines")
    p.add_argument("--out", type=Path, default=HERE / "run", help="run folder (default PACK/run)")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.ckpt")
    p.add_argument("--no-copy-paste", action="store_true", help="no helicopter copy-paste augmentation")
    p.add_argument(
        "--zoom-out",
        type=float,
        default=0.0,
        help="share of the crops of aircraft images with a GSD drawn zoomed out 0.3-0.6x (default 0)",
    )
    p.add_argument(
        "--val-crops", type=int, default=256, help="validation crops for the loss in val_loss.json (0: none)"
    )
    return p


def _log_to(out: Path) -> logging.Logger:
    out.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("sitewatch")
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in (logging.FileHandler(out / "train.log"), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def validation_loss(model, images: list, size: int, crops: int, device: str, precision: str) -> float | None:  # noqa: ANN001
    """Mean loss on ``crops`` fixed, unaugmented validation crops (the same ones in every run)."""
    import torch

    from sitewatch.detect.train.data import CropSampler, collate
    from sitewatch.detect.train.losses import detection_loss

    if not images or crops <= 0:
        return None
    sampler = CropSampler(images, size, seed=12345, augment=False)
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, crops, 32):
            batch = {
                k: torch.from_numpy(v).to(device)
                for k, v in collate([sampler.sample(i) for i in range(start, min(crops, start + 32))]).items()
            }
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                out = model.forward_train(batch["image"])
            loss, _ = detection_loss({k: v.float() for k, v in out.items()}, batch)
            total += float(loss) * len(batch["image"])
            n += len(batch["image"])
    return total / n


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(HERE / "lib"))
    meta = json.loads((HERE / "pack.json").read_text(encoding="utf-8"))
    parser = _parser(meta.get("trainer", {}))
    args = parser.parse_args(argv)
    if args.size % 32:
        parser.error(f"--size {args.size}: must be a multiple of 32")
    if args.resume and not (args.out / "last.ckpt").is_file():
        parser.error(f"{args.out / 'last.ckpt'}: nothing to resume from")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import efficientnet_lite_pytorch
    import torch

    import sitewatch
    from sitewatch.detect.train import data as tdata
    from sitewatch.detect.train import loop as tloop
    from sitewatch.detect.train import model as tmodel
    from sitewatch.detect.train import paste as tpaste
    from sitewatch.detect.train.pack import read_pack

    log = _log_to(args.out)
    device = tloop._device(args.device)
    log.info(
        "sitewatch code from %s, efficientnet_lite_pytorch from %s",
        Path(sitewatch.__file__).parent,
        Path(efficientnet_lite_pytorch.__file__).parent,
    )
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        log.info("device %s", torch.cuda.get_device_name(0))
    _, images = read_pack(HERE)
    log.info("pack %s: %s images", HERE, {k: len(v) for k, v in images.items()})

    # The training loop reads its images through these two functions and builds its network
    # through this class: serve them from the pack.
    tdata.load_split = lambda _root, split, *_a, **_k: images[split]
    tpaste.load_empty_aprons = lambda data_root: images["background"]
    init = torch.load(HERE / "init.pt", map_location="cpu", weights_only=True)

    class PackedNet(tmodel.SitewatchNet):
        def __init__(self, pretrained: bool = True, width: int = 64):
            super().__init__(pretrained=False, width=width)
            self.load_state_dict(init)

    vars(tmodel)["SitewatchNet"] = PackedNet

    command = shlex.join(["python", "train_pack.py", *(sys.argv[1:] if argv is None else argv)])
    # The first run's entry in the training history names the pack it ran from.
    invocation = f"{meta['command']} && {command}" if meta.get("command") and not args.resume else command
    extra = {
        "dataset_weights": meta.get("dataset_weights") or {},
        "invocation": invocation,
        "copy_paste": not args.no_copy_paste,
        "zoom_out": args.zoom_out,
        "pack": {"quality": meta.get("quality"), "images": meta.get("images")},
    }
    if meta.get("prior") is not None:
        # Weights restored from an exported model: its history goes on, its BatchNorms stay folded.
        extra.update(prior=meta["prior"], init_model=meta.get("init_model", ""))
    minutes = args.minutes if (args.minutes or args.steps or args.resume) else 10.0
    cfg = tloop.TrainConfig(
        data=str(HERE),
        out=str(args.out),
        minutes=minutes,
        steps=args.steps,
        batch=args.batch,
        size=args.size,
        lr=args.lr,
        seed=args.seed,
        device=device,
        warmup_steps=args.warmup_steps,
        freeze_blocks=args.freeze_blocks,
        workers=args.workers
        if args.workers is not None
        else (max(0, min(14, (os.cpu_count() or 2) - 2)) if device == "cuda" else 0),
        threads=args.threads or (4 if device == "cuda" else 2),
        checkpoint_every_s=args.checkpoint_every * 60.0,
        snapshot_every_s=args.snapshot_every * 60.0 if args.snapshot_every is not None else None,
        log_every=args.log_every,
        pretrained=False,
        precision=args.precision,
        command=invocation,
        extra=extra,
    )
    if cfg.workers:
        import cv2

        # Each loader process makes its crops on one core (forked processes inherit this).
        cv2.setNumThreads(1)
    precision = tloop._precision(args.precision, device)
    ckpt_path = args.out / "last.ckpt"

    def loss_of(state: dict | None) -> tuple[float | None, int]:
        """Validation loss of a checkpoint (None: the initial weights) at its run's crop size."""
        net, size = PackedNet(width=cfg.width), args.size
        if state is not None:
            net.load_state_dict(state["model"])
            size = state["config"].get("size", size)
        return validation_loss(net.to(device), images["val"], size, args.val_crops, device, precision), size

    before, _ = loss_of(
        torch.load(ckpt_path, map_location="cpu", weights_only=False) if args.resume else None
    )
    tloop.train(cfg, resume=args.resume)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    after, size = loss_of(ckpt)
    result = {
        "step": ckpt["step"],
        "crops_seen": ckpt["metadata"].get("crops_seen"),
        "val_loss_before": before,
        "val_loss_after": after,
        "val_crops": args.val_crops,
        "size": size,
    }
    (args.out / "val_loss.json").write_text(json.dumps(result, indent=1))
    log.info("checkpoint %s: step %d, validation loss %s -> %s", ckpt_path, ckpt["step"], before, after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
