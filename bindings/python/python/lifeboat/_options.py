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


def encode(op: str, params: Mapping[str, Any]) -> str:
    """An operation's parameters (its ``locals()``) as one JSON object.

    ``None`` means "not given" and is left out, as is ``on_progress``. Wrong
    types are refused by the native side with :class:`UsageError` naming the
    option.
    """
    options = {k: v for k, v in params.items() if v is not None and k != "on_progress"}
    try:
        return json.dumps(options, default=_jsonable)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{op}: {e}") from None
