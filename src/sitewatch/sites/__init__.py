"""sitewatch.sites."""
