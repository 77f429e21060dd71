"""Package data of ``sitewatch demo``: short FICTIONAL text reports about the demo scenarios."""
