"""The watch demo: three SIMULATED passes of Hmeimim arrive one by one in a watched folder."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from sitewatch.demo.observer import DemoObserver
from sitewatch.demo.scenario import SIM_SCENARIO, WATCH_RETURN, simulation_bounds

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WatchDemoResult:
    """What the watch demo stored and raised (the store is closed)."""

    #: Ids of the stored passes, in arrival order.
    passes: list[int]
    #: Titles of the alerts raised at each arrival (one list per arrival).
    alerts: list[list[str]]
    #: The Atom feed of the alerts, the folder of the reports of alerting passes, the store URL.
    feed: Path
    reports: Path
    store_url: str


def run_watch_demo(out: Path, observer: DemoObserver | None = None) -> WatchDemoResult:
    """Three SIMULATED passes of Hmeimim arrive one by one in a watched folder; the watcher alerts.

    Each pass is copied into ``out/incoming`` and one watch cycle runs (scan, compare, assess,
    alerts to the log, the Atom feed ``out/alerts.atom`` and a report per alerting pass under
    ``out/reports``), on the store ``out/watch-store.db`` (replaced at each run).
    """
    from sitewatch.imagery.simulate import simulate_site
    from sitewatch.sites import get_site
    from sitewatch.store import open_store
    from sitewatch.store.watchstate import WatchLedger
    from sitewatch.watch import WatchConfig, Watcher

    observer = observer or DemoObserver()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("watch-store.db*"):
        old.unlink()
    incoming = out / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir()
    site = get_site("hmeimim")
    bounds = simulation_bounds(site)
    with observer.task("simulating three passes"):
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
        "channels": [{"type": "atom", "path": str(out / "alerts.atom")}],  # the observer shows them
        "reports": str(out / "reports"),
    })  # fmt: skip
    url = f"sqlite:///{out / 'watch-store.db'}"
    passes: list[int] = []
    alerts: list[list[str]] = []
    with open_store(url) as store:
        watcher = Watcher(config, store)
        for i, sim in enumerate(arrivals, 1):
            name = f"{site.name}-{sim.acquired:%Y%m%d}.tif"
            shutil.copyfile(sim.path, incoming / f".{name}.part")
            (incoming / f".{name}.part").replace(incoming / name)  # arrives whole
            observer.pass_arrives(i, name, sim.counts().get("aircraft", 0))
            with observer.task("watch cycle: scan, compare, assess"):
                res = watcher.run_once()
            raised = [a for a in reversed(WatchLedger(store).alerts(site.name)) if a.id in res.alerts]
            log.info("watch demo: %s → passes %s, %d alert(s)", name, res.passes, len(raised))
            observer.watch_cycle([store.get_pass(p) for p in res.passes], raised)
            passes += res.passes
            alerts.append([a.title for a in raised])
    return WatchDemoResult(passes, alerts, out / "alerts.atom", out / "reports", url)
