"""CPU time of one training crop (the data loader's work per sample), by stage.

Loads the training images of the data tree (``--limit-images`` per dataset), builds the crop
sampler as ``sitewatch train`` does (copy-paste chips and backgrounds included), draws ``--crops``
crops on one core and prints milliseconds per crop, overall and for the stages that dominate
(the warp, the colour jitter, the targets), from a profile of the same draws.

Usage::

    python bench/train_crops.py ../shared/data
    python bench/train_crops.py ../shared/data --crops 600 --limit-images 40
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import cv2

from _data import data_tree
from sitewatch.detect.train.data import CropSampler, load_split
from sitewatch.detect.train.paste import backgrounds_for, extract_chips, load_empty_aprons

STAGES = ("warpAffine", "_photometric", "_targets", "paste_chips")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=data_tree)
    ap.add_argument("--crops", type=int, default=400)
    ap.add_argument("--limit-images", type=int, default=25, help="training images per dataset")
    ap.add_argument("--size", type=int, default=384)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # as in a loader process
    images = load_split(args.data_dir, "train", limit=args.limit_images)
    chips = extract_chips(images)
    backgrounds = backgrounds_for(images, load_empty_aprons(args.data_dir))
    sampler = CropSampler(images, args.size, 0, chips=chips, backgrounds=backgrounds)
    for i in range(20):  # warm-up
        sampler.sample(i)
    prof = cProfile.Profile()
    t0 = time.process_time()
    prof.enable()
    for i in range(args.crops):
        sampler.sample(1000 + i)
    prof.disable()
    cpu = time.process_time() - t0
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    print(
        f"{len(images)} training images, {len(chips)} chips, {len(backgrounds)} backgrounds; "
        f"{args.crops} crops of {args.size} px on one core"
    )
    print(
        f"CPU time per crop: {1000 * cpu / args.crops:.2f} ms ({args.crops / cpu:.0f} crops/s per loader process)"
    )
    for (_, _, name), (_, _, _, cumulative, _) in sorted(stats.items(), key=lambda kv: -kv[1][3]):
        if name in STAGES or name.strip("<>{}").split()[-1] in STAGES:
            print(f"  {name}: {1000 * cumulative / args.crops:.2f} ms per crop (profiled)")


if __name__ == "__main__":
    main()
