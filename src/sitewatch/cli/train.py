"""``sitewatch train``: train the detector; ``export``: write the ONNX model; ``attach-evaluation``: store its
evaluation."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import shlex
import sys
from pathlib import Path

import click

from sitewatch.cli.options import AliasedOption, output_option, overwrite_option
from sitewatch.dota import require_data_tree
from sitewatch.errors import SitewatchError

log = logging.getLogger("sitewatch")


def _need_torch() -> None:
    # Idle OpenMP threads must sleep, not spin: on a shared 2-core machine spinning makes a
    # training step several times slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if (
        importlib.util.find_spec("torch") is None
        or importlib.util.find_spec("efficientnet_lite_pytorch") is None
    ):
        raise SitewatchError("training needs the [train] extra: pip install sitewatch[train]")


def _log_to(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


@click.group(invoke_without_command=True)
@click.option(
    "--data", "data", type=click.Path(path_type=Path), default=None, help="Data tree (e.g. ../shared/data)."
)
@click.option("-o", "--output", "--out", "out", cls=AliasedOption, hidden_names=("--out",),
              type=click.Path(path_type=Path), default=Path("runs/det"), show_default=True,
              help="Run folder.")  # fmt: skip
@click.option(
    "--minutes",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Time budget of the optimisation loop (default 60).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Number of optimisation steps (instead of --minutes).",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Steps = epochs x training images / batch."
)
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--size",
    type=click.IntRange(min=64),
    default=384,
    show_default=True,
    help="Crop side, pixels (multiple of 32).",
)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from <out>/last.ckpt.")
@click.option(
    "--init",
    "init",
    type=click.Path(path_type=Path),
    default=None,
    help=(
        "Start from the weights of an exported model (e.g. the shipped "
        "src/sitewatch/detect/models/sitewatch-det.onnx)."
    ),
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp32"]),
    default="auto",
    show_default=True,
    help=(
        "bf16 autocast with fp32 master weights where the CPU/GPU supports it natively (auto), or plain fp32."
    ),
)
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True, help="Compute threads.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Data-loading worker processes (crops and augmentation beside the model's threads).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--export",
    "export_to",
    type=click.Path(path_type=Path),
    default=None,
    help="ONNX file written at the end (default <out>/sitewatch-det.onnx).",
)
@click.option("--no-export", is_flag=True, help="Stop after training (no validation, no ONNX).")
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="DATASET=SHARE",
    help="Override a dataset's sampling share (repeatable), e.g. --weight ships-google-earth=0.22.",
)
@click.option(
    "--datasets",
    default=None,
    metavar="NAME[,NAME...]",
    help="Train on these datasets of the data tree only (default: all of DATASET_WEIGHTS).",
)
@click.option(
    "--limit-images",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many training images per dataset.",
)
@click.option(
    "--checkpoint-every",
    "checkpoint_every",
    type=click.FloatRange(0.0, 10.0),
    default=4.0,
    show_default=True,
    help="Minutes between checkpoints (<out>/last.ckpt, written atomically; 0: after every step).",
)
@click.option(
    "--snapshot-every",
    "snapshot_every",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Minutes between snapshots of the weights (<out>/snapshots/), for `sitewatch train average`.",
)
@click.option(
    "--log-every", type=click.IntRange(min=1), default=10, show_default=True, help="Steps between log lines."
)
@click.option(
    "--freeze-blocks",
    "freeze_blocks",
    type=click.IntRange(0, 16),
    default=None,
    help="Backbone blocks after the stem that stay fixed (default 3; 16: the whole backbone, only "
    "the top-down path and the heads learn). A new run's choice: --resume keeps the run's own.",
)
@click.option(
    "--hard",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Hard regions from `sitewatch train mine`: a share of the crops is centred on them.",
)
@click.option(
    "--zoom-out",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of the crops of images with a GSD that label aircraft drawn zoomed out 0.3-0.6x, "
    "so 0.5 m aircraft also appear at the size of GSD-unknown screenshots.",
)
@click.pass_context
def command(
    ctx: click.Context,
    data: Path | None,
    out: Path,
    minutes: float | None,
    steps: int | None,
    epochs: int | None,
    batch: int,
    size: int,
    lr: float,
    seed: int,
    resume: bool,
    init: Path | None,
    precision: str,
    threads: int,
    workers: int,
    device: str,
    export_to: Path | None,
    no_export: bool,
    weights: tuple[str, ...],
    datasets: str | None,
    limit_images: int | None,
    checkpoint_every: float,
    snapshot_every: float | None,
    log_every: int,
    freeze_blocks: int | None,
    hard: Path | None,
    zoom_out: float,
) -> None:
    """Train sitewatch's oriented-box detector on the labelled data tree.

    Example: sitewatch train --data ../shared/data -o runs/det --minutes 60
    """
    if ctx.invoked_subcommand is not None:
        return
    if data is None:
        raise click.UsageError("--data is required to train (e.g. --data ../shared/data)")
    require_data_tree(data)
    if size % 32:
        raise click.BadParameter("must be a multiple of 32", param_hint="--size")
    _need_torch()
    from sitewatch.detect.train.loop import TrainConfig, finish, train
    from sitewatch.detect.train.splits import split_of  # noqa: F401  (fail early on a bad tree)

    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    for name in names or []:
        if not (data / name).is_dir():
            raise SitewatchError(f"{data / name}: no such dataset in the data tree (--datasets)")
    if epochs is not None and steps is None:
        from sitewatch.detect.train.data import load_split

        n = len(load_split(data, "train", names, limit_images))
        steps = max(1, epochs * n // batch)
    if init is not None and resume:
        raise click.UsageError(
            "--init starts a new run from a model; --resume continues a run: give one of them"
        )
    if resume and freeze_blocks is not None:
        raise click.UsageError(
            "--freeze-blocks applies to a new run; a resumed run keeps the blocks it started with "
            "(its optimiser holds their parameters)"
        )
    if init is not None and not init.is_file():
        raise SitewatchError(f"{init}: model file not found (--init)")
    if steps is None and minutes is None and not resume:
        minutes = 60.0
    shares = _shares(weights, data)
    if hard is not None:
        from sitewatch.detect.train.hard import read_regions

        read_regions(hard)  # a bad file stops here, before the images are decoded
    _log_to(out / "train.log")
    invocation = shlex.join(["sitewatch", *sys.argv[1:]])
    cfg = TrainConfig(
        data=str(data),
        out=str(out),
        minutes=minutes,
        steps=steps,
        batch=batch,
        size=size,
        lr=lr,
        seed=seed,
        device=device,
        init=str(init) if init else None,
        precision=precision,
        threads=threads,
        workers=workers,
        command=invocation,
        # A resumed run keeps its shares unless new ones are given.
        extra={
            **({"dataset_weights": shares} if shares or not resume else {}),
            **({"hard_regions": str(hard)} if hard else {}),
            **({"zoom_out": zoom_out} if zoom_out else {}),
            "invocation": invocation,
        },
        datasets=names,
        limit_images=limit_images,
        checkpoint_every_s=checkpoint_every * 60.0,
        snapshot_every_s=snapshot_every * 60.0 if snapshot_every else None,
        log_every=log_every,
        freeze_blocks=TrainConfig.freeze_blocks if freeze_blocks is None else freeze_blocks,
    )
    ckpt = train(cfg, resume=resume)
    click.echo(f"checkpoint: {ckpt}")
    if no_export:
        return
    onnx_out = export_to or out / "sitewatch-det.onnx"
    metrics = finish(ckpt, data, onnx_out, names)
    click.echo(
        f"validation F1 {metrics['f1']:.3f} at score {metrics['score_threshold']:.3f}; model: {onnx_out}"
    )


@command.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@output_option("ONNX file to write.", type=click.Path(path_type=Path), required=True)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Data tree: validate first and set score_threshold from the best validation F1.",
)
@overwrite_option
def export_command(checkpoint: Path, output: Path, data: Path | None, overwrite: bool) -> None:
    """Export a training checkpoint to ONNX (the model contract of sitewatch.detect.train.export)."""
    _need_torch()
    from sitewatch.output import check_output

    check_output(output, overwrite=overwrite, what="model")  # before minutes of validation
    if data is not None:
        from sitewatch.detect.train.loop import finish

        metrics = finish(checkpoint, data, output)
        click.echo(f"validation F1 {metrics['f1']:.3f} at score {metrics['score_threshold']:.3f}")
    else:
        from sitewatch.detect.train.export import export_checkpoint

        export_checkpoint(checkpoint, output)
    click.echo(f"wrote {output}")


@command.command("average")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option("Checkpoint to write.", type=click.Path(path_type=Path), required=True)
@overwrite_option
def average_command(checkpoints: tuple[Path, ...], output: Path, overwrite: bool) -> None:
    """Average the weights of several checkpoints into one: the snapshots of one run, or runs
    continued from the same model (an average of a model and its continuation keeps more of both).

    Example: sitewatch train average runs/det/snapshots/step-*.ckpt -o runs/det/average.ckpt
    """
    _need_torch()
    from sitewatch.output import check_output

    check_output(output, overwrite=overwrite, what="checkpoint")
    from sitewatch.detect.train.export import average_checkpoints

    average_checkpoints(list(checkpoints), output, command=shlex.join(["sitewatch", *sys.argv[1:]]))
    click.echo(f"wrote {output} (the average of {len(checkpoints)} checkpoints)")


@command.command("pack")
@click.option(
    "--data", type=click.Path(path_type=Path), required=True, help="Data tree (e.g. ../shared/data)."
)
@output_option("Pack folder to create (new or empty).", type=click.Path(path_type=Path), required=True)
@click.option(
    "--init",
    "init",
    type=click.Path(path_type=Path),
    default=None,
    help=(
        "Start from the weights of an exported model (e.g. src/sitewatch/detect/models/sitewatch-det.onnx); "
        "default: ImageNet backbone."
    ),
)
@click.option(
    "--datasets",
    default=None,
    metavar="NAME[,NAME...]",
    help="Only these datasets (default: all of DATASET_WEIGHTS).",
)
@click.option(
    "--limit-images",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many images per dataset and split.",
)
@click.option(
    "--quality",
    type=click.IntRange(30, 100),
    default=55,
    show_default=True,
    help="WebP quality tried first (lowered in steps of 5 until the images fit in --max-mib).",
)
@click.option(
    "--max-mib",
    type=click.FloatRange(min=0.0, min_open=True),
    default=60.0,
    show_default=True,
    help="Largest size of the images file, MiB.",
)
@click.option(
    "--val-images",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many validation images per dataset (they serve only the trainer's "
    "validation loss); default: all.",
)
@click.option(
    "--half-init",
    is_flag=True,
    help="Store the initial weights in float16 (half the size; loaded into float32).",
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="DATASET=SHARE",
    help="Sampling-share override the pack's trainer applies (repeatable).",
)
@click.option(
    "--lr", type=float, default=2e-3, show_default=True, help="Default learning rate of the pack's trainer."
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Default batch of the pack's trainer.",
)
def pack_command(
    data: Path,
    output: Path,
    init: Path | None,
    datasets: str | None,
    limit_images: int | None,
    quality: int,
    max_mib: float,
    val_images: int | None,
    half_init: bool,
    weights: tuple[str, ...],
    lr: float,
    batch: int,
) -> None:
    """Write the training set and a self-contained trainer into one folder, for a GPU machine.

    The folder's train_pack.py needs only PyTorch, numpy and OpenCV; its checkpoint goes back
    through `sitewatch train export`. See docs/detect.md (Training on a GPU).

    Example: sitewatch train pack --data ../shared/data -o pack --init
    src/sitewatch/detect/models/sitewatch-det.onnx
    """
    require_data_tree(data)
    if init is not None and not init.is_file():
        raise SitewatchError(f"{init}: model file not found (--init)")
    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    for name in names or []:
        if not (data / name).is_dir():
            raise SitewatchError(f"{data / name}: no such dataset in the data tree (--datasets)")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise SitewatchError(f"{output}: already exists and is not empty; give a new folder for the pack")
    _need_torch()
    from sitewatch.detect.train.pack import write_pack

    summary = write_pack(
        data,
        output,
        datasets=names,
        limit_images=limit_images,
        init=init,
        quality=quality,
        max_mib=max_mib,
        val_images=val_images,
        half_init=half_init,
        dataset_weights=_shares(weights, data),
        trainer={"lr": lr, "batch": batch},
        command=shlex.join(["sitewatch", *sys.argv[1:]]),
    )
    click.echo(
        f"wrote {output}: {summary.images['train']} training, {summary.images['val']} validation, "
        f"{summary.images['background']} background images, {summary.objects} objects; images "
        f"{summary.data_bytes / 2**20:.1f} MiB (WebP quality {summary.quality}), "
        f"pack {summary.total_bytes / 2**20:.1f} MiB; starts from {summary.init}"
    )
    click.echo(f"train: python {output / 'train_pack.py'} --minutes 10")


def _shares(weights: tuple[str, ...], data: Path) -> dict[str, float]:
    """``--weight DATASET=SHARE`` items as a dict; a name that is not a dataset of ``data`` (a typo
    would otherwise leave that dataset at its default share without a word) or a share that is not
    a finite number ≥ 0 is refused."""
    shares: dict[str, float] = {}
    for item in weights:
        name, _, value = item.partition("=")
        name = name.strip()
        try:
            share = float(value)
        except ValueError:
            raise click.BadParameter(f"expected DATASET=SHARE, got {item!r}", param_hint="--weight") from None
        if not math.isfinite(share) or share < 0:
            raise click.BadParameter(f"share must be a number >= 0, got {item!r}", param_hint="--weight")
        if not name or not (data / name).is_dir():
            raise SitewatchError(f"{data / name}: no such dataset in the data tree (--weight {item})")
        shares[name] = share
    return shares


@command.command("attach-evaluation")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("report", type=click.Path(path_type=Path))
def attach_evaluation_command(model: Path, report: Path) -> None:
    """Store a held-out evaluation (REPORT, from `sitewatch evaluate --json`) in the ONNX MODEL.

    Reports built from the model then state its measured accuracy and its weak categories.

    Example: sitewatch evaluate ../shared/data --split val --by-dataset --json > eval.json &&
    sitewatch train attach-evaluation src/sitewatch/detect/models/sitewatch-det.onnx eval.json
    """
    import json

    if importlib.util.find_spec("onnx") is None:
        raise SitewatchError("editing a model needs the [train] extra (onnx): pip install sitewatch[train]")
    from sitewatch.detect.train.export import attach_evaluation

    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SitewatchError(f"{report}: cannot read the evaluation report ({e})") from None
    if not isinstance(data, dict):
        raise SitewatchError(f"{report}: not a `sitewatch evaluate --json` report")
    summary = attach_evaluation(model, data)
    click.echo(
        f"stored the {summary['split']} evaluation of {summary['model']} ({summary['images']} images) in "
        f"{model}"
    )


@command.command("quantize")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@output_option("int8 ONNX file to write.", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Data tree whose training images calibrate it.",
)
@click.option(
    "--tiles",
    "count",
    type=click.IntRange(min=8),
    default=256,
    show_default=True,
    help="Calibration tiles (sitewatch.detect.quantize.CALIBRATION_TILES).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@overwrite_option
def quantize_command(model: Path, output: Path, data: Path, count: int, seed: int, overwrite: bool) -> None:
    """Write the static int8 twin of MODEL, calibrated on its own input tiles of training images.

    Measure it before use: python bench/detect_validation.py ../shared/data --model OUTPUT.

    Example: sitewatch train quantize src/sitewatch/detect/models/sitewatch-det.onnx --data ../shared/data
    -o det-int8.onnx
    """
    if importlib.util.find_spec("onnx") is None:
        raise SitewatchError(
            "quantising a model needs the [train] extra (onnx): pip install sitewatch[train]"
        )
    from sitewatch.detect.quantize import calibration_tiles, quantize_model
    from sitewatch.output import check_output

    check_output(output, overwrite=overwrite, what="model")
    tiles = calibration_tiles(model, data, seed=seed)
    quantize_model(model, output, tiles, count=count, seed=seed)
    click.echo(f"wrote {output} (int8, {min(count, len(tiles))} calibration tiles)")


@command.command("mine")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Data tree whose training images are searched (e.g. ../shared/data).",
)
@output_option(
    "Hard-region file (JSON) to write.", type=click.Path(dir_okay=False, path_type=Path), required=True
)
@click.option("--datasets", default=None, help="Only these datasets (NAME[,NAME...]; default: all).")
@click.option(
    "--limit-images", type=click.IntRange(min=1), default=None, help="At most this many images per dataset."
)
@click.option(
    "--margin",
    type=click.FloatRange(0.1, 1.0),
    default=1.0,
    show_default=True,
    help="Look for false detections from this fraction of each category's threshold (near misses).",
)
@overwrite_option
def mine_command(
    model: Path,
    data: Path,
    output: Path,
    datasets: str | None,
    limit_images: int | None,
    margin: float,
    overwrite: bool,
) -> None:
    """Find MODEL's false detections and missed objects on the training images (hard regions).

    Train on them with `sitewatch train --hard OUTPUT`: a share of the crops is centred on them.

    Example: sitewatch train mine src/sitewatch/detect/models/sitewatch-det.onnx --data ../shared/data
    -o hard.json
    """
    from collections import Counter

    from sitewatch.cli.console import err_console, progress
    from sitewatch.cli.detect import build_detector, open_image
    from sitewatch.detect.evaluate import iter_labelled
    from sitewatch.detect.train.mine import mine, write_regions
    from sitewatch.output import check_output

    require_data_tree(data)
    check_output(output, overwrite=overwrite, what="hard-region file")
    names = {d.strip() for d in datasets.split(",") if d.strip()} if datasets else None
    for name in names or ():
        if not (data / name).is_dir():
            raise SitewatchError(f"{data / name}: no such dataset in the data tree (--datasets)")
    per: Counter[str] = Counter()
    items = []
    for image, cats in iter_labelled(data, "train"):
        if (names is None or image.dataset in names) and (
            limit_images is None or per[image.dataset] < limit_images
        ):
            per[image.dataset] += 1
            items.append((image, cats))
    if not items:
        raise click.UsageError(f"{data}: no training images to search")
    detector = build_detector(str(model), ())
    thresholds = detector.score_thresholds
    detector.score_threshold = margin * min(thresholds.values())
    with progress(disable=not err_console.is_terminal) as bar:
        task = bar.add_task("mining", total=len(items))
        regions = mine(
            detector,
            items,
            open_scene=lambda im: open_image(str(im.image_path), im.gsd_m, force=True),
            thresholds=thresholds,
            margin=margin,
            progress=lambda _im: bar.advance(task),
        )
    write_regions(output, regions, detector.label, overwrite=overwrite)
    kinds = Counter(r.kind for r in regions)
    click.echo(
        f"wrote {output}: {kinds['false']} false detections, {kinds['missed']} missed objects "
        f"on {len(items)} training images"
    )
