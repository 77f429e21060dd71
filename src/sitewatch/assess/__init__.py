"""sitewatch.assess: indicators, competing hypotheses, estimative language, claims from text.

Entry points: :func:`assess_site` (-> :class:`Assessment`), :func:`~sitewatch.assess.claims.extract_claims`,
:func:`~sitewatch.assess.claims.check_claims`, :func:`~sitewatch.assess.indicators.load_indicators`.
"""

from sitewatch.assess.assessment import Assessment, assess_site
from sitewatch.assess.claims import Claim, ClaimCheck, check_claims, extract_claims
from sitewatch.assess.estimative import estimative_term
from sitewatch.assess.indicators import Indicator, IndicatorResult, load_indicators
from sitewatch.assess.metrics import IndicatorError, register_metric

__all__ = [
    "Assessment", "assess_site", "Claim", "ClaimCheck", "check_claims", "extract_claims", "estimative_term",
    "Indicator", "IndicatorResult", "load_indicators", "IndicatorError", "register_metric",
]  # fmt: skip
