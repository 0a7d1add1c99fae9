"""pandas objects and Arrow tables as values: one Arrow IPC stream each, never pickle.

Sent: a ``pyarrow.Table`` as itself; a pandas ``DataFrame``, ``Series`` or ``Index`` through
``pyarrow.Table.from_pandas``, whose pandas metadata keeps the index, names, dtypes, categoricals and time
zones; the stream is written uncompressed.  A column of arbitrary Python objects is refused, naming it.

Invariant: a received stream is read from its frame only, and checked before pandas sees it: no
compressed message (whose declared size could exceed the frame many times), only the Arrow types the
sender makes (no views, run-end encoding or unions, whose few bytes can stand for huge values), every
array's length bounded by the frame's size, and ``validate(full=True)`` (offsets, UTF-8, dictionary
indices).  pyarrow and pandas are imported only when such a value is sent (then they already are) or
arrives.
"""

from __future__ import annotations

import struct
import sys
from typing import Any

from .errors import SerializationError, WireError

__all__ = ["TABLE_KINDS", "TABLE_TAG", "decode_table", "encode_table", "table_kind"]

#: The codec's tag for a table: ``{"$arrow": [buffer index, kind, series name is None]}``.
TABLE_TAG = "$arrow"
TABLE_KINDS = ("table", "frame", "series", "index")
INSTALL_HINT = "pip install 'greenroom[data]'"
#: Every received array may have this many elements, or 8 per byte of its frame if that is more.
_MIN_LENGTH_BOUND = 1_000_000


def table_kind(value: Any) -> str | None:
    """``"table"``, ``"frame"``, ``"series"`` or ``"index"`` for the values this module sends, else None."""
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if isinstance(value, pandas.DataFrame):
            return "frame"
        if isinstance(value, pandas.Series):
            return "series"
        if isinstance(value, pandas.Index):
            return "index"
    arrow = sys.modules.get("pyarrow")
    if arrow is not None and isinstance(value, arrow.Table):
        return "table"
    return None


def _pyarrow(doing: str, error: type[Exception]) -> Any:
    try:
        import pyarrow
    except ImportError:
        raise error(f"{doing} needs pyarrow, which is not installed here: {INSTALL_HINT}") from None
    return pyarrow


def _object_column(frame: Any, kind: str, arrow: Any) -> str:
    """Which column (or the index) of ``frame`` Arrow cannot convert, and the types it holds.  Arrow's own
    message is left out: it quotes the values, and a value may be a secret."""
    if kind == "series":
        labelled = [(": a Series of objects", frame.iloc[:, 0])]
    elif kind == "index":
        labelled = []
    else:
        labelled = [(f"[{label!r}]: object column", frame[label]) for label in frame.columns]
    index_name = ": an Index of objects" if kind == "index" else ": its index"
    labelled += [(index_name, frame.index.to_series())]
    for where, column in labelled:
        if column.dtype != object:
            continue
        try:
            arrow.array(column, from_pandas=True)
        except (arrow.ArrowException, TypeError, ValueError):
            kinds = sorted({type(item).__qualname__ for item in column.head(1000)})
            return f"{where} (holds {', '.join(kinds[:4])}), which Arrow cannot store"
    return ""


def encode_table(value: Any, kind: str, path: str) -> tuple[list[Any], Any]:
    """``([kind, series name is None], frame)`` for a table-like value; :class:`SerializationError` naming
    ``path`` (and the column) if it cannot be sent."""
    __tracebackhide__ = True  # IPython shows the caller's line, not this frame
    arrow = _pyarrow(f"{path}: sending a {type(value).__name__}", SerializationError)
    unnamed = False
    if kind == "table":
        table = value
    else:
        pandas = sys.modules["pandas"]
        if kind == "series":
            unnamed = value.name is None
            frame = value.to_frame()
        elif kind == "index":
            frame = pandas.DataFrame(index=value)
        else:
            frame = value
        if frame.columns.has_duplicates:
            raise SerializationError(f"{path}: a {type(value).__name__} with duplicate column names cannot be sent")
        try:
            table = arrow.Table.from_pandas(frame)
        except (arrow.ArrowException, TypeError, ValueError) as error:
            culprit = _object_column(frame, kind, arrow)
            reason = culprit or f": Arrow cannot store this {type(value).__name__} ({type(error).__name__})"
            raise SerializationError(f"{path}{reason}") from None
    return [kind, unnamed], memoryview(_ipc_stream(arrow, table))


def _ipc_stream(arrow: Any, table: Any) -> Any:
    """``table`` as an Arrow IPC stream in one buffer of the exact size (measured by a first pass that copies
    nothing), so that a large table is not copied again each time a growing buffer doubles."""

    def write(sink: Any) -> None:
        with arrow.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)

    measure = arrow.MockOutputStream()
    write(measure)
    stream = arrow.allocate_buffer(measure.size())
    write(arrow.FixedSizeBufferWriter(stream))
    return stream


# -- receiving ---------------------------------------------------------------------------------------------


def _field(buffer: bytes, table: int, index: int) -> int | None:
    """Where field ``index`` of the flatbuffer table at ``table`` is, or None when it is absent."""
    vtable = table - struct.unpack_from("<i", buffer, table)[0]
    vtable_size = struct.unpack_from("<H", buffer, vtable)[0]
    entry = 4 + 2 * index
    if entry + 2 > vtable_size:
        return None
    offset: int = struct.unpack_from("<H", buffer, vtable + entry)[0]
    return table + offset if offset else None


def _follow(buffer: bytes, position: int) -> int:
    offset: int = struct.unpack_from("<I", buffer, position)[0]
    return position + offset


def _is_compressed(metadata: bytes) -> bool:
    """True when an IPC message (its flatbuffer metadata) carries a compressed body.  Message: header_type
    is field 1, header field 2; a RecordBatch has compression as field 3; a DictionaryBatch has its
    RecordBatch as field 1 (Arrow's format/Message.fbs)."""
    message = _follow(metadata, 0)
    type_at, header_at = _field(metadata, message, 1), _field(metadata, message, 2)
    if type_at is None or header_at is None:
        return False
    header_type, header = metadata[type_at], _follow(metadata, header_at)
    if header_type == 2:  # DictionaryBatch
        data_at = _field(metadata, header, 1)
        if data_at is None:
            return False
        header = _follow(metadata, data_at)
    elif header_type != 3:  # not a RecordBatch: a Schema has no body
        return False
    return _field(metadata, header, 3) is not None


def _check_type(arrow: Any, kind: Any, nested: bool) -> None:
    types = arrow.types
    if types.is_dictionary(kind):
        if nested:
            raise WireError("an Arrow dictionary inside a nested column is not accepted")
        _check_type(arrow, kind.value_type, True)
        return
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        _check_type(arrow, kind.value_type, True)
        return
    if types.is_struct(kind) or types.is_map(kind):
        for index in range(kind.num_fields):
            _check_type(arrow, kind.field(index).type, True)
        return
    if isinstance(kind, arrow.ExtensionType):
        _check_type(arrow, kind.storage_type, nested)
        return
    plain = (
        types.is_null,
        types.is_boolean,
        types.is_integer,
        types.is_floating,
        types.is_decimal,
        types.is_temporal,
        types.is_string,
        types.is_large_string,
        types.is_binary,
        types.is_large_binary,
        types.is_fixed_size_binary,
    )
    if not any(test(kind) for test in plain):
        raise WireError(f"Arrow type {kind} is not accepted")


def _check_lengths(arrow: Any, array: Any, bound: int) -> None:
    if len(array) > bound:
        raise WireError(f"an Arrow array of {len(array)} items is more than its frame can hold")
    if isinstance(array, arrow.ExtensionArray):
        _check_lengths(arrow, array.storage, bound)
    elif isinstance(array, arrow.DictionaryArray):
        _check_lengths(arrow, array.dictionary, bound)
    elif isinstance(array, arrow.ListArray | arrow.LargeListArray | arrow.FixedSizeListArray | arrow.MapArray):
        _check_lengths(arrow, array.values, bound)
    elif isinstance(array, arrow.StructArray):
        for index in range(array.type.num_fields):
            _check_lengths(arrow, array.field(index), bound)


def _read_checked(arrow: Any, frame: Any) -> Any:
    source = arrow.py_buffer(frame)
    for message in arrow.ipc.MessageReader.open_stream(source):
        if _is_compressed(message.metadata.to_pybytes()):
            raise WireError("a compressed Arrow stream is not accepted")
    table = arrow.ipc.open_stream(source).read_all()
    for field in table.schema:
        _check_type(arrow, field.type, False)
    bound = max(_MIN_LENGTH_BOUND, 8 * source.size)
    for column in table.columns:
        for chunk in column.chunks:
            _check_lengths(arrow, chunk, bound)
    table.validate(full=True)
    return table


def decode_table(frame: Any, kind: Any, unnamed: Any) -> Any:
    """The value an Arrow IPC frame stands for; :class:`WireError` if it is malformed or not accepted."""
    if kind not in TABLE_KINDS or type(unnamed) is not bool:
        raise WireError("a table's description must be [kind, series name is None]")
    arrow = _pyarrow("receiving an Arrow table or a pandas object", SerializationError)
    if kind != "table":
        try:
            import pandas  # noqa: F401 - registers pandas' Arrow extension types before the stream is read
        except ImportError:
            raise SerializationError(
                f"a pandas object arrived, but pandas is not installed here: {INSTALL_HINT}"
            ) from None
    try:
        table = _read_checked(arrow, frame)
        if kind == "table":
            return table
        frame_value = table.to_pandas()
        if kind == "index":
            return frame_value.index
        if kind == "series":
            if len(frame_value.columns) != 1:
                raise WireError("a Series arrives as a table of one column")
            series = frame_value.iloc[:, 0]
            if unnamed:
                series.name = None
            return series
        return frame_value
    except WireError:
        raise
    except Exception as error:  # noqa: BLE001 - hostile streams make pyarrow and pandas fail in many ways
        raise WireError(f"malformed Arrow stream: {type(error).__name__}: {str(error)[:200]}") from None
