"""Ladon values <-> JSON, with Ladon's own converters.

Arguments and results cross process boundaries (child processes, Redis, workers on other
hosts) as JSON only. Encoding uses ``ladon.types.expand_value`` with every primitive
turned into a string, and decoding feeds that back through Ladon's ``TypeConverter`` and
``LadonType(prime_dict=...)`` - the same path a request takes - so a value means the
same thing on both sides and falsy values (``0``, ``''``, ``False``) survive.
"""

from __future__ import annotations

import json
from typing import Any

from ladon.types import expand_value, get_type_info, validate_type
from ladon.types.attachment import attachment
from ladon.types.ladontype import LadonType
from ladon.types.typemanager import TypeManager
from ladon.types.typeconverter import TypeConverter


class CodecError(ValueError):
    """A value does not fit its declared Ladon type."""


#: Ladon's converter holds only its settings, so one instance serves every call.
CONVERTER = TypeConverter(encoding="UTF-8", allow_unsafe_conversion=False, only_strings_to_unicode=False)


def type_name(ladon_type: Any) -> str:
    """How faults and the dashboard name a Ladon type."""
    if isinstance(ladon_type, (list, tuple)):
        return f"[{type_name(ladon_type[0])}]"
    return getattr(ladon_type, "__name__", repr(ladon_type))


def declare(ladon_type: Any) -> Any:
    """Make a LadonType (or a list of one) known to Ladon's converters, and return it.
    Ladon learns a type when a ``@ladonize`` signature names it; a type only a step's
    ``rtype`` names (:mod:`ladon_tasks.steps`) is learnt here, the same way."""
    element = ladon_type[0] if isinstance(ladon_type, (list, tuple)) and ladon_type else ladon_type
    if isinstance(element, type) and issubclass(element, LadonType) and get_type_info(element) is None:
        TypeManager().analyze_class(element)
    return ladon_type


def uses_attachments(ladon_type: Any) -> bool:
    """Whether the type holds attachments, which cannot be stored as JSON."""
    if isinstance(ladon_type, (list, tuple)):
        return uses_attachments(ladon_type[0])
    return ladon_type is attachment


def check_value(ladon_type: Any, value: Any) -> None:
    """Raise :class:`CodecError` unless ``value`` is what Ladon would accept for the type."""
    if not validate_type(ladon_type, value):
        got = type(value).__name__
        if isinstance(value, (list, tuple)) and value:
            got = f"[{type(value[0]).__name__}, ...]"
        raise CodecError(f"expected {type_name(ladon_type)}, got {got}")


def encode(ladon_type: Any, value: Any) -> Any:
    """A JSON-able form of ``value``; raises :class:`CodecError` on a type mismatch."""
    check_value(ladon_type, value)
    try:
        return expand_value(value, ladon_type, only_strings_to_unicode=False)
    except Exception as exc:  # Ladon raises its own type errors from deep inside
        raise CodecError(f"cannot convert {type_name(ladon_type)}: {exc}") from exc


def decode(ladon_type: Any, data: Any) -> Any:
    """The Python value Ladon's dispatcher expects for ``ladon_type``."""
    converter = CONVERTER
    if isinstance(ladon_type, (list, tuple)):
        return [decode(ladon_type[0], item) for item in (data or [])]
    if get_type_info(ladon_type) is not None:
        return ladon_type(prime_dict=data, tc=converter, export_dict={})
    return converter.from_unicode_string(data, ladon_type)


def typed_form(ladon_type: Any, data: Any) -> Any:
    """The stored JSON form of a value with every primitive in its declared type (the
    stored form keeps an int as ``"3"``; this gives ``3``): for people reading values.
    Raises :class:`CodecError` when ``data`` does not fit the type."""
    try:
        return expand_value(decode(ladon_type, data), ladon_type, only_strings_to_unicode=True)
    except Exception as exc:  # Ladon raises its own type errors from deep inside
        raise CodecError(f"cannot read {type_name(ladon_type)}: {exc}") from exc


def encode_args(arg_types: tuple[Any, ...], args: tuple[Any, ...]) -> list[Any]:
    """Arguments of the declared types as JSON values."""
    _check_count(arg_types, args)
    return [encode(typ, value) for typ, value in zip(arg_types, args, strict=True)]


def decode_args(arg_types: tuple[Any, ...], data: list[Any]) -> list[Any]:
    """JSON values back into arguments of the declared types (a job kept from before its
    method's signature changed no longer fits: a CodecError, not a silent cut)."""
    _check_count(arg_types, data)
    return [decode(typ, value) for typ, value in zip(arg_types, data, strict=True)]


def _check_count(arg_types: tuple[Any, ...], values: Any) -> None:
    if len(values) != len(arg_types):
        raise CodecError(f"{len(arg_types)} argument(s) declared, {len(values)} given")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(data: Any) -> str:
    """Compact JSON text, as every store and queue keeps it."""
    return _ENCODER.encode(data)


def loads(text: str | bytes) -> Any:
    """A value from JSON text written by :func:`dumps`."""
    return json.loads(text)
