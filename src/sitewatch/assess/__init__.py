"""sitewatch.assess."""
