"""Indicators: named conditions over a site's passes, comparisons, types, roles and zones.

Definitions live in YAML (``data/indicators.yaml``, plus user files in
``$SITEWATCH_HOME/indicators/*.yaml`` or a directory given explicitly). A condition is a small
language parsed without ``eval``::

    metric[filter=value, filter=a|b] OP number        e.g.  count_change_pct[category=aircraft] <= -30

Metrics come from the registry in :mod:`sitewatch.assess.metrics`. Evaluating an indicator gives
an :class:`IndicatorResult`: fired / not-fired / not-assessable, with the evidence references
(passes, detections, comparisons) and a strength (the definition's strength times the data
quality of the passes used: their worst AOI coverage).
"""

from __future__ import annotations

import logging
import operator
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sitewatch.assess.metrics import Context, IndicatorError, get_metric, quality
from sitewatch.settings import Settings

log = logging.getLogger(__name__)

_OPS = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION_RE = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_]*)\s*(?:\[(?P<filters>[^\]]*)\])?\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[-+]?\d+(?:\.\d+)?)\s*$"
)
_FILTER_RE = re.compile(r"^\s*(?P<key>[a-z_][a-z0-9_]*)\s*=\s*(?P<value>[^=]+?)\s*$")
_FIELD_RE = re.compile(r"\{(?P<name>[a-z_][a-z0-9_]*)(?::(?P<spec>[^{}]*))?\}")
STATES = ("fired", "not-fired", "not-assessable")


@dataclass(frozen=True, slots=True)
class Condition:
    """One parsed condition: ``metric[filters] op threshold``."""

    metric: str
    filters: tuple[tuple[str, str], ...]
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str, where: str = "condition") -> Condition:
        """Parse ``metric[k=v, ...] OP number``.

        Raises:
            IndicatorError: malformed text or unknown metric (naming ``where``).
        """
        m = _CONDITION_RE.match(str(text))
        if not m:
            raise IndicatorError(
                f"{where}: cannot parse condition {text!r}; expected 'metric[key=value, ...] OP number'"
            )
        filters = []
        for part in filter(None, (p.strip() for p in (m.group("filters") or "").split(","))):
            fm = _FILTER_RE.match(part)
            if not fm:
                raise IndicatorError(f"{where}: bad filter {part!r} in {text!r}; expected key=value")
            filters.append((fm.group("key"), fm.group("value")))
        get_metric(m.group("metric"))  # unknown metric -> clear error now, not at evaluation
        return cls(m.group("metric"), tuple(filters), m.group("op"), float(m.group("value")))

    def __str__(self) -> str:
        f = ", ".join(f"{k}={v}" for k, v in self.filters)
        return f"{self.metric}{f'[{f}]' if f else ''} {self.op} {self.threshold:g}"


@dataclass(frozen=True, slots=True)
class Indicator:
    """An indicator definition.

    Attributes:
        name: unique slug (``aircraft-count-drop``).
        title: short display title.
        description: what it means and why.
        conditions: parsed conditions.
        mode: "all" (every condition) or "any".
        strength: how diagnostic a firing is, 0..1, before data-quality scaling.
        says: sentence template; ``{metric}`` or ``{metric:.0f}`` fields take condition values.
        origin: file the definition came from.
    """

    name: str
    title: str
    description: str
    conditions: tuple[Condition, ...]
    mode: str = "all"
    strength: float = 0.5
    says: str = ""
    origin: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "") -> Indicator:
        """Build from a YAML mapping.

        Raises:
            IndicatorError: missing fields, bad conditions or strength outside 0..1.
        """
        name = d.get("name")
        where = f"{origin}: indicator '{name}'" if origin else f"indicator '{name}'"
        if not name or not isinstance(name, str):
            raise IndicatorError(f"{origin}: an indicator has no name")
        mode = "any" if "any" in d else "all"
        raw = d.get("when", d.get("any", d.get("all")))
        if isinstance(raw, dict):
            mode = "any" if "any" in raw else "all"
            raw = raw.get(mode)
        if not raw:
            raise IndicatorError(f"{where} has no conditions ('when:')")
        conds = tuple(Condition.parse(c, where) for c in (raw if isinstance(raw, list) else [raw]))
        strength = float(d.get("strength", 0.5))
        if not 0.0 <= strength <= 1.0:
            raise IndicatorError(f"{where}: strength must be in 0..1, got {strength}")
        says = str(d.get("says", ""))
        try:  # a bad format spec fails here, naming the file, not when the indicator fires
            _fill(says, {m.group("name"): 1.0 for m in _FIELD_RE.finditer(says)})
        except (ValueError, TypeError) as e:
            raise IndicatorError(f"{where}: bad format in 'says' {says!r} ({e})") from e
        return cls(name, str(d.get("title", name)), " ".join(str(d.get("description", "")).split()), conds,
                   mode, strength, str(d.get("says", "")), origin)  # fmt: skip


@dataclass(slots=True)
class IndicatorResult:
    """The outcome of one indicator for one site.

    Attributes:
        name, title: of the indicator.
        state: "fired", "not-fired" or "not-assessable".
        strength: firing strength 0..1 (0 unless fired).
        values: metric name -> value (None when not assessable).
        evidence: references the values came from.
        reason: for not-assessable, why; otherwise the conditions met/not met.
        sentence: the indicator's ``says`` sentence filled in (fired only).
        missing: for not-assessable, each distinct reason a metric had no value, in plain words
            (``reason`` adds the conditions they belong to).
    """

    name: str
    title: str
    state: str
    strength: float = 0.0
    values: dict[str, float | None] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    reason: str = ""
    sentence: str = ""
    missing: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"indicator:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "state": self.state,
                "strength": round(self.strength, 3), "values": dict(self.values),
                "evidence": list(self.evidence), "reason": self.reason,
                "sentence": self.sentence, "missing": list(self.missing)}  # fmt: skip


def _fill(template: str, values: dict[str, float | None]) -> str:
    def sub(m: re.Match[str]) -> str:
        v = values.get(m.group("name"))
        if v is None:
            return "?"
        return format(v, m.group("spec") or "g")

    return _FIELD_RE.sub(sub, template)


def evaluate(ind: Indicator, ctx: Context) -> IndicatorResult:
    """Evaluate one indicator on a site's context."""
    values: dict[str, float | None] = {}
    evidence: list[str] = []
    outcomes, missing, used = [], [], []
    why: dict[str, None] = {}  # distinct reasons, in order
    for c in ind.conditions:
        mv = get_metric(c.metric)(ctx, dict(c.filters))
        values.setdefault(c.metric, mv.value)
        if mv.value is None:
            missing.append(f"{c}: {mv.reason}")
            why[mv.reason] = None
            continue
        ok = _OPS[c.op](mv.value, c.threshold)
        outcomes.append(ok)
        used.extend(mv.passes)
        if ok:
            evidence.extend(e for e in mv.evidence if e not in evidence)
    if ind.mode == "all":
        fired = not missing and all(outcomes)
        decided = fired or (outcomes and not all(outcomes))
    else:
        fired = any(outcomes)
        decided = fired or not missing
    if not decided:
        return IndicatorResult(
            ind.name, ind.title, "not-assessable", 0.0, values, [], "; ".join(missing), missing=list(why)
        )
    if not fired:
        failed = [
            str(c)
            for c, ok in zip(
                [c for c in ind.conditions if values.get(c.metric) is not None], outcomes, strict=False
            )
            if not ok
        ]
        return IndicatorResult(
            ind.name, ind.title, "not-fired", 0.0, values, [], "not met: " + "; ".join(failed)
        )
    strength = ind.strength * quality(used)
    return IndicatorResult(ind.name, ind.title, "fired", strength, values, evidence,
                           "met: " + "; ".join(map(str, ind.conditions)),
                           _fill(ind.says, values) if ind.says else ind.title)  # fmt: skip


# ---- loading ---------------------------------------------------------------------------------
def _read(path: Path | None, text: str, origin: str) -> list[Indicator]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise IndicatorError(f"{origin}: not valid YAML ({str(e).splitlines()[0]})") from e
    items = data.get("indicators") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise IndicatorError(f"{origin}: expected a list of indicators under 'indicators:'")
    return [Indicator.from_dict(d, origin) for d in items]


def user_indicator_dir(settings: Settings | None = None) -> Path:
    """``$SITEWATCH_HOME/indicators``: where users put their own indicator files."""
    return (settings or Settings()).home / "indicators"


def load_indicators(
    directories: list[Path] | None = None, *, settings: Settings | None = None
) -> list[Indicator]:
    """The bundled indicators, then user files (``$SITEWATCH_HOME/indicators/*.yaml``), then ``directories``.

    Raises:
        IndicatorError: an invalid file, or an indicator name defined twice (naming both files).
    """
    bundled = resources.files("sitewatch.assess").joinpath("data/indicators.yaml")
    found = _read(None, bundled.read_text(encoding="utf-8"), "bundled indicators.yaml")
    for d in [user_indicator_dir(settings), *(directories or [])]:
        d = Path(d)
        if d.is_file():
            files = [d]
        elif d.is_dir():
            files = sorted([*d.glob("*.yaml"), *d.glob("*.yml")])
        else:
            if directories and d in directories:
                raise IndicatorError(f"{d}: no such indicator file or directory")
            continue
        for f in files:
            found.extend(_read(f, f.read_text(encoding="utf-8"), str(f)))
    seen: dict[str, Indicator] = {}
    for ind in found:
        if ind.name in seen:
            raise IndicatorError(
                f"indicator '{ind.name}' is defined twice: in {seen[ind.name].origin} and in {ind.origin}"
            )
        seen[ind.name] = ind
    return list(seen.values())
