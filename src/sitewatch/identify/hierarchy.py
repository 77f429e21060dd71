"""Say only what is known: the most specific level of type → family → role → size class that is probable
enough.

A detection's candidates give a probability to each library type (and to unknown/other). Summing
them over the types of a group gives the probability of the group: a family (types sharing an
airframe: Il-76MD, Il-78M and A-50), a role group (heavy transport) or a size class ("medium
airliner-sized aircraft (33–45 m)"). :func:`label_candidates` walks the levels from the most
specific and returns the first whose most probable group reaches the threshold
(:attr:`IdentifySettings.label_threshold`, 0.7 by default); when no level does, the object is
"unidentified <category>". Candidates stored with a detection may be the top few types only, so
the sums are lower bounds and the label errs towards the less specific.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sitewatch.errors import LibraryError
from sitewatch.identify.candidates import UNKNOWN_ID
from sitewatch.identify.library import EquipmentType, Library, load_library
from sitewatch.identify.settings import IdentifySettings
from sitewatch.types import Candidate, Detection

Level = Literal["type", "family", "role", "size", "category"]
#: Levels from the most to the least specific.
LEVELS: tuple[Level, ...] = ("type", "family", "role", "size", "category")


@dataclass(frozen=True, slots=True)
class Label:
    """What an output may say about one object.

    Attributes:
        level: the hierarchy level reached (``"category"``: no level reached the threshold).
        key: the group's key: a type id, family id, role group, size-class id or the category.
        text: the phrase for a table or inventory row: the candidate's name at type level
            (``"Il-76MD"``, ``"B-1B Lancer (spread)"``), ``"Il-76 family"``,
            ``"heavy transport"``, ``"medium airliner-sized aircraft (33–45 m)"``,
            ``"unidentified aircraft"``.
        probability: calibrated probability of the group (sum over its types), 0..1.
        candidates: the types behind the group, most probable first (for ``"category"``: the top
            candidates overall, whatever they are).
        threshold: the threshold the label was decided with.
    """

    level: Level
    key: str
    text: str
    probability: float
    candidates: tuple[Candidate, ...]
    threshold: float

    @property
    def identified(self) -> bool:
        """True when some level above the bare category reached the threshold."""
        return self.level != "category"

    def behind(self, k: int = 3) -> str:
        """``"Il-76MD 0.41, A-50 0.22, Il-78M 0.19"``: the top ``k`` candidates behind the label."""
        return ", ".join(f"{c.name} {c.probability:.2f}" for c in self.candidates[:k])

    def describe(self, k: int = 3) -> str:
        """``"Il-76 family (p 0.82: Il-76MD 0.41, A-50 0.22, Il-78M 0.19)"``."""
        behind = self.behind(k)
        if self.level == "category":
            return (
                f"{self.text} (no level reaches "
                f"{self.threshold:.2f}{'; candidates ' + behind if behind else ''})"
            )
        return f"{self.text} (p {self.probability:.2f}: {behind})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "key": self.key,
            "text": self.text,
            "probability": round(self.probability, 4),
            "threshold": self.threshold,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def _row(library: Library, type_id: str) -> EquipmentType | None:
    try:
        return library.get(type_id)
    except LibraryError:  # a type of another library stored with the pass
        return None


def _group_keys(
    library: Library,
) -> dict[Level, Callable[[Candidate, EquipmentType | None], tuple[str, str] | None]]:
    """Per level: candidate -> (group key, group text), or None when the level does not apply."""

    def type_key(c: Candidate, t: EquipmentType | None) -> tuple[str, str]:
        return c.type_id, c.name

    def family_key(c: Candidate, t: EquipmentType | None) -> tuple[str, str] | None:
        if t is None or t.family is None or t.family not in library.families:
            return type_key(c, t)
        return "family:" + t.family, library.families[t.family].name

    def role_key(c: Candidate, t: EquipmentType | None) -> tuple[str, str] | None:
        if not c.role:
            return None
        r = library.roles.get(c.role)
        return "role:" + c.role, r.noun if r is not None else c.role

    def size_key(c: Candidate, t: EquipmentType | None) -> tuple[str, str] | None:
        if t is None or t.size_class not in library.size_classes:
            return None
        return "size:" + t.size_class, library.size_classes[t.size_class].name

    return {"type": type_key, "family": family_key, "role": role_key, "size": size_key}


def label_candidates(
    candidates: Sequence[Candidate],
    category: str,
    *,
    library: Library | None = None,
    threshold: float | None = None,
    settings: IdentifySettings | None = None,
    levels: Sequence[Level] = LEVELS,
) -> Label:
    """The most specific level whose most probable group reaches ``threshold``.

    Args:
        candidates: calibrated type candidates of one object (any order; ``unknown`` allowed).
        category: the detection's category (for the ``"unidentified <category>"`` label).
        library: reference library the type ids refer to (default: the bundled one).
        threshold: probability a group needs, 0.5 < threshold <= 1; default
            ``settings.label_threshold``.
        settings: identification settings (default: from the environment).
        levels: the levels to try, most specific first (default all; ``("role", "size",
            "category")`` for a role inventory).

    Returns:
        The label; ``level == "category"`` when no type, family, role or size class is probable
        enough (or there are no candidates).
    """
    library = library or load_library()
    if threshold is None:
        threshold = (settings or IdentifySettings()).label_threshold
    typed = sorted((c for c in candidates if c.type_id != UNKNOWN_ID), key=lambda c: -c.probability)
    rows = {c.type_id: _row(library, c.type_id) for c in typed}
    for level, key_of in _group_keys(library).items():
        if level not in levels:
            continue
        groups: dict[str, tuple[str, float, list[Candidate]]] = {}
        for c in typed:
            kt = key_of(c, rows[c.type_id])
            if kt is None:
                continue
            key, text = kt
            _, p, members = groups.get(key, (text, 0.0, []))
            groups[key] = (text, p + c.probability, [*members, c])
        if not groups:
            continue
        key, (text, p, members) = max(groups.items(), key=lambda kv: kv[1][1])
        if p >= threshold - 1e-9:
            plain = key.split(":", 1)[1] if level != "type" and ":" in key else key
            return Label(level, plain, text, min(p, 1.0), tuple(members), threshold)
    return Label(
        "category",
        category,
        f"unidentified {category}",
        sum(c.probability for c in typed),
        tuple(typed),
        threshold,
    )


def label_detection(
    det: Detection,
    *,
    library: Library | None = None,
    threshold: float | None = None,
    settings: IdentifySettings | None = None,
    levels: Sequence[Level] = LEVELS,
) -> Label:
    """:func:`label_candidates` of a detection's stored candidates."""
    return label_candidates(
        det.candidates, det.category, library=library, threshold=threshold, settings=settings, levels=levels
    )


_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_CATEGORY_NOUN = {
    "aircraft": "aircraft",
    "helicopter": "helicopter",
    "ship": "ship",
    "large-vehicle": "large vehicle",
    "small-vehicle": "small vehicle",
}


def _number(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def _plural(noun: str, n: int) -> str:
    """Plural of a noun phrase's head: "heavy helicopter (over 24 m)" -> "heavy helicopters (over 24 m)"."""
    if n == 1:
        return noun
    head, sep, rest = noun.partition(" (")
    if head.endswith(("aircraft", "craft", "s")):
        return noun
    return head + "s" + sep + rest


def label_phrase(label: Label, n: int, *, library: Library | None = None) -> str:
    """How a judgement counts ``n`` objects sharing ``label``.

    ``"two large aircraft consistent with the Il-76 family"``, ``"one aircraft identified as
    B747-400"``, ``"three heavy transports"``, ``"two medium airliner-sized aircraft (33–45 m)"``,
    ``"four aircraft not identified beyond their category"``.
    """
    library = library or load_library()
    cat = next((t.category for c in label.candidates if (t := _row(library, c.type_id)) is not None), None)
    noun = _CATEGORY_NOUN.get(cat or label.key, label.key)
    if label.level == "type":
        return f"{_number(n)} {_plural(noun, n)} identified as {label.text}"
    if label.level == "family":
        sizes = {t.size_class for c in label.candidates if (t := _row(library, c.type_id)) is not None}
        if len(sizes) == 1 and (sc := library.size_classes.get(sizes.pop())) is not None:
            noun = sc.name.split(" (")[0]
        return f"{_number(n)} {_plural(noun, n)} consistent with the {label.text}"
    if label.level in ("role", "size"):
        return f"{_number(n)} {_plural(label.text, n)}"
    return (
        f"{_number(n)} {_plural(_CATEGORY_NOUN.get(label.key, label.key), n)} not identified beyond "
        f"{'its' if n == 1 else 'their'} category"
    )


def identification_sentence(
    detections: Sequence[Detection], *, library: Library | None = None, threshold: float | None = None
) -> str | None:
    """One sentence saying what the identified detections are, at the level each is known.

    ``"Two large aircraft consistent with the Il-76 family, one aircraft identified as B747-400;
    four aircraft not identified beyond their category."`` Detections without candidates (no GSD)
    are left out; None when no detection has candidates.
    """
    library = library or load_library()
    groups: dict[tuple[str, str], tuple[Label, int]] = {}
    for d in detections:
        if not d.candidates:
            continue
        lab = label_detection(d, library=library, threshold=threshold)
        key = (lab.level, lab.key)
        groups[key] = (groups[key][0] if key in groups else lab, (groups[key][1] if key in groups else 0) + 1)
    if not groups:
        return None
    known = sorted(
        (v for v in groups.values() if v[0].identified), key=lambda v: (LEVELS.index(v[0].level), -v[1])
    )
    unknown = [v for v in groups.values() if not v[0].identified]
    parts = [label_phrase(lab, n, library=library) for lab, n in known]
    tail = [label_phrase(lab, n, library=library) for lab, n in unknown]
    text = ", ".join(parts) + ("; " if parts and tail else "") + ", ".join(tail)
    return text[0].upper() + text[1:] + "."
