"""Reading stage outputs that may be objects or their ``to_dict()`` mappings."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any


def field(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or mapping key ``name`` of a stage output (objects and their ``to_dict`` both work)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")
