"""Thin click commands over the library; one module per command (see :mod:`sitewatch.cli.main`)."""
