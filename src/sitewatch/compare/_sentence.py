"""One plain-English sentence summarising a comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sitewatch.compare.settings import CompareSettings
from sitewatch.types import CATEGORY_PLURAL

if TYPE_CHECKING:
    from sitewatch.compare.comparison import Comparison


def plural(word: str, n: int) -> str:
    """``word`` for a count ``n`` (categories and role groups)."""
    if n == 1:
        return {"large-vehicle": "large vehicle", "small-vehicle": "small vehicle"}.get(word, word)
    if word in CATEGORY_PLURAL:
        return CATEGORY_PLURAL[word]
    return word if word.endswith("s") else word + "s"


def _zone_word(c: Comparison) -> str:
    named = [z for z in c.pixel_change if z not in ("site", "image")]
    return f"the {named[0]}" if len(named) == 1 else ("the site" if "site" in c.pixel_change else "the image")


def _main_zone(c: Comparison) -> str | None:
    return "site" if "site" in c.pixel_change else ("image" if "image" in c.pixel_change else None)


def _category_zone(c: Comparison, category: str) -> str | None:
    zones = {o.zone for o in c.objects if o.category == category}
    return next(iter(zones)) if len(zones) == 1 and None not in zones else None


def summary_sentence(c: Comparison, s: CompareSettings, *, since: str | None = None) -> str:
    """The plain summary, e.g. "largely unchanged since 2024-12-10: 2 of 2 ships remained, ..."."""
    when = f"since {since}" if since else "since the earlier pass"
    objects_ok = "objects" not in c.not_compared
    pixels_ok = "pixel change" not in c.not_compared and _main_zone(c) is not None
    n_changes = sum(v["arrived"] + v["departed"] + v["moved"] for v in c.counts.values())
    zone = _main_zone(c)
    pct = c.pixel_change[zone]["pct_changed"] if pixels_ok and zone else None
    parts: list[str] = []
    caveats: list[str] = []
    if not objects_ok:
        caveats.append(f"objects not compared ({c.not_compared['objects']})")
    if not pixels_ok:
        caveats.append(
            f"pixel change not assessed ({c.not_compared.get('pixel change', 'no compared area')})"
        )
    if c.unobserved:
        caveats.append(f"{len(c.unobserved)} object(s) hidden in one pass")
    unchanged = (
        objects_ok
        and n_changes <= s.unchanged_max_object_changes
        and (pct is None or pct <= s.unchanged_max_pct_changed)
    )
    if unchanged and pixels_ok:
        kept = [
            f"{v['remained']} of {v['a']} {plural(cat, v['a'])} remained"
            for cat, v in c.counts.items()
            if v["a"] or v["b"]
        ] or ["no objects in either pass"]
        text = f"largely unchanged {when}: " + ", ".join(kept) + f", {pct:.1f} % of {_zone_word(c)} changed"
    else:
        if objects_ok:
            for cat, v in c.counts.items():
                if not (v["a"] or v["b"]):
                    continue
                where = _category_zone(c, cat)
                name = plural(cat, 2) + (f" on the {where}" if where else "")
                if v["a"] != v["b"]:
                    parts.append(f"{name} {'rose' if v['b'] > v['a'] else 'fell'} from {v['a']} to {v['b']}")
                elif v["arrived"] or v["departed"] or v["moved"]:
                    parts.append(
                        f"{name} steady at {v['b']} ({v['arrived']} arrived, {v['departed']} left, "
                        f"{v['moved']} moved)"
                    )
                else:
                    parts.append(f"all {v['a']} {name} remained")
            for group, v in c.by_group.items():
                if group in c.counts:  # plain categories are already told above
                    continue
                for status in ("arrived", "departed", "moved"):
                    if v[status]:
                        parts.append(f"{v[status]} {plural(group, v[status])} {status}")
        if pct is not None and zone is not None:
            unexplained = c.pixel_change[zone]["pct_unexplained"]
            parts.append(
                f"{pct:.1f} % of {_zone_word(c)} changed ({unexplained:.1f} % not explained by objects)"
            )
        text = f"{when[0].upper()}{when[1:]}: " + ("; ".join(parts) if parts else "nothing could be compared")
    if caveats:
        text += " — " + "; ".join(caveats)
    return text[0].upper() + text[1:] + "."
