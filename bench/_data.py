"""The labelled data tree argument of the benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path


def data_tree(value: str) -> Path:
    """An argparse ``type``: the labelled imagery tree (a folder with ``classes.csv``), else one
    line naming the path and what is wrong with it (argparse exits with status 2)."""
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{path}: not a folder (the labelled data tree, e.g. ../shared/data)"
        )
    if not (path / "classes.csv").is_file():
        raise argparse.ArgumentTypeError(f"{path}: no classes.csv here; is this the labelled data tree?")
    return path
