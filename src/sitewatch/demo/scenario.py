"""What the demo runs on: the SIMULATED Hmeimim scenario, the real Pléiades pair and their text reports."""

from __future__ import annotations

import csv
import dataclasses
import math
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from shapely.geometry import Polygon, box
from shapely.ops import unary_union

from sitewatch.errors import SitewatchError


@dataclasses.dataclass
class DemoSite:
    """The site of the real-pair demo: the source gives no location, so it has no ground AOI.

    Same fields as :class:`sitewatch.sites.Site` that scanning, claims, assessment and the report read.
    The passes are pixel-space (not georeferenced), so the empty AOI is never used to cut a scene.
    """

    name: str
    title: str
    aoi: Polygon
    aliases: list[str] = dataclasses.field(default_factory=list)
    priors: dict[str, Any] = dataclasses.field(default_factory=dict)
    zones: dict[str, Polygon] = dataclasses.field(default_factory=dict)
    kind: str = "airbase"
    country: str = ""
    notes: str = ""
    sources: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DemoReport:
    """The FICTIONAL text report the demo ingests as claims (package data of :mod:`sitewatch.demo_data`)."""

    resource: str
    source: str
    title: str
    published: datetime
    reliability: str = "C"

    def text(self) -> str:
        return resources.files("sitewatch.demo_data").joinpath(self.resource).read_text("utf-8")


class DemoScene(TypedDict):
    """One scene the demo scans, with the object counts it is checked against (the keys of summary.json)."""

    path: Path
    gsd_m: float | None
    acquired: datetime | None
    acquired_note: NotRequired[str]
    truth: dict[str, int]
    truth_source: str
    pairs_csv: NotRequired[dict[str, str]]


class SimCounts(TypedDict, total=False):
    """Object counts of a simulation (keyword arguments of :func:`sitewatch.imagery.simulate_site`)."""

    n_aircraft: int
    departed: int
    arrived: int
    n_helicopters: int
    n_vehicles: int


#: The SIMULATED Hmeimim scenario: 15 aircraft, 11 leave, one Il-76 arrives (5 left); 4 → 3 helicopters.
SIM_SCENARIO: SimCounts = {
    "n_aircraft": 15,
    "departed": 11,
    "arrived": 1,
    "n_helicopters": 4,
    "n_vehicles": 8,
}

#: The SIMULATED watch demo: pass 2 as in :data:`SIM_SCENARIO` (11 of 15 aircraft leave, one Il-76 comes);
#: pass 3 is drawn from the same first pass with 2 aircraft gone and 8 arrived.
WATCH_RETURN: SimCounts = {"departed": 2, "arrived": 8}

#: Margin around the simulated zones, metres.
_SIM_MARGIN_M = 60.0

#: The real pair with a large drop in labelled aircraft (airbus-pleiades/pairs.csv: 20 → 5).
REAL_PAIR = ("03f84930-e2be-4c19-9afc-0dc26d02538e.jpg", "791377f0-a01c-4fc3-b6e9-151b6cb80fdf.jpg")

#: SYNTHETIC acquisition dates of the real pair (the source gives none; the order is a then b).
REAL_DATES = (datetime(2024, 1, 1, 10, 0, tzinfo=UTC), datetime(2024, 1, 15, 10, 0, tzinfo=UTC))

REPORTS = {
    "simulated": DemoReport("hmeimim_simulated_report.txt", "Demo Wire (FICTIONAL)",
                            "Aircraft leave Hmeimim air base (FICTIONAL demo text)",
                            datetime(2024, 3, 5, 12, 0, tzinfo=UTC)),
    "real": DemoReport("airfield_p_report.txt", "Demo Wire (FICTIONAL)",
                       "Aircraft leave Airfield P (FICTIONAL demo text)",
                       datetime(2024, 1, 16, 12, 0, tzinfo=UTC)),
}  # fmt: skip


def simulation_bounds(site: Any, margin_m: float = _SIM_MARGIN_M) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the simulated scene, degrees: the largest apron and the helicopter zones.

    Simulating the whole AOI (about 10 km² at Hmeimim) would take minutes to scan on one CPU; the
    part of it that holds the parking areas is what the scenario changes.

    Raises:
        SitewatchError: the site has no apron zone.
    """
    aprons = sorted((z for n, z in site.zones.items() if "apron" in n.lower()), key=lambda z: -z.area)
    if not aprons:
        raise SitewatchError(
            f"site '{site.name}' has no apron zone in the watchlist: the simulated demo needs one"
        )
    helis = [z for n, z in site.zones.items() if "helicopter" in n.lower()]
    west, south, east, north = unary_union([aprons[0], *helis]).bounds
    d_lat = margin_m / 111_320.0
    d_lon = d_lat / max(0.1, math.cos(math.radians((south + north) / 2)))
    return west - d_lon, south - d_lat, east + d_lon, north + d_lat


def real_pair(data: Path) -> tuple[list[DemoScene], DemoSite]:
    """The scenes of :data:`REAL_PAIR` in the labelled imagery tree ``data``, and their demo site.

    Raises:
        SitewatchError: ``data`` has no ``airbus-pleiades/pairs.csv``, or it does not list the pair.
    """
    root = data / "airbus-pleiades"
    pairs_csv = root / "pairs.csv"
    if not pairs_csv.is_file():
        raise SitewatchError(
            f"{pairs_csv} not found: --data must be the labelled imagery tree (with airbus-pleiades/)"
        )
    with pairs_csv.open() as f:
        row = next((r for r in csv.DictReader(f) if (r["image_a"], r["image_b"]) == REAL_PAIR), None)
    if row is None:
        raise SitewatchError(f"{pairs_csv}: the demo pair {REAL_PAIR[0]} → {REAL_PAIR[1]} is not listed")
    scenes: list[DemoScene] = []
    for key, when in zip(("a", "b"), REAL_DATES, strict=True):
        img = root / row[f"subdir_{key}"] / row[f"image_{key}"]
        scenes.append(
            {
                "path": img,
                "gsd_m": 0.5,
                "acquired": when,
                "acquired_note": "SYNTHETIC date (the source gives none); order a then b",
                "truth": label_counts(root / "labels" / (img.stem + ".txt")),
                "truth_source": "airbus-pleiades labels",
                "pairs_csv": {
                    k: row[k]
                    for k in ("n_aircraft_a", "n_aircraft_b", "shift_x_px_fullres", "shift_y_px_fullres")
                },
            }
        )
    site = DemoSite(
        "airfield-p",
        "Airfield P (real Airbus Pléiades sample pair; name invented, location not given by the source)",
        box(0, 0, 0, 0),
        aliases=["Airfield P"],
        notes=(
            "Demo site: the Airbus Pléiades sample gives no location; passes are in image pixels at 0.5 m "
            "GSD, dates are SYNTHETIC."
        ),
        sources=["https://github.com/khlaifiabilel/airbus-aircraft-detection (CC BY-NC-SA 4.0)"],
    )
    return scenes, site


def label_counts(label: Path, image: Path | None = None) -> dict[str, int]:
    """Labelled objects per category in a DOTA labelTxt file (plus aircraft not marked difficult)."""
    from sitewatch.dota import load_class_map, parse_label_file

    root = label.parent.parent
    objs = parse_label_file(
        label, image or label, root.name, load_class_map(root.parent / "classes.csv")
    ).objects
    out: dict[str, int] = {}
    for o in objs:
        out[o.category] = out.get(o.category, 0) + 1
    out["aircraft_not_difficult"] = sum(1 for o in objs if o.category == "aircraft" and not o.difficult)
    out.setdefault("aircraft", 0)
    return out
