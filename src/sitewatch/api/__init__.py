"""The web API and dashboard of ``sitewatch serve`` (FastAPI), over the same store as the CLI.

``create_app(store_url, settings)`` builds the application; :mod:`sitewatch.api.errors` holds the
one table that turns sitewatch errors into HTTP status codes. See docs/api.md.
"""

from sitewatch.api.app import create_app
from sitewatch.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
