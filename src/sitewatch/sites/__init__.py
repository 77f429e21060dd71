"""Watched sites: AOIs, zones and priors; the bundled watchlist and the user's additions."""

from sitewatch.sites.site import KINDS, Site, lookup_key, sites_from_geojson, sites_to_geojson, slugify
from sitewatch.sites.watchlist import (
    add_site,
    add_sites,
    bundled_sites,
    get_site,
    import_sites,
    list_sites,
    remove_site,
    user_watchlist_path,
)

__all__ = [
    "KINDS",
    "Site",
    "add_site",
    "add_sites",
    "bundled_sites",
    "get_site",
    "import_sites",
    "list_sites",
    "lookup_key",
    "remove_site",
    "sites_from_geojson",
    "sites_to_geojson",
    "slugify",
    "user_watchlist_path",
]
