"""The demo as a list of steps: scan two passes of one site, compare, assess, write the report.

Each step is a function of the :class:`DemoState`; :func:`run_demo` runs them in order into an
output folder it owns and returns a :class:`DemoResult`. A :class:`~sitewatch.demo.DemoObserver`
is told what happens (the CLI prints it); without one the run is silent apart from the log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitewatch.demo.observer import DemoObserver
from sitewatch.demo.scenario import REPORTS, SIM_SCENARIO, DemoReport, DemoScene, real_pair, simulation_bounds
from sitewatch.errors import SitewatchError

if TYPE_CHECKING:
    from sitewatch.assess import Assessment, Claim
    from sitewatch.compare import Comparison
    from sitewatch.types import Pass

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DemoState:
    """What the steps share: inputs, the store, and what each step produced."""

    out: Path
    data: Path | None
    observer: DemoObserver = dataclasses.field(default_factory=DemoObserver)
    #: The demo store (a :class:`sitewatch.store.Store`), opened by the scan step.
    store: Any = None
    #: A :class:`sitewatch.sites.Site` of the watchlist, or the real pair's :class:`DemoSite`.
    site: Any = None
    simulated: bool = False
    scenes: list[DemoScene] = dataclasses.field(default_factory=list)
    detector: Any = None
    passes: list[Pass] = dataclasses.field(default_factory=list)
    comparison: Comparison | None = None
    text_report: DemoReport | None = None
    #: Where the text report was written, the store's document id for it, its claims as stored.
    text_report_path: Path | None = None
    document_id: int | None = None
    claims: list[Claim] = dataclasses.field(default_factory=list)
    stored_claims: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    assessment: Assessment | None = None
    exports: list[Path] = dataclasses.field(default_factory=list)
    report_files: list[Path] = dataclasses.field(default_factory=list)
    #: Why no PDF was written (WeasyPrint needs system libraries), or None.
    pdf_error: str | None = None
    #: What summary.json holds, and the file once written.
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary_json: Path | None = None

    @property
    def store_path(self) -> Path:
        return self.out / "demo-store.db"

    @property
    def detector_trained(self) -> bool:
        """False for the bundled placeholder model, whose detections mean nothing yet."""
        return bool(getattr(getattr(self.detector, "info", None), "trained", True))


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What a demo run found and left in its output folder (the store is closed)."""

    out: Path
    site: str
    site_title: str
    simulated: bool
    #: The demo store: a SQLite file in ``out`` and its URL.
    store_path: Path
    store_url: str
    #: Ids of the stored passes, oldest first, with their detected and true (label or simulation)
    #: aircraft counts.
    passes: tuple[int, ...]
    detected_aircraft: tuple[int, ...]
    true_aircraft: tuple[int, ...]
    #: The most likely hypothesis and the confidence level of the assessment (None without one).
    verdict: str | None
    confidence: str | None
    #: Files written: the report (HTML, PDF when WeasyPrint works, JSON twin), detection exports,
    #: the summary (None when that step did not run).
    report: tuple[Path, ...]
    exports: tuple[Path, ...]
    summary_json: Path | None
    #: Everything in ``out``, sorted by name (the store's journal files left out).
    outputs: tuple[Path, ...]
    timings_s: dict[str, float]


def step_imagery(st: DemoState) -> None:
    """Choose the two scenes: a real labelled pair from --data, else SIMULATED passes of Hmeimim."""
    if st.data is not None:
        st.scenes, st.site = real_pair(st.data)
        st.text_report = REPORTS["real"]
        log.info("demo imagery: real pair %s", ", ".join(str(sc["path"]) for sc in st.scenes))
        st.observer.imagery_chosen(st)
        return
    from sitewatch.imagery.simulate import simulate_site
    from sitewatch.sites import get_site

    st.simulated = True
    st.site = get_site("hmeimim")
    st.text_report = REPORTS["simulated"]
    st.observer.imagery_chosen(st)
    with st.observer.task("simulating two passes"):
        sc = simulate_site(st.out / "imagery", st.site.aoi, site=st.site.name, zones=st.site.zones,
                           bounds=simulation_bounds(st.site), **SIM_SCENARIO)  # fmt: skip
    st.scenes = [
        {"path": p.path, "gsd_m": None, "acquired": None, "truth": p.counts(), "truth_source": "simulation"}
        for p in sc.passes
    ]
    log.info("demo imagery: SIMULATED passes of %s in %s", st.site.name, st.out / "imagery")


def step_scan(st: DemoState) -> None:
    """Scan both scenes into the demo store (progress bars)."""
    from sitewatch.imagery import open_scene
    from sitewatch.pipeline import load_default_detector, scan
    from sitewatch.store import open_store

    st.store = open_store(f"sqlite:///{st.store_path}")
    st.detector = load_default_detector()
    for sc in st.scenes:
        with (
            open_scene(sc["path"], gsd_m=sc["gsd_m"], acquired=sc["acquired"]) as scene,
            st.observer.task(f"scanning {Path(sc['path']).name}") as progress,
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            p = scan(scene, st.site, st.detector, st.store, progress=progress)
        notes = [str(w.message) for w in caught if "cover" in str(w.message)]
        st.passes.append(p)
        log.info("demo: %s stored as pass %s", sc["path"], p.id)
        st.observer.pass_scanned(p, notes)


def step_inventory(st: DemoState) -> None:
    """Inventory per pass, and detector counts against the labels / simulation truth."""
    from sitewatch.pipeline import inventory

    st.summary["inventory"] = inventory(st.passes, "category")
    st.summary["truth"] = [
        {
            "pass_id": p.id,
            "detected_aircraft": p.counts()["aircraft"],
            "true_aircraft": sc["truth"]["aircraft"],
            "truth": sc["truth"],
            "source": sc["truth_source"],
        }
        for sc, p in zip(st.scenes, st.passes, strict=True)
    ]


def step_compare(st: DemoState) -> None:
    """Changes between the two passes (co-registration, object matching, pixel change)."""
    from sitewatch.compare import compare_passes

    a, b = st.passes
    with st.observer.task("comparing the passes"):
        st.comparison = compare_passes(a, b, st.site, read_pixels=True)
    st.summary["comparison"] = st.comparison.to_dict()


def step_claims(st: DemoState) -> None:
    """Ingest the short FICTIONAL text report as claims (stored with their document)."""
    from sitewatch.assess import extract_claims

    rep = st.text_report
    assert rep is not None, "the imagery step chooses the report"
    text = rep.text()
    st.text_report_path = st.out / rep.resource
    st.text_report_path.write_text(text, encoding="utf-8")
    st.claims = extract_claims(
        text, source=rep.source, published=rep.published, reliability=rep.reliability, sites=[st.site]
    )
    doc_id = st.store.add_document(rep.source, text, rep.published, None, rep.title)
    for c in st.claims:
        c.document_id = doc_id
    st.store.save_claims(doc_id, [c.to_dict() for c in st.claims])
    st.document_id = doc_id
    st.stored_claims = [c for c in st.store.list_claims(st.site.name) if c.get("document_id") == doc_id]
    st.summary["claims"] = [c["id"] for c in st.stored_claims]


def step_assess(st: DemoState) -> None:
    """Assess the site: indicators, competing hypotheses, claims checked against the imagery."""
    from sitewatch.assess import assess_site

    a = assess_site(st.site, st.passes, [st.comparison], st.store.list_claims(st.site.name))
    st.assessment = a
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

    for fmt, suffix in (("geojson", "geojson"), ("geoparquet", "parquet"), ("gpkg", "gpkg"), ("kml", "kml")):
        if fmt == "kml" and not any(p.crs for p in st.passes):
            continue  # pixel-space passes have no ground position
        path = st.out / f"{st.site.name}-detections.{suffix}"
        st.exports.append(export_passes(st.passes, st.site, fmt, path, overwrite=True))
    st.summary["exports"] = [str(p) for p in st.exports]


def step_report(st: DemoState) -> None:
    """Write the report: HTML, PDF (when WeasyPrint works) and the JSON twin."""
    from sitewatch.report import build_report_data, save_report

    with st.observer.task("building the report"):
        data = build_report_data(st.store, st.site)
        written = [save_report(data, st.out / "report.html", overwrite=True)]
        try:
            written.append(save_report(data, st.out / "report.pdf", overwrite=True))
        except (SitewatchError, OSError, ImportError) as e:  # WeasyPrint needs system libraries
            st.pdf_error = str(e)
            log.info("demo report: no PDF (%s)", e)
    written.append(st.out / "report.json")
    st.report_files = written
    st.summary["report"] = [str(p) for p in written]


def step_summary(st: DemoState) -> None:
    """Write summary.json and list the outputs."""
    from sitewatch.pipeline import pass_summary

    st.summary.update(
        {
            "SIMULATED": st.simulated,
            "site": st.site.name,
            "site_title": st.site.title,
            "store": st.store.url if st.store else None,
            "passes": [pass_summary(p) for p in st.passes],
            "scenes": [{k: str(v) for k, v in sc.items() if k != "truth"} for sc in st.scenes],
        }
    )
    st.summary_json = st.out / "summary.json"
    st.summary_json.write_text(json.dumps(st.summary, indent=1, default=str))


Step = Callable[[DemoState], None]

#: The demo, in order. Each step reads and extends the :class:`DemoState`.
STEPS: list[Step] = [
    step_imagery, step_scan, step_inventory, step_compare, step_claims, step_assess, step_export, step_report,
    step_summary,
]  # fmt: skip


def step_name(step: Step) -> str:
    """The step's key in the timings: ``step_scan`` → ``scan``."""
    return step.__name__.removeprefix("step_")


def step_title(step: Step) -> str:
    """One line for people: the first line of the step's docstring."""
    return (step.__doc__ or step.__name__).splitlines()[0]


def run_demo(
    out: Path,
    data: Path | None = None,
    *,
    steps: Sequence[Step] | None = None,
    observer: DemoObserver | None = None,
) -> DemoResult:
    """Run the demo steps into the folder ``out`` (created when missing); close the store at the end.

    Without ``data`` the passes are SIMULATED; with ``data`` (the labelled imagery tree) they are
    the real Pléiades pair of :data:`~sitewatch.demo.scenario.REAL_PAIR`. A previous demo store in
    ``out`` is replaced, so the demo always shows exactly two passes; other files of the demo are
    overwritten.

    Raises:
        SitewatchError: ``data`` is not the labelled imagery tree, or a step fails on user input.
    """
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("demo-store.db*"):
        old.unlink()
    st = DemoState(out=out, data=data, observer=observer or DemoObserver())
    timings: dict[str, float] = st.summary.setdefault("timings_s", {})
    try:
        for step in steps or STEPS:
            name = step_name(step)
            st.observer.step_started(name, step_title(step))
            t0 = time.perf_counter()
            step(st)
            timings[name] = round(time.perf_counter() - t0, 2)
            st.observer.step_finished(name, st)
    finally:
        if st.store is not None:
            st.store.close()
    log.info("demo step timings (s): %s", timings)
    return _result(st, timings)


def _result(st: DemoState, timings: dict[str, float]) -> DemoResult:
    truth = st.summary.get("truth", [])
    assessment = st.assessment
    return DemoResult(
        out=st.out,
        site=st.site.name if st.site else "",
        site_title=st.site.title if st.site else "",
        simulated=st.simulated,
        store_path=st.store_path,
        store_url=f"sqlite:///{st.store_path}",
        passes=tuple(p.id for p in st.passes if p.id is not None),
        detected_aircraft=tuple(t["detected_aircraft"] for t in truth),
        true_aircraft=tuple(t["true_aircraft"] for t in truth),
        verdict=assessment.most_likely.name if assessment and assessment.most_likely else None,
        confidence=assessment.confidence["level"] if assessment else None,
        report=tuple(st.report_files),
        exports=tuple(st.exports),
        summary_json=st.summary_json,
        outputs=tuple(sorted(p for p in st.out.iterdir() if not p.name.startswith("demo-store.db-"))),
        timings_s=dict(timings),
    )
