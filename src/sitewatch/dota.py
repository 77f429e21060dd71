"""Read labelled imagery in DOTA labelTxt layout (``<root>/images/*``, ``<root>/labels/*.txt``).

A label file holds ``imagesource:<src>``, ``gsd:<m/px or null>``, then one object per line:
``x1 y1 x2 y2 x3 y3 x4 y4 <class> <difficult>`` in pixel coordinates of the image.
Fine classes map to :data:`~sitewatch.types.CATEGORIES` (or ``"ignore"``) through a
``classes.csv`` (``dataset,fine_class,category,count``); without one, a fine class that is
already a category name maps to itself.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sitewatch.errors import SceneError, SitewatchError
from sitewatch.types import CATEGORIES, OrientedBox

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: Datasets whose labels are axis-aligned boxes (each one's SOURCE.md): their heading carries no
#: information, and a detection is matched to them by its axis-aligned envelope.
AXIS_ALIGNED_DATASETS = frozenset(
    {"airbus-pleiades", "hrplanes", "gdit-airport", "ships-google-earth", "simd-helicopters"}
)


@dataclass(frozen=True, slots=True)
class LabelledObject:
    """One labelled object: oriented box (pixels), category, fine class, difficult flag."""

    box: OrientedBox
    category: str  # one of CATEGORIES or "ignore"
    fine_class: str
    difficult: bool
    corners: tuple[tuple[float, float], ...]


@dataclass(slots=True)
class LabelledImage:
    """An image and its labels.

    Attributes:
        image_path: the image file.
        dataset: dataset name (the folder name of the DOTA root).
        gsd_m: metres per pixel from the label header, or None.
        objects: labelled objects.
        axis_aligned: True when the source gives axis-aligned boxes only (heading unknown).
    """

    image_path: Path
    dataset: str
    gsd_m: float | None
    objects: list[LabelledObject] = field(default_factory=list)
    axis_aligned: bool = False
    source: str = ""

    @property
    def name(self) -> str:
        return self.image_path.stem

    def counts(self, include_difficult: bool = False) -> dict[str, int]:
        """Objects per category (difficult ones excluded unless asked)."""
        out = dict.fromkeys(CATEGORIES, 0)
        for o in self.objects:
            if o.category in out and (include_difficult or not o.difficult):
                out[o.category] += 1
        return out


def require_data_tree(data: Path) -> Path:
    """``data`` when it is a labelled data tree (a folder with ``classes.csv``).

    Raises:
        SitewatchError: it is not (one line naming the path).
    """
    if not (Path(data) / "classes.csv").is_file():
        raise SitewatchError(f"{data}: not a sitewatch data tree (no classes.csv)")
    return Path(data)


def load_class_map(classes_csv: Path | None) -> dict[tuple[str, str], str]:
    """``(dataset, fine_class) -> category`` from a classes.csv, or {} when absent."""
    if classes_csv is None or not classes_csv.exists():
        return {}
    with classes_csv.open(newline="") as f:
        return {(r["dataset"], r["fine_class"]): r["category"] for r in csv.DictReader(f)}


def _category(dataset: str, fine: str, class_map: dict[tuple[str, str], str]) -> str:
    if (dataset, fine) in class_map:
        return class_map[(dataset, fine)]
    if fine in CATEGORIES:
        return fine
    aliases = {
        "plane": "aircraft",
        "airplane": "aircraft",
        "ship": "ship",
        "boat": "ship",
        "car": "small-vehicle",
    }
    return aliases.get(fine, "ignore")


def parse_label_file(
    label_path: Path, image_path: Path, dataset: str, class_map: dict[tuple[str, str], str] | None = None
) -> LabelledImage:
    """Parse one DOTA label file.

    Raises:
        SceneError: the file cannot be read or a line is malformed.
    """
    class_map = class_map or {}
    try:
        lines = label_path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SceneError(f"{label_path}: cannot read label file ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise SceneError(f"{label_path}: not a text label file (byte {e.start} is not UTF-8)") from None
    gsd: float | None = None
    source = ""
    objects: list[LabelledObject] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("imagesource:"):
            source = line.split(":", 1)[1]
            continue
        if line.startswith("gsd:"):
            value = line.split(":", 1)[1].strip()
            try:
                gsd = float(value) if value and value.lower() not in ("null", "none") else None
            except ValueError:
                gsd = None
            continue
        parts = line.split()
        if len(parts) < 9:
            raise SceneError(f"{label_path}:{n}: expected 8 coordinates and a class, got {line!r}")
        try:
            xy = [float(v) for v in parts[:8]]
        except ValueError as e:
            raise SceneError(f"{label_path}:{n}: bad coordinate in {line!r}") from e
        fine = parts[8]
        difficult = len(parts) > 9 and parts[9] == "1"
        corners = tuple((xy[i], xy[i + 1]) for i in range(0, 8, 2))
        box = OrientedBox.from_corners(list(corners))
        objects.append(LabelledObject(box, _category(dataset, fine, class_map), fine, difficult, corners))
    if gsd is not None and not (0.01 <= gsd <= 100.0):
        log.debug("%s: implausible GSD %s in header ignored", label_path, gsd)
        gsd = None
    return LabelledImage(image_path, dataset, gsd, objects, dataset in AXIS_ALIGNED_DATASETS, source)


def iter_dataset(root: Path, classes_csv: Path | None = None) -> Iterator[LabelledImage]:
    """Yield the labelled images of one DOTA-layout folder, sorted by name.

    ``classes_csv`` defaults to ``<root>/../classes.csv`` when that exists.

    Raises:
        SceneError: ``root`` has no ``images/`` and ``labels/`` folders.
    """
    root = Path(root)
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise SceneError(f"{root}: not a DOTA-format folder (needs images/ and labels/)")
    if classes_csv is None and (root.parent / "classes.csv").exists():
        classes_csv = root.parent / "classes.csv"
    class_map = load_class_map(classes_csv)
    dataset = root.name
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    for label in sorted(labels_dir.glob("*.txt")):
        image = images.get(label.stem)
        if image is None:
            log.warning("%s: no image for this label file, skipped", label)
            continue
        yield parse_label_file(label, image, dataset, class_map)
