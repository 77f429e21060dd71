"""sitewatch.detect.train."""
