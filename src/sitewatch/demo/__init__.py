"""The demo: the whole pipeline offline on two passes of one site, ending with a report.

Without data it makes SIMULATED GeoTIFF passes of the watchlist's Hmeimim site: the scenario
generator draws the runway, aprons and helicopter area where the watchlist zones put them and
parks aircraft on the aprons; between the passes most aircraft leave. With the labelled imagery
tree it uses a real Airbus Pléiades same-site pair with a large drop in aircraft (20 → 5
labelled), stored as two pixel-space passes at 0.5 m GSD of a demo site with an invented name
("Airfield P": the source gives no location) and SYNTHETIC dates.

Either way the demo keeps its own store under the output folder, scans both passes, counts the
inventory and the changes, ingests a short FICTIONAL news-style text report as claims, assesses
the site and writes the report (HTML, PDF when WeasyPrint works, and the JSON twin):
:func:`run_demo`, a list of steps (:data:`STEPS`). :func:`run_watch_demo` plays three SIMULATED
passes into a watched folder instead. Both tell a :class:`DemoObserver` what they do;
``sitewatch demo`` prints it.
"""

from sitewatch.demo.observer import DemoObserver
from sitewatch.demo.scenario import (
    REAL_DATES,
    REAL_PAIR,
    REPORTS,
    SIM_SCENARIO,
    WATCH_RETURN,
    DemoReport,
    DemoScene,
    DemoSite,
    SimCounts,
    label_counts,
    real_pair,
    simulation_bounds,
)
from sitewatch.demo.steps import STEPS, DemoResult, DemoState, Step, run_demo, step_name, step_title
from sitewatch.demo.watch import WatchDemoResult, run_watch_demo

__all__ = [
    "REAL_DATES",
    "REAL_PAIR",
    "REPORTS",
    "SIM_SCENARIO",
    "STEPS",
    "WATCH_RETURN",
    "DemoObserver",
    "DemoReport",
    "DemoResult",
    "DemoScene",
    "DemoSite",
    "DemoState",
    "SimCounts",
    "Step",
    "WatchDemoResult",
    "label_counts",
    "real_pair",
    "run_demo",
    "run_watch_demo",
    "simulation_bounds",
    "step_name",
    "step_title",
]
