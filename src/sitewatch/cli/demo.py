"""``sitewatch demo``: the whole pipeline offline on two passes of one site.

Without data it makes SIMULATED GeoTIFF passes of Hmeimim with the scenario generator; with
``--data DIR`` (the labelled imagery tree) it uses a real Airbus Pléiades same-site pair with a
large change in aircraft count, stored as two pixel-space passes at 0.5 m GSD with SYNTHETIC dates.
The demo keeps its own store under the output folder. It runs as a list of steps
(:data:`STEPS`), each a function of the :class:`DemoState`, so more steps (a report) slot in.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from shapely.geometry import Polygon, box

from sitewatch.cli.console import err_console, out_console, progress

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DemoSite:
    """A site for the demo when the watchlist has none to offer (same fields scanning reads)."""

    name: str
    title: str
    aoi: Polygon
    priors: dict[str, Any] = dataclasses.field(default_factory=dict)
    zones: dict[str, Polygon] = dataclasses.field(default_factory=dict)
    kind: str = "airbase"


@dataclasses.dataclass
class DemoState:
    """What the steps share: inputs, the store, and what each step produced."""

    out: Path
    data: Path | None
    store: Any = None
    site: Any = None
    scenes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    passes: list[Any] = dataclasses.field(default_factory=list)
    comparison: Any = None
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    simulated: bool = False


#: Hmeimim air base, used when the watchlist is not installed (WGS84 lon/lat of the runway centre).
_HMEIMIM_LONLAT = (35.9487, 35.4011)

#: Side of the simulated scene, metres (2600 x 2600 px at 0.5 m: a minute or less on one CPU).
_SIM_EXTENT_M = 1300.0


def _hmeimim_demo_site() -> DemoSite:
    try:
        from sitewatch.sites import get_site

        centre = get_site("hmeimim").aoi.centroid
        lon, lat = centre.x, centre.y
    except (ImportError, LookupError):
        lon, lat = _HMEIMIM_LONLAT
    # an AOI over 90 % of the simulated scene's side
    half_lat = 0.45 * _SIM_EXTENT_M / 111_320.0
    half_lon = half_lat / math.cos(math.radians(lat))
    aoi = box(lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)
    return DemoSite("hmeimim-sim", "Hmeimim air base (SIMULATED imagery)", aoi)


def step_imagery(st: DemoState) -> None:
    """Choose the two scenes: a real labelled pair from --data, else SIMULATED passes."""
    if st.data is not None:
        st.scenes, st.site = _real_pair(st.data)
        names = " and ".join(Path(sc["path"]).name for sc in st.scenes)
        err_console.print(f"real Airbus Pléiades pair {names}: pixel space at 0.5 m GSD; dates are SYNTHETIC (a then b)")
        return
    from sitewatch.imagery.simulate import simulate_site

    st.simulated = True
    st.site = _hmeimim_demo_site()
    err_console.print("[bold red]SIMULATED[/] imagery: generating two passes of Hmeimim (no real data given)")
    sc = simulate_site(st.out / "imagery", st.site.aoi, site=st.site.name, extent_m=_SIM_EXTENT_M, n_aircraft=12, departed=5, arrived=2)
    st.scenes = [
        {"path": p.path, "gsd_m": None, "acquired": None, "truth": p.counts(), "truth_source": "simulation"} for p in sc.passes
    ]


def _real_pair(data: Path) -> tuple[list[dict[str, Any]], DemoSite]:
    root = data / "airbus-pleiades"
    pairs_csv = root / "pairs.csv"
    if not pairs_csv.is_file():
        raise click.UsageError(f"{pairs_csv} not found: --data must be the labelled imagery tree (with airbus-pleiades/)")
    with pairs_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r["n_aircraft_a"] and r["n_aircraft_b"]]
    best = max(rows, key=lambda r: (abs(int(r["n_aircraft_a"]) - int(r["n_aircraft_b"])), r["image_a"]))
    dates = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC)]
    scenes = []
    for key, when in zip(("a", "b"), dates, strict=True):
        img = root / best[f"subdir_{key}"] / best[f"image_{key}"]
        scenes.append(
            {
                "path": img,
                "gsd_m": 0.5,
                "acquired": when,
                "acquired_note": "SYNTHETIC date (the source gives none); order a then b",
                "truth": _label_counts(root / "labels" / (img.stem + ".txt")),
                "truth_source": "airbus-pleiades labels",
            }
        )
    site = DemoSite("airbus-demo", f"Airbus Pléiades airport pair {Path(best['image_a']).stem[:8]}", box(0, 0, 0, 0))
    return scenes, site


def _label_counts(label: Path) -> dict[str, int]:
    from sitewatch.dota import iter_dataset  # noqa: F401 - the reader documents the format

    n = n_difficult = 0
    for line in label.read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 10:
            n += 1
            n_difficult += parts[9] == "1"
    return {"aircraft": n, "aircraft_not_difficult": n - n_difficult}


def step_scan(st: DemoState) -> None:
    """Scan both scenes into the demo store (progress bars)."""
    from sitewatch.imagery import open_scene
    from sitewatch.pipeline import load_default_detector, scan
    from sitewatch.store import open_store

    st.store = open_store(f"sqlite:///{st.out / 'demo-store.db'}")
    detector = load_default_detector()
    for sc in st.scenes:
        with open_scene(sc["path"], gsd_m=sc["gsd_m"], acquired=sc["acquired"]) as scene, progress() as bar:
            task = bar.add_task(f"scanning {Path(sc['path']).name}", total=None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = scan(scene, st.site, detector, st.store, progress=lambda d, t, k=task: bar.update(k, completed=d, total=t))
        st.passes.append(p)
        from sitewatch.cli.scan import describe

        out_console.print(describe(p))


def step_inventory(st: DemoState) -> None:
    """Show counts per category per pass, and detections vs ground truth."""
    from sitewatch.cli.inventory import inventory_table
    from sitewatch.pipeline import inventory

    inv = inventory(st.passes, "category")
    out_console.print(inventory_table(st.site.name, inv))
    st.summary["inventory"] = inv
    truth = []
    for sc, p in zip(st.scenes, st.passes, strict=True):
        found = p.counts()["aircraft"]
        expected = sc["truth"]["aircraft"]
        truth.append({"pass_id": p.id, "detected_aircraft": found, "true_aircraft": expected, "truth": sc["truth"], "source": sc["truth_source"]})
        out_console.print(f"pass {p.id}: {found} aircraft detected, {expected} in the {sc['truth_source']}")
    st.summary["truth"] = truth


def step_compare(st: DemoState) -> None:
    """Changes between the two passes (when the compare stage is installed)."""
    try:
        from sitewatch.compare import compare_passes
    except ImportError:
        out_console.print("changes: compare stage not installed; counts above give the net change")
        return
    a, b = st.passes
    st.comparison = compare_passes(a, b, st.site, read_pixels=True)
    out_console.print(f"changes: {st.comparison.sentence}")
    st.summary["comparison"] = st.comparison.to_dict()


def step_export(st: DemoState) -> None:
    """GeoJSON, GeoParquet and KML of all detections (KML only for georeferenced passes)."""
    from sitewatch.report.exports import export_passes

    written = []
    for fmt, suffix in (("geojson", "geojson"), ("geoparquet", "parquet"), ("kml", "kml")):
        if fmt == "kml" and not any(p.crs for p in st.passes):
            continue  # pixel-space passes have no ground position
        written.append(str(export_passes(st.passes, st.site, fmt, st.out / f"{st.site.name}-detections.{suffix}")))
    st.summary["exports"] = written


def step_summary(st: DemoState) -> None:
    """Write summary.json with the passes, counts, truth and outputs."""
    from sitewatch.cli.scan import summary

    st.summary.update(
        {
            "SIMULATED": st.simulated,
            "site": st.site.name,
            "site_title": st.site.title,
            "store": st.store.url if st.store else None,
            "passes": [summary(p) for p in st.passes],
            "scenes": [{k: str(v) for k, v in sc.items() if k != "truth"} for sc in st.scenes],
        }
    )
    path = st.out / "summary.json"
    path.write_text(json.dumps(st.summary, indent=1, default=str))
    out_console.print(f"outputs in {st.out}/ ({', '.join(sorted(p.name for p in st.out.iterdir()))})")


#: The demo, in order. Each step reads and extends the :class:`DemoState`.
STEPS: list[Callable[[DemoState], None]] = [step_imagery, step_scan, step_inventory, step_compare, step_export, step_summary]


def run_demo(out: Path, data: Path | None = None, steps: list[Callable[[DemoState], None]] | None = None) -> DemoState:
    """Run the demo steps into ``out``; return the final state (store left open for callers)."""
    out.mkdir(parents=True, exist_ok=True)
    st = DemoState(out=out, data=data)
    for step in steps or STEPS:
        err_console.rule(f"[bold]{(step.__doc__ or step.__name__).splitlines()[0]}")
        step(st)
    return st


@click.command()
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None, help="Labelled imagery tree (e.g. ../shared/data) for a real pair.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("sitewatch-demo-out"), show_default=True, help="Output folder.")
def command(data: Path | None, out: Path) -> None:
    """Run the pipeline on two passes of one site: scan, inventory, changes, exports.

    Offline. Without --data the imagery is SIMULATED. Example: sitewatch demo --data ../shared/data
    """
    st = run_demo(out, data)
    if st.store is not None:
        st.store.close()
