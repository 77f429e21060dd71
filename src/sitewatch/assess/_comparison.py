"""Reading what assess needs from compare-stage objects (Comparison, ObjectChange).

The compare stage's :class:`~sitewatch.compare.Comparison` carries the two passes it compared,
its matched object changes (``status`` in arrived/departed/remained/moved), per-zone pixel change
and registration quality. These helpers read those fields by attribute and fall back to the
``to_dict()`` form, so assess works with either.
"""

from __future__ import annotations

from typing import Any

from sitewatch.types import Detection, Pass


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if isinstance(obj, dict):
            if n in obj and obj[n] is not None:
                return obj[n]
        elif getattr(obj, n, None) is not None:
            return getattr(obj, n)
    return default


def pass_ids(comp: Any) -> tuple[int | None, int | None]:
    """Store ids of the earlier and later pass of a comparison (None when unknown)."""
    a = _get(comp, "a", "pass_a")
    b = _get(comp, "b", "pass_b")

    def pid(p: Any, *names: str) -> int | None:
        if isinstance(p, Pass):
            return p.id
        if isinstance(p, dict) and p.get("id") is not None:
            return p["id"]
        return _get(comp, *names)

    return pid(a, "a_id", "pass_a_id"), pid(b, "b_id", "pass_b_id")


def ref(comp: Any) -> str:
    """Evidence reference of a comparison: ``comparison:<a>-<b>``."""
    a, b = pass_ids(comp)
    return f"comparison:{a}-{b}"


def objects(comp: Any) -> list[Any]:
    """The object changes of a comparison."""
    return list(_get(comp, "objects", default=[]) or [])


def status(obj: Any) -> str:
    return str(_get(obj, "status", default=""))


def category(obj: Any) -> str | None:
    c = _get(obj, "category")
    if c is None:
        det = detection(obj)
        c = det.category if det is not None else None
    return c


def detection(obj: Any) -> Detection | None:
    """The detection an object change is about (the later one when it exists)."""
    for name in ("det_b", "det_a"):
        d = _get(obj, name)
        if isinstance(d, Detection):
            return d
        if isinstance(d, dict) and "category" in d:
            return Detection.from_dict(d)
    return None


def detection_ids(obj: Any) -> list[int]:
    out = []
    for name in ("det_a", "det_b"):
        d = _get(obj, name)
        i = d.id if isinstance(d, Detection) else (d.get("id") if isinstance(d, dict) else None)
        if i is not None:
            out.append(int(i))
    return out


def zone(obj: Any) -> str | None:
    return _get(obj, "zone")


def not_observed(comp: Any) -> str | None:
    """Why a comparison's passes share no observed ground, or None when they do."""
    nc = _get(comp, "not_compared", default={}) or {}
    return nc.get("not observed") if isinstance(nc, dict) else None


def registration_quality(comp: Any) -> float | None:
    reg = _get(comp, "registration")
    q = _get(reg, "quality") if reg is not None else None
    return float(q) if q is not None else None


def pixel_change_pct(comp: Any, zone_name: str | None = None) -> float | None:
    """Percentage of pixels changed but not explained by objects (a zone, or the mean over zones)."""
    pc = _get(comp, "pixel_change")
    if not pc:
        return None
    items = dict(pc.items() if isinstance(pc, dict) else ((_get(z, "zone"), z) for z in pc))
    if zone_name is None and "site" in items:
        zone_name = "site"
    vals = []
    for name, z in items.items():
        if zone_name is not None and name != zone_name:
            continue
        unexplained = _get(z, "pct_unexplained")
        if unexplained is None and _get(z, "pct_changed") is not None:
            # pct_explained_by_objects is the share (percent) of the changed pixels inside object boxes.
            unexplained = float(_get(z, "pct_changed")) * (
                1.0 - float(_get(z, "pct_explained_by_objects", default=0.0)) / 100.0
            )
        if unexplained is not None:
            vals.append(float(unexplained))
    return sum(vals) / len(vals) if vals else None
