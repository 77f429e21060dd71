"""The held-out validation images, per dataset, for evaluation runs.

``python -m sitewatch.detect.train.valsets OUTDIR [--data ../shared/data]`` writes

* ``OUTDIR/<dataset>.txt``: the validation image paths (one per line, absolute);
* ``OUTDIR/<dataset>/images`` and ``OUTDIR/<dataset>/labels``: symbolic links to those images
  and their label files, i.e. a DOTA-layout folder holding only the validation images, plus a
  link ``OUTDIR/classes.csv``, so any DOTA-folder evaluation runs on exactly the held-out set.

No pixel data is copied.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sitewatch.detect.train.data import DATASET_WEIGHTS
from sitewatch.detect.train.splits import split_of
from sitewatch.dota import LabelledImage, iter_dataset

DEFAULT_DATA = Path(__file__).resolve().parents[5] / "shared" / "data"


def val_images(data_root: Path, datasets: list[str] | None = None) -> dict[str, list[LabelledImage]]:
    """``dataset -> validation images`` (datasets without any validation image are left out)."""
    out: dict[str, list[LabelledImage]] = {}
    for ds in datasets or sorted(DATASET_WEIGHTS):
        root = Path(data_root) / ds
        if not root.is_dir():
            continue
        items = [im for im in iter_dataset(root) if split_of(im) == "val"]
        if items:
            out[ds] = items
    return out


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve())


def write_valsets(data_root: Path, out_dir: Path, datasets: list[str] | None = None) -> dict[str, Path]:
    """Write the lists and DOTA-layout link folders; returns ``dataset -> list file``."""
    data_root, out_dir = Path(data_root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (data_root / "classes.csv").exists():
        _link(data_root / "classes.csv", out_dir / "classes.csv")
    written: dict[str, Path] = {}
    for ds, items in val_images(data_root, datasets).items():
        listing = out_dir / f"{ds}.txt"
        listing.write_text("".join(f"{im.image_path.resolve()}\n" for im in items))
        for sub in ("images", "labels"):
            (out_dir / ds / sub).mkdir(parents=True, exist_ok=True)
        for im in items:
            _link(im.image_path, out_dir / ds / "images" / im.image_path.name)
            label = im.image_path.parent.parent / "labels" / f"{im.name}.txt"
            _link(label, out_dir / ds / "labels" / label.name)
        written[ds] = listing
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sitewatch.detect.train.valsets", description=__doc__.split("\n")[0]
    )
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SITEWATCH_DATA", DEFAULT_DATA)))
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"{args.data}: data tree not found (use --data)")
    for ds, path in write_valsets(args.data, args.outdir).items():
        n = len(path.read_text().splitlines())
        print(f"{ds}: {n} validation images -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
