"""The words claims are extracted with: equipment types, generic equipment words, states, places.

Specific equipment types come from the identify stage's reference library
(:func:`sitewatch.identify.library.load_library`): every type's id, name, aliases and
designations become names it can be recognised by. Watched sites and their aliases come from
:func:`sitewatch.sites.list_sites`. Generic words, count words, activity states and attribution
cues are package data (``data/vocabulary.yaml``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml
from spacy.lang.en.stop_words import STOP_WORDS

from sitewatch.errors import ClaimsError

log = logging.getLogger(__name__)

#: A model-like designation: letters, a hyphen, then a part with a digit or a short capital code
#: ("Su-24M2", "S-400", "An-124s", "Orion-X", "MiG-31K").
DESIGNATION_RE = re.compile(r"\b[A-Z][A-Za-z]{0,6}-(?:\d[A-Za-z0-9]*|[A-Z]{1,3}\d*[a-z]?)\b")

_COMMON_WORDS = {
    "classic",
    "spirit",
    "eagle",
    "atlas",
    "bone",
    "jumbo",
    "hip",
    "curl",
    "cub",
    "halo",
    "viper",
    "galaxy",
    "sentry",
    "extender",
    "pegasus",
    "lancer",
    "orion",
    "grizzly",
    "mustang",
    "tor",
    "may",
    "bear",
    "cock",
    "coot",
    "clank",
    "crusty",
    "careless",
    "mitten",
    "buff",
    "ural",
}
_NOT_EQUIPMENT = {"covid", "al", "us", "uk", "eu", "nato", "un"}


def norm_designation(text: str) -> str:
    """Lower-case a designation and drop spaces and hyphens: ``"Su-24M2"`` -> ``"su24m2"``."""
    return re.sub(r"[\s\-–]", "", text.lower())


@dataclass(frozen=True, slots=True)
class TypeEntry:
    """One equipment type as the extractor knows it.

    Attributes:
        type_id: reference-library key.
        name: display name.
        category: detector category (one of :data:`sitewatch.types.CATEGORIES`).
        role: role group (e.g. ``"heavy transport"``).
    """

    type_id: str
    name: str
    category: str
    role: str


@dataclass(slots=True)
class Vocabulary:
    """Everything the claim extractor matches against.

    Attributes:
        designations: normalised designation (``"su24"``) -> type.
        type_names: exact-case names and aliases (``"Ruslan"``, ``"An-124 Ruslan"``) -> type.
        generic: lower-case generic word (with plurals) -> ``{"category", "role"}``.
        states: state name -> ``{"signal", "phrases"}``.
        count_words: lower-case phrase -> ``(min, max)``.
        qualifiers: lower-case phrase -> qualifier kind.
        attribution: attribution cue lists.
        reliability: admiralty letter -> ``{"label", "weight"}``.
        places: lower-case site name/title/alias -> site name (slug).
    """

    designations: dict[str, TypeEntry] = field(default_factory=dict)
    type_names: dict[str, TypeEntry] = field(default_factory=dict)
    generic: dict[str, dict[str, str | None]] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    count_words: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    qualifiers: dict[str, str] = field(default_factory=dict)
    attribution: dict[str, list[str]] = field(default_factory=dict)
    reliability: dict[str, dict[str, Any]] = field(default_factory=dict)
    places: dict[str, str] = field(default_factory=dict)

    def resolve_designation(self, text: str) -> TypeEntry | None:
        """The library type a designation names, trying sub-variants ("Su-24M2" -> "Su-24M" -> "Su-24").

        A trailing plural "s" is dropped first ("An-124s" -> "An-124").
        """
        key = norm_designation(text)
        candidates = [key]
        if key.endswith("s") and len(key) > 2 and key[-2].isalnum():
            candidates.insert(0, key[:-1])
        for cand in candidates:
            core = re.match(r"[a-z]+\d+", cand)
            k = cand
            # Strip variant suffixes back to the numeric core: "su24m2" -> "su24m" -> "su24".
            while k:
                if k in self.designations:
                    return self.designations[k]
                if core is None or len(k) <= core.end():
                    break
                k = k[:-1]
        return None


@cache
def package_vocabulary_data() -> dict[str, Any]:
    """The parsed ``data/vocabulary.yaml`` (cached)."""
    text = resources.files("sitewatch.assess").joinpath("data/vocabulary.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _plural(word: str) -> str:
    last = word.split()[-1]
    if last.endswith(("s", "x", "ch", "sh")):
        return word + "es" if not last.endswith("s") else word
    if last.endswith("y") and last[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _type_names(t: Any) -> list[str]:
    names = [getattr(t, "name", "") or ""]
    for attr in ("aliases", "designations", "nato_name", "reporting_name"):
        v = getattr(t, attr, None)
        if isinstance(v, str):
            names.append(v)
        elif v:
            names.extend(str(x) for x in v)
    return [n for n in names if n]


def _add_library(vocab: Vocabulary, library: Any) -> None:
    for t in getattr(library, "types", library):
        entry = TypeEntry(
            str(t.id), str(getattr(t, "name", t.id)), str(t.category), str(getattr(t, "role", "") or "")
        )
        names = _type_names(t)
        for text in [str(t.id), *names]:
            for m in DESIGNATION_RE.finditer(text):
                vocab.designations.setdefault(norm_designation(m.group(0)), entry)
        vocab.designations.setdefault(norm_designation(str(t.id)), entry)
        for n in names:
            # One-word aliases that are common English words ("May", "Classic") are not names in prose.
            if " " not in n and (n.lower() in STOP_WORDS or n.lower() in _COMMON_WORDS):
                continue
            if not DESIGNATION_RE.fullmatch(n):
                vocab.type_names.setdefault(n, entry)
                # "An-124 Ruslan" is also recognised by its non-designation part ("Ruslan").
                rest = DESIGNATION_RE.sub("", n).strip(" -()")
                if rest and rest[:1].isupper() and len(rest) > 3:
                    vocab.type_names.setdefault(rest, entry)


def _add_sites(vocab: Vocabulary, sites: Any) -> None:
    for s in sites:
        for n in [s.name, getattr(s, "title", None), *(getattr(s, "aliases", None) or [])]:
            if n:
                vocab.places.setdefault(str(n).lower(), s.name)
                vocab.places.setdefault(str(n).lower().replace("-", " "), s.name)


def default_library() -> Any:
    """The reference library of the identify stage.

    Raises:
        ClaimsError: when the library cannot be loaded.
    """
    try:
        from sitewatch.identify.library import load_library
    except ImportError as e:  # pragma: no cover - the identify stage ships with the package
        raise ClaimsError(f"reference library unavailable: {e}") from e
    return load_library()


def default_sites() -> list[Any]:
    """The watched sites (bundled watchlist and user additions); empty, with a warning, if unavailable."""
    try:
        from sitewatch.sites import list_sites
    except ImportError:  # pragma: no cover - the sites stage ships with the package
        log.warning("watched sites unavailable: places in text will not be resolved")
        return []
    return list_sites()


def build_vocabulary(library: Any | None = None, sites: Any | None = None) -> Vocabulary:
    """Assemble the vocabulary from package data, the reference library and the watched sites.

    Args:
        library: a reference library (object with ``.types``) or a list of types; default
            :func:`sitewatch.identify.library.load_library`.
        sites: watched sites (objects with ``name``, ``title``, ``aliases``); default
            :func:`sitewatch.sites.list_sites`.
    """
    data = package_vocabulary_data()
    vocab = Vocabulary()
    _add_library(vocab, default_library() if library is None else library)
    _add_sites(vocab, default_sites() if sites is None else sites)
    for word, spec in data["equipment_words"].items():
        info = {"category": spec["category"], "role": spec.get("role")}
        vocab.generic[word] = info
        vocab.generic[spec.get("plural") or _plural(word)] = info
    vocab.states = data["states"]
    vocab.count_words = {
        k: (int(v[0]), None if v[1] is None else int(v[1])) for k, v in data["count_words"].items()
    }
    vocab.qualifiers = dict(data["count_qualifiers"])
    vocab.attribution = data["attribution"]
    vocab.reliability = data["reliability"]
    log.debug(
        "vocabulary: %d designations, %d names, %d places",
        len(vocab.designations),
        len(vocab.type_names),
        len(vocab.places),
    )
    return vocab
