"""sitewatch: imagery intelligence on watched sites.

Imagery → detect → identify → store passes → compare → assess → report.
"""

__version__ = "0.1.0"
