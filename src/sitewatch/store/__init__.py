"""sitewatch.store."""
