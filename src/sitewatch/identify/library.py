"""The reference library: published dimensions of equipment types, with their sources.

The data live in package data files (``identify/data/library.yaml``, ``roles.yaml``,
``families.yaml``, ``size_classes.yaml``, ``matching.yaml``); this module loads and validates them. Every row
must cite a public source and have dimensions inside the sane range of its category, or loading fails with a
:class:`~sitewatch.errors.LibraryError` naming the row.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sitewatch.errors import LibraryError
from sitewatch.types import CATEGORIES

_DATA = "sitewatch.identify.data"
_REQUIRED = ("id", "name", "category", "role", "length_m", "width_m", "operators", "source")


@dataclass(frozen=True, slots=True)
class Role:
    """A role group ("heavy transport") with the article and noun used in report phrases."""

    role: str
    article: str
    categories: tuple[str, ...]
    noun: str

    def phrase(self) -> str:
        """``"a heavy transport"``, ``"an AEW aircraft"``."""
        return f"{self.article} {self.noun}"


@dataclass(frozen=True, slots=True)
class Family:
    """Types sharing an airframe, hull or chassis ("Il-76 family"), with the source that says so."""

    id: str
    name: str
    source: str


@dataclass(frozen=True, slots=True)
class SizeClass:
    """A range of the overhead box's long side within one category.

    Attributes:
        id: key, e.g. ``"aircraft-medium"``.
        category: the detection category it applies to.
        name: the phrase a report uses, e.g. ``"medium airliner-sized aircraft (33–45 m)"``.
        long_side_m: ``(min, max)`` of the long side, metres; ``min`` inclusive, ``max`` exclusive.
    """

    id: str
    category: str
    name: str
    long_side_m: tuple[float, float]


@dataclass(frozen=True, slots=True)
class EquipmentType:
    """One row of the reference library.

    Attributes:
        id: unique key, e.g. ``"an-124"``.
        name: display name, e.g. ``"An-124 Ruslan"``.
        aliases: reporting names and designations (``"Condor"``, ``"Ruslan"``).
        category: one of :data:`~sitewatch.types.CATEGORIES`.
        role: role group, one of the roles in ``roles.yaml``.
        length_m: overall length, metres (aircraft: nose to tail; ships: length overall).
        width_m: width, metres (aircraft: wingspan, spread for swing-wing; helicopters: main-rotor
            diameter; ships: beam).
        operators: operator codes (ISO 3166 alpha-2, ``NATO``, ``civil``).
        source: public reference giving the figures (URL or citation).
        span_spread_m, span_swept_m: swing-wing spans, metres, or None.
        tolerance_rel: intrinsic relative 1-sigma of the box dimensions, or None for the category default.
        note: free text (what the figure includes).
        family: id of the type's family in ``families.yaml``, or None (the type is its own family).
        size_class: id of the type's size class (``size_classes.yaml``), from its long side.
    """

    id: str
    name: str
    aliases: tuple[str, ...]
    category: str
    role: str
    length_m: float
    width_m: float
    operators: tuple[str, ...]
    source: str
    span_spread_m: float | None = None
    span_swept_m: float | None = None
    tolerance_rel: float | None = None
    note: str = ""
    family: str | None = None
    size_class: str = ""

    @property
    def swing_wing(self) -> bool:
        return self.span_swept_m is not None

    def box_states(self) -> list[tuple[str, float, float]]:
        """The overhead box sizes this type can show: ``(state, long side m, short side m)``.

        Dimensions are sorted (a detector reports length >= width, and an aircraft whose span
        exceeds its length shows the span as the long side). Swing-wing types have a spread and a
        swept state.
        """
        spans = [("", self.width_m)]
        if self.span_swept_m is not None:  # swing wing
            spans = [("spread", self.span_spread_m or self.width_m), ("swept", self.span_swept_m)]
        return [(state, max(self.length_m, s), min(self.length_m, s)) for state, s in spans]

    @property
    def long_side_m(self) -> float:
        """The largest long side over the box states, metres (what the size class is judged on)."""
        return max(long for _, long, _ in self.box_states())

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id,
            "name": self.name,
            "aliases": list(self.aliases),
            "category": self.category,
            "role": self.role,
            "length_m": self.length_m,
            "width_m": self.width_m,
            "operators": list(self.operators),
            "source": self.source,
        }
        for key in ("span_spread_m", "span_swept_m", "tolerance_rel"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.note:
            d["note"] = self.note
        if self.family:
            d["family"] = self.family
        if self.size_class:
            d["size_class"] = self.size_class
        return d


@dataclass(slots=True)
class Library:
    """The loaded reference library.

    Attributes:
        types: all equipment types, in file order.
        roles: role groups by name.
        matching: per-category matching parameters (``matching.yaml``).
        path: the library file it was loaded from.
        families: families by id (``families.yaml``).
        size_classes: size classes by id (``size_classes.yaml``).
    """

    types: list[EquipmentType]
    roles: dict[str, Role]
    matching: dict[str, Any]
    path: str = ""
    families: dict[str, Family] = field(default_factory=dict)
    size_classes: dict[str, SizeClass] = field(default_factory=dict)
    _index: dict[str, EquipmentType] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for t in self.types:
            for key in (t.id, t.name, *t.aliases):
                self._index.setdefault(_norm(key), t)

    def get(self, key: str) -> EquipmentType:
        """A type by id, name or alias (case-insensitive).

        Raises:
            LibraryError: no type has that id, name or alias.
        """
        t = self._index.get(_norm(key))
        if t is None:
            raise LibraryError(f"unknown equipment type {key!r} (see `sitewatch library list`)")
        return t

    def select(self, *, category: str | None = None, role: str | None = None) -> list[EquipmentType]:
        """Types filtered by category and/or role (case-insensitive), in file order."""
        out = self.types
        if category is not None:
            out = [t for t in out if t.category == category]
        if role is not None:
            out = [t for t in out if t.role.lower() == role.lower()]
        return out

    def role_of(self, type_id: str) -> str:
        """The role group of a type id or alias."""
        return self.get(type_id).role

    def role_phrase(self, role: str, examples: Sequence[str] = ()) -> str:
        """A report phrase for a role group, e.g. ``"a heavy transport (An-124 or C-5 class)"``.

        Args:
            role: a role group name.
            examples: type ids or names to cite (default: the first two library types of the role).

        Raises:
            LibraryError: unknown role.
        """
        r = self.roles.get(role)
        if r is None:
            raise LibraryError(f"unknown role group {role!r}; known: {', '.join(sorted(self.roles))}")
        names = (
            [short_name(self.get(e)) for e in examples]
            if examples
            else [short_name(t) for t in self.select(role=role)[:2]]
        )
        names = list(dict.fromkeys(names))
        if not names:
            return r.phrase()
        cited = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        return f"{r.phrase()} ({cited} class)"


def _norm(key: str) -> str:
    return " ".join(str(key).lower().split())


def short_name(t: EquipmentType) -> str:
    """The designation part of a name: "An-124 Ruslan" -> "An-124", "C-5M Super Galaxy" -> "C-5M"."""
    first = t.name.split(" (")[0]
    if t.category in ("aircraft", "helicopter"):
        return first.split()[0]
    return first.split(" class")[0]


def _read_yaml(name: str) -> Any:
    with resources.files(_DATA).joinpath(name).open("r", encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_roles() -> dict[str, Role]:
    """Role groups from ``roles.yaml``."""
    rows = _read_yaml("roles.yaml")["roles"]
    return {
        r["role"]: Role(r["role"], r["article"], tuple(r["categories"]), r.get("noun", r["role"]))
        for r in rows
    }


def load_families() -> dict[str, Family]:
    """Families from ``families.yaml``."""
    rows = _read_yaml("families.yaml")["families"]
    return {r["id"]: Family(r["id"], r["name"], str(r["source"]).strip()) for r in rows}


def load_size_classes() -> dict[str, SizeClass]:
    """Size classes from ``size_classes.yaml``, by id."""
    doc = _read_yaml("size_classes.yaml")["size_classes"]
    return {
        r["id"]: SizeClass(r["id"], cat, r["name"], (float(r["long_side_m"][0]), float(r["long_side_m"][1])))
        for cat, rows in doc.items()
        for r in rows
    }


def size_class_of(category: str, long_side_m: float, size_classes: dict[str, SizeClass]) -> str | None:
    """Id of the size class of ``category`` whose range holds ``long_side_m`` (metres), or None."""
    for c in size_classes.values():
        if c.category == category and c.long_side_m[0] <= long_side_m < c.long_side_m[1]:
            return c.id
    return None


def _row_long_side(row: dict[str, Any]) -> float:
    spans = [float(row[k]) for k in ("width_m", "span_spread_m", "span_swept_m") if row.get(k) is not None]
    return max(max(float(row["length_m"]), s) for s in spans)


def load_matching() -> dict[str, Any]:
    """Matching parameters from ``matching.yaml``."""
    return _read_yaml("matching.yaml")


def validate_rows(
    rows: Iterable[dict[str, Any]],
    roles: dict[str, Role],
    matching: dict[str, Any],
    families: dict[str, Family] | None = None,
    size_classes: dict[str, SizeClass] | None = None,
) -> list[str]:
    """Check library rows; return one problem string per defect (empty list: valid).

    Checks: required fields present, a non-empty source on every row, valid category and role,
    positive finite dimensions inside the category's plausible range and aspect bounds,
    consistent swing-wing spans, unique ids and unique aliases/names across the library, a known
    family (when given), and a ``size_class`` (when given) that is the class of the row's long side.
    """
    families = load_families() if families is None else families
    size_classes = load_size_classes() if size_classes is None else size_classes
    problems: list[str] = []
    seen_ids: set[object] = set()  # ids as the YAML gives them
    seen_keys: dict[str, object] = {}
    for n, row in enumerate(rows, 1):
        rid = row.get("id") if isinstance(row, dict) else None
        where = f"row {n} ({rid or '?'})"
        if not isinstance(row, dict):
            problems.append(f"{where}: not a mapping")
            continue
        missing = [k for k in _REQUIRED if row.get(k) in (None, "", [])]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            if "id" in missing or "category" in missing:
                continue
        if not str(row.get("source") or "").strip():
            continue  # reported as missing above
        if rid in seen_ids:
            problems.append(f"{where}: duplicate id")
        seen_ids.add(rid)
        for key in (rid, row.get("name"), *(row.get("aliases") or [])):
            if key is None:
                continue
            k = _norm(key)
            if k in seen_keys and seen_keys[k] != rid:
                problems.append(f"{where}: alias/name {key!r} already used by {seen_keys[k]}")
            seen_keys.setdefault(k, rid)
        cat = row["category"]
        if cat not in CATEGORIES:
            problems.append(f"{where}: category {cat!r} not one of {', '.join(CATEGORIES)}")
            continue
        role = roles.get(row.get("role") or "")
        if role is None:
            problems.append(f"{where}: role {row.get('role')!r} not in roles.yaml")
        elif cat not in role.categories:
            problems.append(f"{where}: role {role.role!r} is not valid for category {cat}")
        dim_problems = _check_dims(where, row, matching["categories"][cat]["plausible"])
        problems.extend(dim_problems)
        if row.get("family") is not None and row["family"] not in families:
            problems.append(f"{where}: family {row['family']!r} not in families.yaml")
        if row.get("size_class") is not None and not dim_problems:
            expected = size_class_of(cat, _row_long_side(row), size_classes)
            if row["size_class"] != expected:
                problems.append(
                    f"{where}: size_class {row['size_class']!r} does not hold its long side "
                    f"{_row_long_side(row):g} m (expected {expected!r}, size_classes.yaml)"
                )
    return problems


def _check_dims(where: str, row: dict[str, Any], plausible: dict[str, list[float]]) -> list[str]:
    out: list[str] = []
    dims = {}
    for key in ("length_m", "width_m", "span_spread_m", "span_swept_m"):
        v = row.get(key)
        if v is None:
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            out.append(f"{where}: {key} {row.get(key)!r} is not a number")
            continue
        if not math.isfinite(v) or v <= 0:
            out.append(f"{where}: {key} {v} must be positive")
            continue
        dims[key] = v
    if out or "length_m" not in dims or "width_m" not in dims:
        return out
    lo, hi = plausible["length_m"]
    if not lo <= dims["length_m"] <= hi:
        out.append(f"{where}: length_m {dims['length_m']} outside the plausible {lo}-{hi} m")
    spans = [dims[k] for k in ("width_m", "span_spread_m", "span_swept_m") if k in dims]
    lo, hi = plausible["width_m"]
    alo, ahi = plausible["aspect"]
    for s in spans:
        if not lo <= s <= hi:
            out.append(f"{where}: width {s} outside the plausible {lo}-{hi} m")
        if not alo <= s / dims["length_m"] <= ahi:
            out.append(f"{where}: width/length {s / dims['length_m']:.2f} outside the plausible {alo}-{ahi}")
    if ("span_swept_m" in dims) != ("span_spread_m" in dims):
        out.append(f"{where}: swing-wing rows need both span_spread_m and span_swept_m")
    elif "span_swept_m" in dims and not dims["span_swept_m"] < dims["span_spread_m"]:
        out.append(f"{where}: span_swept_m must be smaller than span_spread_m")
    return out


def library_from_rows(rows: list[dict[str, Any]], *, path: str = "<rows>") -> Library:
    """Build a :class:`Library` from raw rows, validating them.

    Raises:
        LibraryError: one line naming the file and the first defects.
    """
    roles, matching, families, size_classes = (
        load_roles(),
        load_matching(),
        load_families(),
        load_size_classes(),
    )
    problems = validate_rows(rows, roles, matching, families, size_classes)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise LibraryError(f"{path}: invalid reference library: {'; '.join(problems[:3])}{more}")
    types = [
        EquipmentType(
            id=str(r["id"]),
            name=str(r["name"]),
            aliases=tuple(str(a) for a in r.get("aliases") or ()),
            category=r["category"],
            role=r["role"],
            length_m=float(r["length_m"]),
            width_m=float(r["width_m"]),
            operators=tuple(str(o) for o in r["operators"]),
            source=str(r["source"]).strip(),
            span_spread_m=float(r["span_spread_m"]) if r.get("span_spread_m") is not None else None,
            span_swept_m=float(r["span_swept_m"]) if r.get("span_swept_m") is not None else None,
            tolerance_rel=float(r["tolerance_rel"]) if r.get("tolerance_rel") is not None else None,
            note=str(r.get("note") or ""),
            family=str(r["family"]) if r.get("family") else None,
            size_class=str(
                r.get("size_class") or size_class_of(r["category"], _row_long_side(r), size_classes) or ""
            ),
        )
        for r in rows
    ]
    return Library(types, roles, matching, path, families, size_classes)


def load_library(path: str | Path | None = None) -> Library:
    """Load the reference library (default: the bundled ``library.yaml``).

    Args:
        path: an alternative library YAML with a top-level ``types:`` list.

    Raises:
        LibraryError: the file is unreadable or a row is invalid.
    """
    if path is None:
        return _bundled()
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise LibraryError(f"{p}: cannot read reference library ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("types"), list):
        raise LibraryError(f"{p}: reference library needs a top-level 'types:' list")
    return library_from_rows(doc["types"], path=str(p))


@functools.lru_cache(maxsize=1)
def _bundled() -> Library:
    rows = _read_yaml("library.yaml")["types"]
    return library_from_rows(rows, path="sitewatch/identify/data/library.yaml")


def role_of(type_id: str) -> str:
    """The role group of a type in the bundled library (e.g. ``"an-124"`` -> ``"heavy transport"``)."""
    return load_library().role_of(type_id)


def role_phrase(role: str, examples: Sequence[str] = ()) -> str:
    """``"a heavy transport (An-124 or C-5M class)"`` from the bundled library; see
    :meth:`Library.role_phrase`."""
    return load_library().role_phrase(role, examples)
