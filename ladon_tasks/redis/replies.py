"""Redis replies as Python values: the bottom of the Redis backend, which every other
module of it may use and which uses none of them."""

from __future__ import annotations

from typing import Any


def as_text(value: Any) -> str:
    """A Redis reply as text, whether the connection decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_order(entry: str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as what orders it: entry ids compare as numbers,
    not as text."""
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)
