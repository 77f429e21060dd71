"""sitewatch.watch: watch sites for new imagery and alert on what changes.

Sources (a folder, a STAC API, a static STAC catalog) offer new items of a site; each is scanned
into a pass, compared with the previous pass and assessed; alerts go out on the configured
channels (log, Atom feed, webhook, e-mail). The state (items seen and their outcome, alerts and
their deliveries) lives in the store, so a restarted watcher neither rescans nor skips.
Entry points: :func:`load_config`, :class:`Watcher`, :func:`status`. See docs/watch.md.
"""

from sitewatch.watch.config import WatchConfig, WatchConfigError, load_config
from sitewatch.watch.watcher import CycleResult, Watcher, single_watcher, status

__all__ = [
    "CycleResult",
    "WatchConfig",
    "WatchConfigError",
    "Watcher",
    "load_config",
    "single_watcher",
    "status",
]
