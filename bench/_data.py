"""The labelled data tree argument of the benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

from sitewatch.dota import require_data_tree
from sitewatch.errors import SitewatchError


def data_tree(value: str) -> Path:
    """An argparse ``type``: the labelled imagery tree (:func:`sitewatch.dota.require_data_tree`),
    else one line naming the path (argparse exits with status 2)."""
    try:
        return require_data_tree(Path(value))
    except SitewatchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
