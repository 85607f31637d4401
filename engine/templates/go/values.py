"""Go values: what a template sees, with Go's types where they change how a value prints.

A template's data is Python values standing in for Go ones: ``None`` is a nil
``interface{}``, :data:`MISSING` Go's invalid ``reflect.Value``, and the ``Go*``
classes carry the type name, nil-ness and ``String()`` method that change how
``fmt``, ``encoding/json`` and the executor treat them. :func:`truth` is
text/template's ``truth``, :func:`describe` the type name its errors give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class _Missing:
    """Go's invalid ``reflect.Value``: a missing key after a pipeline, printed ``<no value>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


class _NilPointer:
    """A typed nil pointer (``ToolProperty.Properties`` when absent): prints ``<nil>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_POINTER"


MISSING = _Missing()
NIL_POINTER = _NilPointer()
# None stands for a nil interface{} held in a map, slice or struct field (JSON null, a missing
# map key under missingkey=zero): printing it gives "<nil>", reading a field of it is an error.


class GoSlice(list[Any]):
    """A Go slice with a type: ``nil`` (JSON ``null``) apart from empty, maybe a ``String()`` method."""

    def __init__(
        self, items: Sequence[Any] = (), *, type_name: str, nil: bool = False, stringer: bool = False
    ):
        super().__init__(items)
        self.type_name = type_name
        self.nil = nil and not items
        self.stringer = stringer


class GoMap(dict[str, Any]):
    """A Go map with string keys: its element type's zero for a missing key, maybe a ``String()``."""

    def __init__(
        self,
        items: Mapping[str, Any] | None = None,
        *,
        type_name: str,
        zero: Callable[[], Any] = lambda: None,
        stringer: bool = False,
    ):
        super().__init__(items or {})
        self.type_name = type_name
        self.nil = items is None
        self.zero = zero
        self.stringer = stringer


class PropertyType(list[str]):
    """``api.PropertyType``: prints as its one type, or as ``[a b]``; JSON a string or a list."""

    def __init__(self, types: Sequence[str] = (), *, nil: bool = False):
        super().__init__(types)
        self.nil = nil and not types


class OrderedProperties(dict[str, Any]):
    """``*api.ToolPropertiesMap`` inside a property: opaque to a template, JSON in insertion order."""


@dataclass(eq=False)
class GoStruct:
    """A Go struct value (or a pointer to one) with its fields in declaration order.

    ``tags`` maps a field to its JSON name and omitempty, or is None for a
    struct without tags; ``stringer`` marks a ``String()`` that prints the
    struct as its JSON; ``methods`` names the methods a template must not call.
    """

    type_name: str
    fields: dict[str, Any]
    tags: dict[str, tuple[str, bool]] | None = None
    pointer: bool = False
    stringer: bool = False
    methods: frozenset[str] = frozenset()


def truth(v: Any) -> bool:
    if v is None or v is MISSING or v is NIL_POINTER:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | bytes | list | dict):
        return len(v) > 0
    return True  # structs, non-nil pointers


def describe(v: Any) -> str:
    if v is MISSING or v is None:
        return "nil"
    if isinstance(v, GoStruct | GoSlice | GoMap):
        return v.type_name
    return type(v).__name__
