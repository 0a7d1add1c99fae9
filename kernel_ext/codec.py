"""The value codec: Python values <-> JSON text plus binary buffers.

Allowed values: None, bool, int, float, complex, str, list, tuple (arrives as
list), dict with str keys, ``datetime.datetime``, ``datetime.date``, Media,
portable classes, background tasks (:mod:`greenroom.tasks`: as their id), numpy
arrays and scalars (:mod:`greenroom.arrays`), pandas objects and Arrow tables
(:mod:`greenroom.tables`).  Media, arrays and tables
travel as binary buffers.  Anything else raises :class:`SerializationError`
before anything is sent, naming the path of the bad value
(``args[0]['tags']: set``).  Never pickle.

Special values are one-key dicts whose key starts with ``$``; a user dict of
that shape is escaped as ``{"$dict": [[key, value], ...]}``.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from typing import Any, TypeAlias

from . import arrays, tables
from .errors import SerializationError, WireError
from .media import BlobMedia, Media, URLMedia
from .portable import PortableRegistry, portable_classes, rebuild, state_of
from .tasks import Task, task_from_wire
from .wire import MAX_PARTS

__all__ = [
    "MAX_BUFFERS",
    "MAX_DEPTH",
    "Buffers",
    "count_values",
    "decode",
    "decode_arguments",
    "decode_json",
    "encode",
    "encode_arguments",
    "encode_json",
]

#: Deepest nesting of containers accepted in either direction.
MAX_DEPTH = 200
#: Most Media one value carries: its buffers, the route, the payload and the session's part fit in a message.
MAX_BUFFERS = MAX_PARTS - 3

Jsonable: TypeAlias = Any
Buffers: TypeAlias = list[bytes | memoryview]

_ALLOWED = (
    "None, bool, int, float, complex, str, list, tuple, dict with str keys, datetime, date, "
    "greenroom.Media, greenroom Tasks, @server.portable_class classes, numpy arrays, pandas objects and Arrow "
    "tables"
)
_SCALARS = (str, int, float, type(None))


class _Encoder:
    def __init__(self, registry: PortableRegistry) -> None:
        self.buffers: Buffers = []
        self.registry = registry
        self.active: set[int] = set()

    def encode(self, value: Any, path: str, depth: int) -> Jsonable:
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return value
        if kind is int:
            if -(2**53) < value < 2**53:
                return value
            try:
                return {"$int": str(value)}
            except ValueError:
                raise SerializationError(f"{path}: int with more than 4300 digits is too large") from None
        if kind is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if depth >= MAX_DEPTH:
            raise SerializationError(f"{path}: nested deeper than {MAX_DEPTH} levels")
        if kind is list or kind is tuple:
            return self._container(value, path, depth, self._sequence)
        if kind is dict:
            return self._container(value, path, depth, self._mapping)
        if isinstance(value, datetime.datetime):
            return {"$dt": value.isoformat()}
        if isinstance(value, datetime.date):
            return {"$date": value.isoformat()}
        if isinstance(value, URLMedia):
            return {"$url": [value.url, value.content_type, value.name]}
        if isinstance(value, Media):
            self.buffers.append(value.get_bytes())
            return {"$media": [len(self.buffers) - 1, value.content_type, value.name]}
        if kind is Task:
            return {"$task": [value.get_id(), value._name]}
        name = self.registry.by_class.get(kind)
        if name is not None:
            return self._container(value, path, depth, functools.partial(self._portable, name))
        if kind is complex:
            return {"$complex": [self.encode(value.real, path, depth), self.encode(value.imag, path, depth)]}
        numpy_kind = arrays.numpy_kind(value)
        if numpy_kind == "array":
            return self._buffer(arrays.ARRAY_TAG, *arrays.encode_array(value, path))
        if numpy_kind == "scalar":
            return self.encode(arrays.scalar_value(value), path, depth)
        if isinstance(value, bool | int | float | str):  # subclasses such as IntEnum
            return self._base_scalar(value, path, depth)
        table_kind = tables.table_kind(value)
        if table_kind is not None:
            return self._buffer(tables.TABLE_TAG, *tables.encode_table(value, table_kind, path))
        raise SerializationError(f"{path}: {kind.__qualname__} cannot be sent (allowed: {_ALLOWED})")

    def _buffer(self, tag: str, description: list[Any], buffer: bytes | memoryview) -> Jsonable:
        self.buffers.append(buffer)
        return {tag: [len(self.buffers) - 1, *description]}

    def _base_scalar(self, value: Any, path: str, depth: int) -> Jsonable:
        # The base type's own conversion, never a subclass's __str__ (a (str, Enum) member sends its value).
        __tracebackhide__ = True
        if isinstance(value, int):
            return self.encode(int.__index__(value), path, depth)
        if isinstance(value, float):
            return self.encode(float.__float__(value), path, depth)
        return self.encode(str.__str__(value), path, depth)

    def _container(self, value: Any, path: str, depth: int, encode_items: Any) -> Jsonable:
        __tracebackhide__ = True
        marker = id(value)
        if marker in self.active:
            raise SerializationError(f"{path}: a cycle (the value contains itself)")
        self.active.add(marker)
        try:
            return encode_items(value, path, depth + 1)
        finally:
            self.active.discard(marker)

    def _sequence(self, value: list[Any] | tuple[Any, ...], path: str, depth: int) -> Jsonable:
        __tracebackhide__ = True
        out = []
        for index, item in enumerate(value):  # a loop, not a comprehension: its frame would show in tracebacks
            out.append(self.encode(item, f"{path}[{index}]", depth))
        return out

    def _mapping(self, value: dict[Any, Any], path: str, depth: int) -> Jsonable:
        __tracebackhide__ = True
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise SerializationError(
                    f"{path}: dict key {key!r} is a {type(key).__qualname__}; only str keys can be sent"
                )
            out[key] = self.encode(item, f"{path}[{key!r}]", depth)
        if len(out) == 1 and next(iter(out)).startswith("$"):
            return {"$dict": [[key, item] for key, item in out.items()]}
        return out

    def _portable(self, name: str, value: Any, path: str, depth: int) -> Jsonable:
        __tracebackhide__ = True
        return {"$obj": [name, self._mapping(state_of(value), path, depth)]}


def encode(value: Any, path: str, registry: PortableRegistry | None = None) -> tuple[Jsonable, Buffers]:
    """Encode ``value`` into a JSON-able structure and binary buffers."""
    __tracebackhide__ = True  # IPython shows the caller's line, not this frame
    encoder = _Encoder(registry or portable_classes)
    tree = encoder.encode(value, path, 0)
    _check_buffers(encoder.buffers, path)
    return tree, encoder.buffers


def _check_buffers(buffers: Buffers, path: str) -> None:
    __tracebackhide__ = True  # IPython shows the caller's line, not this frame
    if len(buffers) > MAX_BUFFERS:
        raise SerializationError(
            f"{path}: carries {len(buffers)} binary values (Media, arrays, tables); one value may carry at most "
            f"{MAX_BUFFERS}"
        )


_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_to_ascii_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _dumps(tree: Jsonable) -> bytes:
    try:
        return _to_json(tree).encode()
    except UnicodeEncodeError:
        # A lone surrogate (an undecodable file name): \u escapes keep the JSON valid UTF-8 and round-trip.
        return _to_ascii_json(tree).encode()


def encode_json(value: Any, path: str, registry: PortableRegistry | None = None) -> tuple[bytes, Buffers]:
    """Encode ``value`` as UTF-8 JSON bytes plus buffers."""
    __tracebackhide__ = True  # IPython shows the caller's line, not this frame
    tree, buffers = encode(value, path, registry)
    return _dumps(tree), buffers


class _Decoder:
    def __init__(self, buffers: Buffers, registry: PortableRegistry, from_client: bool) -> None:
        self.buffers = buffers
        self.registry = registry
        self.from_client = from_client

    def decode(self, tree: Jsonable, depth: int) -> Any:
        kind = type(tree)
        if kind in _SCALARS or kind is bool:
            return tree
        if depth >= MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        if kind is list:
            return [self.decode(item, depth + 1) for item in tree]
        if kind is not dict:
            raise WireError(f"unexpected {kind.__name__} in an encoded value")
        if len(tree) == 1:
            ((key, data),) = tree.items()
            if key.startswith("$"):
                return self._special(key, data, depth)
        return {key: self.decode(item, depth + 1) for key, item in tree.items()}

    def _special(self, key: str, data: Any, depth: int) -> Any:
        try:
            if key == "$dt":
                return datetime.datetime.fromisoformat(data)
            if key == "$date":
                return datetime.date.fromisoformat(data)
            if key == "$int":
                if not isinstance(data, str):
                    raise ValueError("an encoded int is a string of digits")
                return int(data)
            if key == "$float":
                if data not in ("nan", "inf", "-inf"):
                    raise ValueError(data)
                return float(data)
            if key == "$dict":
                return {str(k): self.decode(v, depth + 1) for k, v in data}
            if key == arrays.ARRAY_TAG:
                index, descr, shape, fortran = data
                return arrays.decode_array(self._buffer_at(index), descr, shape, fortran)
            if key == tables.TABLE_TAG:
                index, kind, unnamed = data
                return tables.decode_table(self._buffer_at(index), kind, unnamed)
            if key == "$complex":
                real, imag = (self.decode(part, depth + 1) for part in data)
                if not all(type(part) in (int, float) for part in (real, imag)):
                    raise ValueError("a complex number is [real, imag]")
                return complex(real, imag)
            if key == "$media":
                index, content_type, name = data
                buffer = self._buffer_at(index)
                if not isinstance(content_type, str) or not (name is None or isinstance(name, str)):
                    raise ValueError("content type and name must be strings")
                return BlobMedia(content_type, buffer, name=name)
            if key == "$url":
                url, content_type, name = data
                return URLMedia(url, content_type, name, from_client=self.from_client)
            if key == "$task":
                task_id, name = data
                if not isinstance(task_id, str) or not isinstance(name, str) or not 0 < len(task_id) <= 64:
                    raise ValueError("a task is [id, name]")
                return task_from_wire(task_id, name)
            if key == "$obj":
                name, state = data
                cls = self.registry.by_name.get(name)
                if cls is None:
                    raise WireError(
                        f"portable class {name!r} is not registered here: define it in a module "
                        "both sides import and decorate it with @server.portable_class"
                    )
                return rebuild(cls, self.decode(state, depth))
        except (WireError, SerializationError):
            raise
        except (TypeError, ValueError, IndexError, AttributeError, KeyError, OverflowError) as error:
            raise WireError(f"malformed {key} value: {error}") from None
        raise WireError(f"unknown tag {key!r} in an encoded value")

    def _buffer_at(self, index: Any) -> bytes | memoryview:
        if type(index) is not int or not 0 <= index < len(self.buffers):
            raise ValueError(f"no buffer {index!r}")
        return self.buffers[index]


def decode(
    tree: Jsonable, buffers: Buffers, registry: PortableRegistry | None = None, *, from_client: bool = False
) -> Any:
    """Rebuild a value from :func:`encode` output."""
    return _Decoder(buffers, registry or portable_classes, from_client).decode(tree, 0)


#: A JSON string (with its escapes): what :func:`count_values` skips.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
#: Payloads smaller than this hold too few values to matter: no count.
_COUNT_FROM = 65536


def count_values(data: bytes) -> int:
    """An upper bound on the values JSON ``data`` would decode to (containers, items, entries), found at C
    speed without decoding: the ``[``, ``{`` and ``,`` outside strings."""
    bare = _JSON_STRING.sub(b"", data)
    return bare.count(b"[") + bare.count(b"{") + bare.count(b",")


def decode_json(
    data: bytes | memoryview,
    buffers: Buffers,
    registry: PortableRegistry | None = None,
    *,
    from_client: bool = False,
    max_values: int | None = None,
    what: str = "value",
) -> Any:
    """Rebuild a value from :func:`encode_json` output; :class:`WireError` if malformed.  ``from_client``
    marks the URLs of :class:`URLMedia` as a client's (see :attr:`URLMedia.from_client`).  ``max_values``:
    :class:`SerializationError` before decoding when the payload holds more values (see :func:`count_values`)."""
    raw = bytes(data)
    if max_values is not None and len(raw) >= _COUNT_FROM:
        count = count_values(raw)
        if count > max_values:
            raise SerializationError(
                f"{what}: about {count:,} values, more than the {max_values:,} one call may carry "
                "(GreenroomApp.max_values); send bulk data as Media"
            )
    try:
        tree = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise WireError(f"malformed JSON payload: {error}") from None
    return decode(tree, buffers, registry, from_client=from_client)


def encode_arguments(
    args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], registry: PortableRegistry | None = None
) -> tuple[bytes, Buffers]:
    """Encode call arguments as one payload; paths read ``args[0]...`` and ``kwargs['x']...``."""
    __tracebackhide__ = True  # IPython shows the caller's line, not this frame
    encoder = _Encoder(registry or portable_classes)
    tree = [encoder.encode(list(args), "args", 0), encoder.encode(kwargs, "kwargs", 0)]
    _check_buffers(encoder.buffers, "arguments")
    return _dumps(tree), encoder.buffers


def decode_arguments(
    data: bytes | memoryview, buffers: Buffers, max_values: int | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """Inverse of :func:`encode_arguments`; :class:`WireError` if malformed, :class:`SerializationError` past
    ``max_values``.  Arguments come from a caller: their URLs are marked as a client's."""
    decoded = decode_json(data, buffers, from_client=True, max_values=max_values, what="arguments")
    if not (
        isinstance(decoded, list)
        and len(decoded) == 2
        and isinstance(decoded[0], list)
        and isinstance(decoded[1], dict)
    ):
        raise WireError("call payload must be [args, kwargs]")
    return decoded[0], decoded[1]
