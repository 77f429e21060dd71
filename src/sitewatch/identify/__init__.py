"""sitewatch.identify."""
