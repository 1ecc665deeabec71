"""Keyword arguments → the JSON options of the native operations."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from .errors import UsageError


def _jsonable(value: Any) -> Any:
    if isinstance(value, (os.PathLike, bytes)):
        return os.fsdecode(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not a string, number, bool, list or path")


def encode(op: str, named: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    """Merge the named parameters and ``**options`` into one JSON object.

    Keys are the command line's long flags in snake_case; ``from_`` stands for
    ``from`` (a Python keyword). ``None`` means "not given". Unknown keys and
    wrong types are refused by the native side with :class:`UsageError`.
    """
    merged: dict[str, Any] = {k: v for k, v in named.items() if v is not None}
    for key, value in options.items():
        key = "from" if key == "from_" else key
        if value is None:
            continue
        if key in merged:
            raise UsageError(f"{op}: option {key!r} given twice")
        merged[key] = value
    try:
        return json.dumps(merged, default=_jsonable)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{op}: {e}") from None
