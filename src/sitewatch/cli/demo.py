"""``sitewatch demo``: the whole pipeline offline on two passes of one site, ending with a report.

Without data it makes SIMULATED GeoTIFF passes of the watchlist's Hmeimim site: the scenario
generator draws the runway, aprons and helicopter area where the watchlist zones put them and
parks aircraft on the aprons; between the passes most aircraft leave. With ``--data DIR`` (the
labelled imagery tree) it uses a real Airbus Pléiades same-site pair with a large drop in aircraft
(20 → 5 labelled), stored as two pixel-space passes at 0.5 m GSD of a demo site with an invented
name ("Airfield P": the source gives no location) and SYNTHETIC dates.

Either way the demo keeps its own store under the output folder, scans both passes, shows the
inventory and the changes, ingests a short FICTIONAL news-style text report as claims, assesses
the site and writes the report (HTML, PDF when WeasyPrint works, and the JSON twin). It runs as a
list of steps (:data:`STEPS`), each a function of the :class:`DemoState`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypedDict

import click
from shapely.geometry import Polygon, box
from shapely.ops import unary_union

from sitewatch.cli.console import err_console, out_console, progress, task_progress
from sitewatch.cli.options import output_option
from sitewatch.errors import SitewatchError

log = logging.getLogger(__name__)


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
    report_text: DemoReport | None = None
    claims: list[Any] = dataclasses.field(default_factory=list)
    assessment: Any = None
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    simulated: bool = False
    detector: Any = None


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
    """(west, south, east, north) of the simulated scene: the largest apron and the helicopter zones.

    Simulating the whole AOI (about 10 km² at Hmeimim) would take minutes to scan on one CPU; the
    part of it that holds the parking areas is what the scenario changes.
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


def step_imagery(st: DemoState) -> None:
    """Choose the two scenes: a real labelled pair from --data, else SIMULATED passes of Hmeimim."""
    if st.data is not None:
        st.scenes, st.site = _real_pair(st.data)
        st.report_text = REPORTS["real"]
        names = " → ".join(Path(sc["path"]).name for sc in st.scenes)
        err_console.print(
            f"real Airbus Pléiades pair {names}: pixel space at 0.5 m GSD, place name invented, dates "
            "SYNTHETIC"
        )
        return
    from sitewatch.imagery.simulate import simulate_site
    from sitewatch.sites import get_site

    st.simulated = True
    st.site = get_site("hmeimim")
    st.report_text = REPORTS["simulated"]
    err_console.print(
        f"[bold red]SIMULATED[/] imagery: two passes of {st.site.title} drawn on the watchlist's zones (no "
        "real data given)"
    )
    with progress() as bar:
        bar.add_task("simulating two passes", total=None)
        sc = simulate_site(st.out / "imagery", st.site.aoi, site=st.site.name, zones=st.site.zones,
                           bounds=simulation_bounds(st.site), **SIM_SCENARIO)  # fmt: skip
    st.scenes = [
        {"path": p.path, "gsd_m": None, "acquired": None, "truth": p.counts(), "truth_source": "simulation"}
        for p in sc.passes
    ]


def _real_pair(data: Path) -> tuple[list[dict[str, Any]], DemoSite]:
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
    scenes = []
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


def step_scan(st: DemoState) -> None:
    """Scan both scenes into the demo store (progress bars)."""
    from sitewatch.cli.scan import describe
    from sitewatch.imagery import open_scene
    from sitewatch.pipeline import load_default_detector, scan
    from sitewatch.store import open_store

    st.store = open_store(f"sqlite:///{st.out / 'demo-store.db'}")
    st.detector = load_default_detector()
    for sc in st.scenes:
        with open_scene(sc["path"], gsd_m=sc["gsd_m"], acquired=sc["acquired"]) as scene, progress() as bar:
            task = bar.add_task(f"scanning {Path(sc['path']).name}", total=None)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                p = scan(
                    scene,
                    st.site,
                    st.detector,
                    st.store,
                    progress=task_progress(bar, task),
                )
        for w in caught:
            if "cover" in str(w.message):
                err_console.print(f"[yellow]note:[/] {w.message}")
        st.passes.append(p)
        out_console.print(describe(p))


def step_inventory(st: DemoState) -> None:
    """Inventory per pass, and detector counts against the labels / simulation truth."""
    from sitewatch.cli.inventory import inventory_table
    from sitewatch.pipeline import inventory

    inv = inventory(st.passes, "category")
    out_console.print(inventory_table(st.site.name, inv))
    st.summary["inventory"] = inv
    truth = []
    for sc, p in zip(st.scenes, st.passes, strict=True):
        found = p.counts()["aircraft"]
        expected = sc["truth"]["aircraft"]
        truth.append(
            {
                "pass_id": p.id,
                "detected_aircraft": found,
                "true_aircraft": expected,
                "truth": sc["truth"],
                "source": sc["truth_source"],
            }
        )
        out_console.print(f"pass {p.id}: detector {found} aircraft, {sc['truth_source']} {expected}")
    if not getattr(getattr(st.detector, "info", None), "trained", True):
        err_console.print(
            "[yellow]note:[/] the bundled detector model is an untrained placeholder: detections are not "
            "meaningful yet"
        )
    st.summary["truth"] = truth


def step_compare(st: DemoState) -> None:
    """Changes between the two passes (co-registration, object matching, pixel change)."""
    from sitewatch.compare import compare_passes

    a, b = st.passes
    with progress() as bar:
        bar.add_task("comparing the passes", total=None)
        st.comparison = compare_passes(a, b, st.site, read_pixels=True)
    c = st.comparison
    if c.registration is not None:
        r = c.registration
        out_console.print(
            f"co-registration: shift {r.shift_x_px:+.1f}, {r.shift_y_px:+.1f} px ({r.method}, quality "
            f"{r.quality:.2f})"
        )
    moves = {
        cat: {s: n for s, n in v.items() if n}
        for cat, v in c.counts.items()
        if cat in ("aircraft", "helicopter") and any(v.values())
    }
    for cat, by_status in moves.items():
        out_console.print(
            f"  {cat}: "
            + ", ".join(
                f"{n} {s}" for s, n in by_status.items() if s in ("arrived", "departed", "remained", "moved")
            )
        )
    out_console.print(f"changes: {c.sentence}")
    for w in c.warnings:
        err_console.print(f"[yellow]note:[/] {w}")
    st.summary["comparison"] = c.to_dict()


def step_claims(st: DemoState) -> None:
    """Ingest the short FICTIONAL text report as claims (stored with their document)."""
    from sitewatch.assess import extract_claims

    rep = st.report_text
    assert rep is not None, "the imagery step chooses the report"
    text = rep.text()
    path = st.out / rep.resource
    path.write_text(text, encoding="utf-8")
    st.claims = extract_claims(
        text, source=rep.source, published=rep.published, reliability=rep.reliability, sites=[st.site]
    )
    doc_id = st.store.add_document(rep.source, text, rep.published, None, rep.title)
    for c in st.claims:
        c.document_id = doc_id
    st.store.save_claims(doc_id, [c.to_dict() for c in st.claims])
    stored = [c for c in st.store.list_claims(st.site.name) if c.get("document_id") == doc_id]
    out_console.print(
        f"text report {path.name} (FICTIONAL, written for the demo) → document {doc_id}, {len(stored)} "
        "claims:"
    )
    for c in stored:
        what = ", ".join(m.get("name") or m["text"] for m in c["equipment"]) or "-"
        when = ", ".join(f"{d.get('qualifier') or ''} {d['date'] or d['text']}".strip() for d in c["dates"])
        out_console.print(f"  claim {c['id']}: [bold]{c.get('signal') or 'no signal'}[/] "
                          f"{what}{' (' + when + ')' if when else ''}  [dim]\"{c['text']}\"[/]")  # fmt: skip
    st.summary["claims"] = [c["id"] for c in stored]


def step_assess(st: DemoState) -> None:
    """Assess the site: indicators, competing hypotheses, claims checked against the imagery."""
    from sitewatch.assess import assess_site

    a = assess_site(st.site, st.passes, [st.comparison], st.store.list_claims(st.site.name))
    st.assessment = a
    out_console.print("[bold]Key judgements[/]")
    for k in a.key_judgements:
        refs = ", ".join(k["evidence"][:4]) + (
            f" +{len(k['evidence']) - 4} more" if len(k["evidence"]) > 4 else ""
        )
        out_console.print(f"  • {k['text']}  [dim]\\[{refs}][/]")
    out_console.print(f"[bold]Confidence:[/] {a.confidence['sentence']}")
    out_console.print(
        "Hypotheses: " + "; ".join(f"{h.name} {h.probability:.0%} ({h.term})" for h in a.hypotheses)
    )
    st.summary["assessment"] = {
        "most_likely": a.most_likely.name if a.most_likely else None,
        "hypotheses": [{"name": h.name, "probability": h.probability, "term": h.term} for h in a.hypotheses],
        "confidence": a.confidence["level"],
        "fired": [r.name for r in a.fired],
        "claim_checks": {ch.claim_id: ch.verdict for ch in a.checks},
    }


def step_export(st: DemoState) -> None:
    """GeoJSON, GeoParquet, GeoPackage and KML of all detections (KML only for georeferenced passes).

    The demo owns its output folder, so a rerun replaces its files.
    """
    from sitewatch.report.exports import export_passes

    written = []
    for fmt, suffix in (("geojson", "geojson"), ("geoparquet", "parquet"), ("gpkg", "gpkg"), ("kml", "kml")):
        if fmt == "kml" and not any(p.crs for p in st.passes):
            continue  # pixel-space passes have no ground position
        written.append(
            str(
                export_passes(
                    st.passes, st.site, fmt, st.out / f"{st.site.name}-detections.{suffix}", overwrite=True
                )
            )
        )
    st.summary["exports"] = written


def step_report(st: DemoState) -> None:
    """Write the report: HTML, PDF (when WeasyPrint works) and the JSON twin."""
    from sitewatch.report import build_report_data, save_report

    with progress() as bar:
        bar.add_task("building the report", total=None)
        data = build_report_data(st.store, st.site)
        written = [save_report(data, st.out / "report.html", overwrite=True)]
        try:
            written.append(save_report(data, st.out / "report.pdf", overwrite=True))
        except (SitewatchError, OSError, ImportError) as e:  # WeasyPrint needs system libraries
            err_console.print(f"[yellow]note:[/] no PDF ({e}); report.html and report.json are written")
    written.append(st.out / "report.json")
    st.summary["report"] = [str(p) for p in written]


def step_summary(st: DemoState) -> None:
    """Write summary.json and list the outputs."""
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
    (st.out / "summary.json").write_text(json.dumps(st.summary, indent=1, default=str))
    out_console.print(f"\n[bold]outputs in {st.out}/[/]")
    for p in sorted(st.out.iterdir()):
        if p.name.startswith("demo-store.db-"):
            continue
        out_console.print(f"  {p.name}{'/' if p.is_dir() else ''}")
    # the demo site of the real pair is not on the watchlist: commands that look sites up cannot use it
    explore = "assess" if st.simulated else "compare"
    out_console.print(f"open {st.out / 'report.html'}; explore the demo store with e.g. sitewatch {explore} "
                      f"{st.site.name} --store sqlite:///{st.out / 'demo-store.db'}")  # fmt: skip
    # last line: the command that serves the demo store as a web dashboard (one line, copyable)
    out_console.print(
        f"see it on a map (then open http://127.0.0.1:8000/sites/{st.site.name}):", soft_wrap=True
    )
    out_console.print(
        f"sitewatch serve --store sqlite:///{(st.out / 'demo-store.db').resolve()}",
        soft_wrap=True,
        highlight=False,
    )


#: The demo, in order. Each step reads and extends the :class:`DemoState`.
STEPS: list[Callable[[DemoState], None]] = [
    step_imagery, step_scan, step_inventory, step_compare, step_claims, step_assess, step_export, step_report,
    step_summary,
]  # fmt: skip


def run_demo(
    out: Path, data: Path | None = None, steps: list[Callable[[DemoState], None]] | None = None
) -> DemoState:
    """Run the demo steps into ``out``; return the final state (store left open for callers).

    A previous demo store in ``out`` is replaced, so the demo always shows exactly two passes.
    """
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("demo-store.db*"):
        old.unlink()
    st = DemoState(out=out, data=data)
    timings = st.summary.setdefault("timings_s", {})
    for step in steps or STEPS:
        err_console.rule(f"[bold]{(step.__doc__ or step.__name__).splitlines()[0]}")
        t0 = time.perf_counter()
        step(st)
        timings[step.__name__.removeprefix("step_")] = round(time.perf_counter() - t0, 2)
    log.info("demo step timings (s): %s", timings)
    return st


#: The SIMULATED watch demo: pass 2 as in :data:`SIM_SCENARIO` (11 of 15 aircraft leave, one Il-76 comes);
#: pass 3 is drawn from the same first pass with 2 aircraft gone and 8 arrived.
WATCH_RETURN: SimCounts = {"departed": 2, "arrived": 8}


def run_watch_demo(out: Path, show: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Three SIMULATED passes of Hmeimim arrive one by one in a watched folder; the watcher alerts.

    Each pass is copied into ``out/incoming`` and one watch cycle runs (scan, compare, assess,
    alerts to the log, the Atom feed ``out/alerts.atom`` and a report per alerting pass under
    ``out/reports``), on the store ``out/watch-store.db`` (replaced at each run).

    Returns:
        ``{"passes": [...], "alerts": [[alert titles] per arrival], "feed": path, "store": url}``.
    """
    import shutil

    from rich.markup import escape

    from sitewatch.cli.scan import describe
    from sitewatch.imagery.simulate import simulate_site
    from sitewatch.sites import get_site
    from sitewatch.store import open_store
    from sitewatch.store.watchstate import WatchLedger
    from sitewatch.watch import WatchConfig, Watcher

    show = show or (lambda text: out_console.print(text))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("watch-store.db*"):
        old.unlink()
    incoming = out / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir()
    site = get_site("hmeimim")
    bounds = simulation_bounds(site)
    with progress() as bar:
        bar.add_task("simulating three passes", total=None)
        first = simulate_site(
            out / "imagery" / "a", site.aoi, site=site.name, zones=site.zones, bounds=bounds, **SIM_SCENARIO
        )
        later = simulate_site(out / "imagery" / "b", site.aoi, site=site.name, zones=site.zones,
                              bounds=bounds, start=first.passes[1].acquired,
                              **(SIM_SCENARIO | WATCH_RETURN))  # fmt: skip
    arrivals = [first.passes[0], first.passes[1], later.passes[1]]
    config = WatchConfig.model_validate({
        "sites": [{"site": site.name, "sources": [{"type": "folder", "path": str(incoming), "settle_s": 0}],
                   "rules": {"hypotheses": True}}],
        "channels": [{"type": "atom", "path": str(out / "alerts.atom")}],  # the demo shows the alerts itself
        "reports": str(out / "reports"),
    })  # fmt: skip
    url = f"sqlite:///{out / 'watch-store.db'}"
    summary: dict[str, Any] = {"passes": [], "alerts": [], "feed": str(out / "alerts.atom"), "store": url}
    with open_store(url) as store:
        watcher = Watcher(config, store)
        for i, sim in enumerate(arrivals, 1):
            name = f"{site.name}-{sim.acquired:%Y%m%d}.tif"
            shutil.copyfile(sim.path, incoming / f".{name}.part")
            (incoming / f".{name}.part").replace(incoming / name)  # arrives whole
            err_console.rule(
                f"[bold]SIMULATED pass {i} arrives: {name} ({sim.counts().get('aircraft', 0)} aircraft drawn)"
            )
            with progress() as bar:
                bar.add_task("watch cycle: scan, compare, assess", total=None)
                res = watcher.run_once()
            raised = [a for a in reversed(WatchLedger(store).alerts(site.name)) if a.id in res.alerts]
            titles = [a.title for a in raised]
            for p in res.passes:
                show(describe(store.get_pass(p)))
            for a in raised:
                show(f"  [bold yellow]ALERT[/] {escape(a.title)}")
            if raised and raised[0].payload["evidence"].get("report"):
                show(f"  report: {raised[0].payload['evidence']['report']}")
            if not raised:
                show("  no alert: nothing the rules watch for changed")
            summary["passes"] += res.passes
            summary["alerts"].append(titles)
    show(f"Atom feed: {out / 'alerts.atom'}; reports: {out / 'reports'}; store: {url}")
    show(f"see the watch state with: sitewatch watch --status --store {url}")
    return summary


@click.command()
@click.option(
    "--watch",
    "watch_demo",
    is_flag=True,
    help="Instead: three SIMULATED passes arrive in a watched folder; show the alerts.",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Labelled imagery tree (e.g. ../shared/data) for a real pair.",
)
@output_option(
    "Output folder (the demo replaces its own files there).",
    old=("--out",),
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sitewatch-demo-out"),
    show_default=True,
)
def command(watch_demo: bool, data: Path | None, output: Path) -> None:
    """Run the pipeline on two passes of one site: scan, inventory, changes, claims, assessment, report.

    Offline. Without --data the imagery is SIMULATED (Hmeimim, on the watchlist's zones); with
    --data a real Airbus Pléiades pair is used (dates SYNTHETIC). The text report ingested is FICTIONAL.

    With --watch, three SIMULATED passes of Hmeimim arrive one by one in a watched folder and
    `sitewatch watch` raises its alerts (log, Atom feed, reports; see docs/watch.md).

    Example: sitewatch demo --data ../shared/data -o demo-out
    """
    if watch_demo:
        if data is not None:
            raise click.UsageError("--watch plays SIMULATED passes; it takes no --data")
        run_watch_demo(output)
        return
    st = run_demo(output, data)
    if st.store is not None:
        st.store.close()
