"""sitewatch.compare."""
