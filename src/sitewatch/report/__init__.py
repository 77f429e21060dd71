"""sitewatch.report."""
