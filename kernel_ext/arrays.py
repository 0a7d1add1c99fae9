"""numpy arrays and scalars as values: a JSON description (dtype, shape, order) plus one binary frame.

Sent: the array's bytes, without a copy when it is C- or Fortran-contiguous, and ``[descr, shape,
fortran]`` where ``descr`` is numpy's own dtype description (as in the ``.npy`` header).  Arrays of
bool, integer, float, complex, datetime64/timedelta64, fixed-width bytes and str, and structured dtypes
of those, are values; an array holding Python objects is refused, naming its path.  numpy scalars are
sent as the matching Python value where the codec has one (bool, int, float, complex, str, datetime),
otherwise as a 0-d array.

Invariant: a received description is checked against its frame before any array is made: the dtype
holds no Python objects and the shape's element count times the item size is exactly the frame's
length, so nothing is read past the frame and nothing larger than it is allocated.  numpy is imported
only when an array is sent (then it already is) or arrives.
"""

from __future__ import annotations

import datetime
import re
import sys
from typing import Any

from .errors import SerializationError, WireError

__all__ = ["ARRAY_TAG", "decode_array", "encode_array", "numpy_kind", "scalar_value"]

#: The codec's tag for an array: ``{"$nd": [buffer index, descr, shape, fortran]}``.
ARRAY_TAG = "$nd"
#: Most dimensions a received array may declare (numpy's own limit is 64).
MAX_DIMENSIONS = 64
#: Array kinds that are values: bool, signed, unsigned, float, complex, timedelta, datetime, bytes, str, void.
_KINDS = "biufcmMSUV"

INSTALL_HINT = "pip install 'greenroom[data]'"

#: A numpy type string as ``dtype.str`` writes it: byte order, kind, item size, and a datetime unit.
_TYPESTR = re.compile(r"[<>|=][biufcmMSUV][0-9]+(\[[0-9]*[A-Za-z]+\])?")
_MAX_FIELD_DEPTH = 8


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise SerializationError(f"a numpy array arrived, but numpy is not installed here: {INSTALL_HINT}") from None
    return numpy


def numpy_kind(value: Any) -> str | None:
    """``"array"`` or ``"scalar"`` for numpy values, else None (numpy is never imported to find out)."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    if isinstance(value, numpy.ndarray):
        return "array"
    return "scalar" if isinstance(value, numpy.generic) else None


def scalar_value(value: Any) -> Any:
    """A numpy scalar as the matching Python value, or as a 0-d array when the codec has none."""
    numpy = sys.modules["numpy"]
    if isinstance(value, numpy.timedelta64):  # (a subclass of numpy.integer)
        return numpy.asarray(value)
    if isinstance(value, numpy.datetime64):
        plain = value.item()  # a datetime or date when the unit allows, else an int (nanoseconds)
        return plain if isinstance(plain, datetime.date) else numpy.asarray(value)
    if isinstance(value, numpy.bool_ | numpy.integer | numpy.floating | numpy.complexfloating | numpy.str_):
        return value.item()
    return numpy.asarray(value)


def encode_array(array: Any, path: str) -> tuple[list[Any], Any]:
    """``([descr, shape, fortran], frame)`` for ``array``; :class:`SerializationError` naming ``path`` if it
    cannot be a value.  The frame is a view of the array's memory when it is contiguous."""
    __tracebackhide__ = True  # IPython shows the caller's line, not this frame
    numpy = sys.modules["numpy"]
    if isinstance(array, numpy.ma.MaskedArray):
        raise SerializationError(f"{path}: a masked array cannot be sent (send .filled(...) or a pandas object)")
    dtype = array.dtype
    if dtype.hasobject:
        what = "a structured dtype holding Python objects" if dtype.fields else "an object array"
        raise SerializationError(f"{path}: {what} cannot be sent (its items are Python objects, not data)")
    if dtype.kind not in _KINDS or dtype.itemsize == 0:
        raise SerializationError(f"{path}: arrays of dtype {dtype} cannot be sent")
    fortran = not array.flags.c_contiguous and array.flags.f_contiguous and array.ndim > 1
    contiguous = array.T if fortran else numpy.ascontiguousarray(array)  # a copy only when neither order
    frame = memoryview(contiguous.reshape(-1).view(numpy.uint8)) if contiguous.size else b""
    descr = numpy.lib.format.dtype_to_descr(dtype)
    return [descr, list(array.shape), fortran], frame


def _shape(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_DIMENSIONS:
        raise WireError(f"an array's shape must be a list of at most {MAX_DIMENSIONS} sizes")
    if not all(type(size) is int and size >= 0 for size in raw):
        raise WireError("an array's shape must hold sizes (integers of 0 or more)")
    return tuple(raw)


def _check_descr(descr: Any, depth: int = 0) -> None:
    """Only the type strings an encoder writes (``'<f8'``, ``'|S3'``, ``'<M8[ns]'``...), alone or as the
    fields of a structured dtype: numpy reads many other spellings, some of them with a warning (a
    deprecated alias), and a value from the wire must not make numpy warn."""
    if isinstance(descr, str):
        if not _TYPESTR.fullmatch(descr):
            raise WireError(f"an array's dtype {descr[:100]!r} is not a numpy type string such as '<f8'")
        return
    if not isinstance(descr, list) or depth >= _MAX_FIELD_DEPTH:
        raise WireError("an array's dtype must be a type string or a list of fields")
    for field in descr:
        if not isinstance(field, list) or len(field) not in (2, 3) or not isinstance(field[0], str):
            raise WireError("a structured dtype's fields are [name, dtype] or [name, dtype, shape]")
        if len(field) == 3 and not (
            isinstance(field[2], list) and all(type(size) is int and size >= 0 for size in field[2])
        ):
            raise WireError("a structured dtype field's shape is a list of sizes")
        _check_descr(field[1], depth + 1)


def decode_array(frame: Any, descr: Any, raw_shape: Any, fortran: Any) -> Any:
    """The array a frame and its description stand for; :class:`WireError` unless they match exactly.
    The array is writeable: it shares the frame's memory when that is writeable, else it is a copy."""
    numpy = _numpy()
    if not isinstance(descr, str | list) or type(fortran) is not bool:
        raise WireError("an array's description must be [descr, shape, fortran]")
    _check_descr(descr)
    try:
        dtype = numpy.lib.format.descr_to_dtype(descr)
    except (TypeError, ValueError, KeyError, IndexError, RecursionError) as error:
        raise WireError(f"an array's dtype {str(descr)[:100]!r} is not valid: {error}") from None
    if dtype.hasobject or dtype.kind not in _KINDS:
        raise WireError(f"arrays of dtype {dtype} are not accepted")
    shape = _shape(raw_shape)
    count = 1
    for size in shape:
        count *= size
    view = memoryview(frame)
    if dtype.itemsize == 0:
        raise WireError(f"arrays of zero-size items ({dtype}) are not accepted")
    if count * dtype.itemsize != view.nbytes:
        raise WireError(
            f"an array of shape {shape[:8]} and dtype {dtype} needs {count * dtype.itemsize} bytes; "
            f"its frame has {view.nbytes}"
        )
    flat = numpy.frombuffer(view, dtype=dtype, count=count)
    if not flat.flags.writeable or not flat.flags.aligned:
        flat = flat.copy()
    if fortran:
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)
