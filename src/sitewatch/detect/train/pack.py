"""Training packs: the whole training set and the trainer in one folder, for a machine with a GPU.

``sitewatch train pack --data ../shared/data -o PACK`` writes

* ``PACK/data.npz``: every training, validation and copy-paste background image, decoded and
  resampled to the working GSD exactly as :func:`~sitewatch.detect.train.data.load_split` does,
  re-encoded as WebP (one byte array and offsets), with their objects as arrays (boxes in the
  pixels of the resampled image, categories, difficult flags), the split, dataset, GSD and
  labelled-category mask of each image (see :func:`pack_arrays` for the keys);
* ``PACK/pack.json``: format version, image names and datasets, sampling-share overrides, the
  WebP quality, the trainer's defaults and the training history of the initial weights;
* ``PACK/init.pt``: the initial weights (``state_dict`` of
  :class:`~sitewatch.detect.train.model.SitewatchNet`): a shipped model restored from its ONNX
  file (``--init``) or the ImageNet EfficientNet-Lite0 backbone with fresh heads;
* ``PACK/lib/``: copies of the sitewatch modules the trainer runs (model, losses, data sampling,
  copy-paste, the training loop, this module) and of the ``efficientnet_lite_pytorch`` package;
* ``PACK/train_pack.py``: the trainer (:mod:`sitewatch.detect.train.train_pack`), which needs
  only PyTorch, numpy and OpenCV.

Its checkpoint (``PACK/run/last.ckpt`` by default) is a sitewatch training checkpoint:
``sitewatch train export CKPT -o model.onnx --data ../shared/data`` turns it into the shipped
model, and ``sitewatch train --resume`` continues it on the CPU.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sitewatch.detect.train.data import CachedImage
from sitewatch.errors import ModelError
from sitewatch.types import CATEGORIES

log = logging.getLogger(__name__)

PACK_FORMAT = 1
#: Largest ``data.npz`` a pack may have, MiB.
MAX_PACK_MIB = 60.0
#: WebP quality tried first, then lowered in steps of :data:`QUALITY_STEP` down to :data:`MIN_QUALITY`
#: until the images fit (measured on ../shared/data: quality 55 gives the size in docs/detect.md).
DEFAULT_QUALITY = 55
QUALITY_STEP = 5
MIN_QUALITY = 30
#: WebP quality of the images that hold a labelled helicopter, whatever the others get: WebP at
#: low quality smooths rotor blades (a GPU run on a quality-35 pack lost the held-out helicopters
#: that a continuation on the original images found, docs/detect.md), and these images are few.
RARE_QUALITY = 90
#: Image groups of a pack and their codes in ``data.npz["split"]``.
SPLITS = ("train", "val", "background")

#: The modules the trainer runs, relative to ``src/``; every sitewatch module they import must be
#: among them or in :data:`NOT_PACKED` (checked when packing).
TRAINER_MODULES = (
    "sitewatch/errors.py",
    "sitewatch/types.py",
    "sitewatch/dota.py",
    "sitewatch/detect/train/data.py",
    "sitewatch/detect/train/splits.py",
    "sitewatch/detect/train/model.py",
    "sitewatch/detect/train/losses.py",
    "sitewatch/detect/train/paste.py",
    "sitewatch/detect/train/hard.py",
    "sitewatch/detect/train/loop.py",
    "sitewatch/detect/train/pack.py",
)
#: Modules a trainer module imports inside functions that the trainer never calls.
NOT_PACKED = frozenset({"sitewatch.detect.train.export", "sitewatch.detect.train.valsets"})
_SRC = Path(__file__).resolve().parents[3]


@dataclass(slots=True)
class PackSummary:
    """What :func:`write_pack` wrote: images per split, sizes in bytes, the WebP quality used."""

    path: Path
    images: dict[str, int]
    objects: int
    data_bytes: int
    total_bytes: int
    quality: int
    init: str


# --------------------------------------------------------------------------- images and arrays


def encode_image(rgb: np.ndarray, quality: int) -> np.ndarray:
    """WebP bytes (uint8 array) of an RGB uint8 image."""
    ok, buf = cv2.imencode(
        ".webp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    )
    if not ok:
        raise ModelError("cannot encode an image as WebP (OpenCV without WebP support?)")
    return buf.reshape(-1)


def decode_image(buf: np.ndarray) -> np.ndarray:
    """RGB uint8 image from :func:`encode_image` bytes."""
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ModelError("a pack image cannot be decoded (OpenCV without WebP support?)")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def image_quality(im: CachedImage, quality: int, rare_quality: int | None = RARE_QUALITY) -> int:
    """The WebP quality an image is packed at: ``rare_quality`` for images with a labelled
    helicopter (if higher), else ``quality``."""
    if rare_quality is not None and len(im.helicopters):
        return max(quality, rare_quality)
    return quality


def pack_arrays(
    groups: dict[str, list[CachedImage]], quality: int, rare_quality: int | None = RARE_QUALITY
) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """The arrays of ``data.npz`` for cached images grouped by split.

    Images with a labelled helicopter are encoded at ``rare_quality`` where that is higher than
    ``quality`` (None: all at ``quality``).

    Keys: ``image_bytes`` (uint8, all WebP files end to end) and ``image_offsets`` (int64
    ``[N+1]``); per image ``split`` (uint8, index into :data:`SPLITS`), ``dataset`` (int16, index
    into the returned dataset list), ``shape`` (int32 ``[N, 2]`` height, width), ``axis_aligned``,
    ``has_gsd`` (bool), ``scale`` (float64, resampling factor applied), ``gsd_m`` (float64 metres
    per pixel, NaN when unknown), ``channels`` (bool ``[N, 5]``, the categories labelled); per
    object ``boxes`` (float32 ``[K, 5]`` cx, cy, length, width in pixels, heading in degrees
    clockwise from image-up), ``cats`` (int64 index into CATEGORIES), ``difficult`` (bool) and
    ``object_offsets`` (int64 ``[N+1]``).

    Returns:
        The arrays, the image names and the dataset names.
    """
    images = [(SPLITS.index(split), im) for split in SPLITS for im in groups.get(split, [])]
    datasets = sorted({im.dataset for _, im in images})
    blobs = [encode_image(im.rgb, image_quality(im, quality, rare_quality)) for _, im in images]
    arrays = {
        "image_bytes": np.concatenate(blobs) if blobs else np.zeros(0, np.uint8),
        "image_offsets": np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64),
        "split": np.array([s for s, _ in images], np.uint8),
        "dataset": np.array([datasets.index(im.dataset) for _, im in images], np.int16),
        "shape": np.array([im.rgb.shape[:2] for _, im in images], np.int32).reshape(-1, 2),
        "axis_aligned": np.array([im.axis_aligned for _, im in images], bool),
        "has_gsd": np.array([im.has_gsd for _, im in images], bool),
        "scale": np.array([im.scale for _, im in images], np.float64),
        "gsd_m": np.array([math.nan if im.gsd_m is None else im.gsd_m for _, im in images], np.float64),
        "channels": np.array([im.channels for _, im in images], bool).reshape(-1, len(CATEGORIES)),
        "boxes": np.concatenate([im.boxes for _, im in images] or [np.zeros((0, 5))])
        .astype(np.float32)
        .reshape(-1, 5),
        "cats": np.concatenate([im.cats for _, im in images] or [np.zeros(0)]).astype(np.int64),
        "difficult": np.concatenate([im.difficult for _, im in images] or [np.zeros(0)]).astype(bool),
        "object_offsets": np.concatenate([[0], np.cumsum([len(im.cats) for _, im in images])]).astype(
            np.int64
        ),
    }
    return arrays, [im.name for _, im in images], datasets


def unpack_arrays(
    arrays: dict[str, np.ndarray], names: list[str], datasets: list[str]
) -> dict[str, list[CachedImage]]:
    """Cached images by split from the arrays of :func:`pack_arrays` (images decoded)."""
    from concurrent.futures import ThreadPoolExecutor

    heli = CATEGORIES.index("helicopter")
    out: dict[str, list[CachedImage]] = {s: [] for s in SPLITS}
    io, oo = arrays["image_offsets"], arrays["object_offsets"]
    # OpenCV decodes without holding the GIL: one thread per core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        decoded = list(
            pool.map(lambda i: decode_image(arrays["image_bytes"][io[i] : io[i + 1]]), range(len(names)))
        )
    for i, name in enumerate(names):
        rgb = decoded[i]
        if tuple(rgb.shape[:2]) != tuple(int(v) for v in arrays["shape"][i]):
            raise ModelError(
                f"pack image {name}: decoded as {rgb.shape[:2]}, stored as {tuple(arrays['shape'][i])}"
            )
        cats, difficult = arrays["cats"][oo[i] : oo[i + 1]], arrays["difficult"][oo[i] : oo[i + 1]]
        gsd = float(arrays["gsd_m"][i])
        out[SPLITS[int(arrays["split"][i])]].append(
            CachedImage(
                name=name,
                dataset=datasets[int(arrays["dataset"][i])],
                rgb=rgb,
                boxes=arrays["boxes"][oo[i] : oo[i + 1]],
                cats=cats,
                difficult=difficult,
                axis_aligned=bool(arrays["axis_aligned"][i]),
                has_gsd=bool(arrays["has_gsd"][i]),
                channels=arrays["channels"][i],
                scale=float(arrays["scale"][i]),
                helicopters=np.flatnonzero((cats == heli) & ~difficult),
                gsd_m=None if math.isnan(gsd) else gsd,
            )
        )
    return out


def read_pack(pack_dir: Path) -> tuple[dict[str, Any], dict[str, list[CachedImage]]]:
    """``(pack.json contents, cached images by split)`` of a pack folder.

    Raises:
        ModelError: not a pack of this format.
    """
    pack_dir = Path(pack_dir)
    try:
        meta = json.loads((pack_dir / "pack.json").read_text(encoding="utf-8"))
        with np.load(pack_dir / "data.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise ModelError(f"{pack_dir}: not a readable training pack ({e})") from None
    if meta.get("format") != PACK_FORMAT:
        raise ModelError(
            f"{pack_dir}: training pack format {meta.get('format')!r}, this code reads {PACK_FORMAT}"
        )
    return meta, unpack_arrays(arrays, meta["names"], meta["datasets"])


# --------------------------------------------------------------------------- sources and weights


def _sitewatch_imports(path: Path) -> set[str]:
    """The sitewatch modules a source file imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n == "sitewatch" or n.startswith("sitewatch.")}


def copy_sources(lib: Path) -> list[str]:
    """Copy :data:`TRAINER_MODULES` (with empty package ``__init__`` files) and the
    ``efficientnet_lite_pytorch`` package into ``lib``; returns the files written, relative to ``lib``.

    Raises:
        ModelError: a trainer module imports a sitewatch module that is not packed.
    """
    import efficientnet_lite_pytorch

    packed = {m.removesuffix(".py").replace("/", ".") for m in TRAINER_MODULES}
    for rel in TRAINER_MODULES:
        for name in _sitewatch_imports(_SRC / rel) - packed - NOT_PACKED:
            raise ModelError(
                f"{rel} imports {name}, which the training pack does not carry (add it to TRAINER_MODULES)"
            )
    written: list[str] = []
    for rel in TRAINER_MODULES:
        target = lib / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_SRC / rel, target)
        written.append(rel)
        for parent in Path(rel).parents:
            if parent != Path(".") and not (lib / parent / "__init__.py").exists():
                (lib / parent / "__init__.py").write_text(
                    '"""Copied from sitewatch for a training pack."""\n'
                )
                written.append(str(parent / "__init__.py"))
    package = Path(efficientnet_lite_pytorch.__file__).parent
    for src in sorted(package.glob("*.py")):
        (lib / package.name).mkdir(exist_ok=True)
        shutil.copyfile(src, lib / package.name / src.name)
        written.append(f"{package.name}/{src.name}")
    return written


def initial_weights(
    init: Path | None, width: int = 64, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state_dict, origin)`` of the network a pack starts from.

    ``origin`` holds ``"init"`` (the model file or ``"imagenet"``), and for a model file
    ``"init_model"`` (its name and version) and ``"prior"`` (steps, crops and commands it has seen).

    Raises:
        ModelError: the model file is missing, unreadable or of another architecture.
    """
    import torch

    from sitewatch.detect.train.model import SitewatchNet

    torch.manual_seed(seed)
    if init is None:
        return SitewatchNet(pretrained=True, width=width).state_dict(), {"init": "imagenet"}
    from sitewatch.detect.train.export import load_onnx_weights
    from sitewatch.detect.train.loop import lifetime_from_metadata

    model = SitewatchNet(pretrained=False, width=width)
    meta = load_onnx_weights(model, Path(init))
    origin = {
        "init": str(init),
        "init_model": f"{meta.get('name', '')} {meta.get('version', '')}".strip(),
        "prior": lifetime_from_metadata(meta),
    }
    return model.state_dict(), origin


# --------------------------------------------------------------------------- the pack


def _at_most(a: int | None, b: int | None) -> int | None:
    """The smaller of two optional limits (None: no limit)."""
    return min(x for x in (a, b) if x is not None) if a is not None or b is not None else None


def write_pack(
    data_root: Path,
    out_dir: Path,
    *,
    datasets: list[str] | None = None,
    limit_images: int | None = None,
    init: Path | None = None,
    quality: int = DEFAULT_QUALITY,
    max_mib: float = MAX_PACK_MIB,
    val_images: int | None = None,
    half_init: bool = False,
    dataset_weights: dict[str, float] | None = None,
    trainer: dict[str, Any] | None = None,
    command: str = "",
) -> PackSummary:
    """Write a training pack (see the module docstring) into the new folder ``out_dir``.

    The pack is assembled in a sibling folder and renamed into place at the end, so an
    interrupted or failed run leaves nothing at ``out_dir``.

    Args:
        data_root: the labelled data tree (e.g. ``../shared/data``).
        out_dir: the pack folder; must not exist or be empty.
        datasets, limit_images: as :func:`~sitewatch.detect.train.data.load_split` (a subset, for tests).
        init: start from this exported model (ONNX) instead of the ImageNet backbone.
        quality: WebP quality tried first; lowered by :data:`QUALITY_STEP` until ``data.npz``
            fits in ``max_mib`` MiB.
        val_images: at most this many validation images per dataset (they serve only the
            trainer's before/after validation loss; fewer leave room for training images).
        half_init: store the initial weights in float16 (half the size of ``init.pt``; the
            trainer loads them into its float32 network: relative change below 1e-3).
        dataset_weights: sampling-share overrides the trainer applies by default.
        trainer: defaults of ``train_pack.py`` (``lr``, ``size``, ``batch``, ...).
        command: the command line that made the pack (kept in the training history).

    Raises:
        ModelError: ``out_dir`` is not empty, the images do not fit at :data:`MIN_QUALITY`, or
            the initial model cannot be restored.
    """
    from sitewatch.detect.train.data import WORKING_GSD_M, load_split
    from sitewatch.detect.train.paste import load_empty_aprons

    data_root, out_dir = Path(data_root), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ModelError(f"{out_dir}: already exists and is not empty; give a new folder for the pack")
    groups = {
        "train": load_split(data_root, "train", datasets, limit_images),
        "val": load_split(data_root, "val", datasets, _at_most(limit_images, val_images)),
        "background": load_empty_aprons(data_root),
    }
    if not groups["train"]:
        raise ModelError(f"{data_root}: no training images")
    limit = int(max_mib * 2**20)
    q = quality
    while True:
        arrays, names, ds_names = pack_arrays(groups, q)
        size = sum(a.nbytes for a in arrays.values())
        if size <= limit:
            break
        if q - QUALITY_STEP < MIN_QUALITY:
            raise ModelError(
                f"the training images need {size / 2**20:.1f} MiB at WebP quality {q}, over the "
                f"{max_mib:g} MiB limit"
            )
        log.info(
            "images take %.1f MiB at WebP quality %d, over %g MiB: trying %d",
            size / 2**20,
            q,
            max_mib,
            q - QUALITY_STEP,
        )
        q -= QUALITY_STEP
    import torch

    state, origin = initial_weights(init)
    if half_init:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # numpy's hints take a name in **arrays for the allow_pickle flag
        np.savez(tmp / "data.npz", **arrays)  # type: ignore[arg-type]
        torch.save(state, tmp / "init.pt")
        copy_sources(tmp / "lib")
        shutil.copyfile(Path(__file__).with_name("train_pack.py"), tmp / "train_pack.py")
        meta = {
            "format": PACK_FORMAT,
            "command": command,
            "data_root": str(data_root),
            "working_gsd_m": WORKING_GSD_M,
            "encoding": "webp",
            "quality": q,
            "rare_quality": RARE_QUALITY,
            "rare_images": sum(image_quality(im, q) != q for g in groups.values() for im in g),
            "names": names,
            "datasets": ds_names,
            "images": {s: len(g) for s, g in groups.items()},
            "objects": int(len(arrays["cats"])),
            "dataset_weights": dict(dataset_weights or {}),
            "trainer": dict(trainer or {}),
            "init_dtype": "float16" if half_init else "float32",
            **origin,
        }
        (tmp / "pack.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    summary = PackSummary(
        out_dir,
        meta["images"],
        meta["objects"],
        (out_dir / "data.npz").stat().st_size,
        total,
        q,
        origin["init"],
    )
    log.info(
        "wrote %s: %s images, %.1f MiB of images at WebP quality %d",
        out_dir,
        summary.images,
        summary.data_bytes / 2**20,
        q,
    )
    return summary
