"""Arrays and tables as values, without a server: numpy arrays and scalars, pandas objects and Arrow tables
round-trip through the codec as binary frames; what cannot be data is refused naming its path; hostile
frames are refused without reading past them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from greenroom.codec import decode_json, encode_arguments, encode_json
from greenroom.errors import SerializationError, WireError
from greenroom.portable import PortableRegistry


def round_trip(value: Any, registry: PortableRegistry | None = None) -> Any:
    payload, buffers = encode_json(value, "value", registry)
    assert b"pickle" not in payload
    return decode_json(payload, [bytes(buffer) for buffer in buffers], registry)


ARRAYS = {
    "bool": np.array([True, False, True]),
    "int8": np.arange(-5, 5, dtype=np.int8),
    "uint64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "big-endian int32": np.arange(6, dtype=">i4").reshape(2, 3),
    "float16": np.linspace(0, 1, 7, dtype=np.float16),
    "float64 with nan and inf": np.array([np.nan, np.inf, -np.inf, 1.5]),
    "complex128": np.array([1 + 2j, -3.5j]),
    "datetime64[ns]": np.array(["2024-02-29T12:00:00.000000001", "NaT"], dtype="datetime64[ns]"),
    "datetime64[D]": np.arange("2024-01", "2024-02", dtype="datetime64[D]"),
    "timedelta64[ms]": np.array([1, -2, 3], dtype="timedelta64[ms]"),
    "bytes": np.array([b"ab", b"c"]),
    "str": np.array(["naïve", "ü", ""]),
    "structured": np.zeros(4, dtype=[("x", "<f4"), ("tag", "S3"), ("pair", "<i2", (2,))]),
    "0-d": np.array(7.25),
    "empty": np.zeros((0, 3)),
    "3-d fortran": np.asfortranarray(np.arange(24.0).reshape(2, 3, 4)),
    "non-contiguous": np.arange(100).reshape(10, 10)[::3, 1::2],
    "large": np.random.default_rng(1).random((512, 1024)),
}


@pytest.mark.parametrize("name", ARRAYS)
def test_arrays_arrive_writeable_with_the_same_dtype_shape_and_values(name):
    array = ARRAYS[name]
    got = round_trip({"nested": [array]})["nested"][0]
    assert type(got) is np.ndarray and got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    assert got.flags.writeable
    assert got.flags.f_contiguous if name == "3-d fortran" else got.flags.c_contiguous
    got[...] = got  # writeable in fact


def test_a_contiguous_array_is_sent_without_a_copy():
    array = np.arange(1000.0)
    _, buffers = encode_json(array, "value")
    assert np.shares_memory(np.frombuffer(buffers[0], dtype=np.float64), array)


def test_numpy_scalars_arrive_as_the_matching_python_value():
    assert round_trip([np.int64(5), np.float32(1.5), np.bool_(True), np.str_("s"), np.complex64(1 + 2j)]) == [
        5,
        1.5,
        True,
        "s",
        1 + 2j,
    ]
    assert [type(item) for item in round_trip([np.int64(5), np.bool_(True)])] == [int, bool]
    assert round_trip(np.datetime64("2024-03-01T10:30")) == __import__("datetime").datetime(2024, 3, 1, 10, 30)
    # Without a Python equivalent in the codec they arrive as 0-d arrays of their dtype.
    for scalar in (np.timedelta64(5, "s"), np.datetime64(1, "ns"), np.bytes_(b"ab")):
        got = round_trip(scalar)
        assert got.shape == () and got.dtype == np.asarray(scalar).dtype and got[()] == scalar


def frame_with_everything() -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples([(1, "a"), (1, "b"), (2, "a")], names=["group", "member"])
    return pd.DataFrame(
        {
            "ints": [1, 2, 3],
            "nullable": pd.array([1, None, 3], dtype="Int64"),
            "floats": [0.5, np.nan, 2.5],
            "text": ["x", None, "z"],
            "category": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
            "when": pd.date_range("2024-03-30 23:00", periods=3, freq="h", tz="Europe/Paris"),
            "naive": pd.to_datetime(["2024-01-01", None, "2024-01-03"]),
            "span": pd.to_timedelta([1, 2, None], unit="s"),
            "flags": [True, False, True],
        },
        index=index,
    )


def test_dataframes_keep_columns_dtypes_index_names_categoricals_and_time_zones():
    frame = frame_with_everything()
    got = round_trip({"df": frame})["df"]
    pd.testing.assert_frame_equal(got, frame)
    assert got["when"].dt.tz is not None and got["category"].cat.ordered


def test_series_and_indexes_keep_their_names_and_dtypes():
    for series in (pd.Series([1, 2], name="n", index=["a", "b"]), pd.Series([1.5, None]), pd.Series(["x"], name=0)):
        pd.testing.assert_series_equal(round_trip(series), series)
    for index in (
        pd.Index([3, 1], name="k"),
        pd.DatetimeIndex(["2024-01-01"], tz="UTC", name="t"),
        pd.CategoricalIndex(["a", "b", "a"]),
        pd.MultiIndex.from_arrays([[1, 2], ["x", "y"]], names=["i", "s"]),
        pd.RangeIndex(5),
    ):
        pd.testing.assert_index_equal(round_trip(index), index, exact=True)


def test_frames_with_integer_and_multiindex_columns_and_no_rows():
    for frame in (
        pd.DataFrame({0: [1], 1: [2]}),
        pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])),
        pd.DataFrame({"a": pd.Series([], dtype="float64")}),
    ):
        pd.testing.assert_frame_equal(round_trip(frame), frame)


def test_arrow_tables_arrive_as_themselves():
    table = pa.table({"x": [1, 2, None], "s": ["a", "b", "c"], "l": [[1], [], [2, 3]]})
    assert round_trip([table])[0].equals(table)


def test_arrays_and_tables_nest_in_portable_classes_and_in_arguments():
    registry = PortableRegistry()

    class Scores:
        def __init__(self, table: pd.DataFrame, weights: np.ndarray) -> None:
            self.table = table
            self.weights = weights

    registry.register(Scores, "Scores")

    got = round_trip(Scores(pd.DataFrame({"a": [1]}), np.ones(3)), registry)
    assert isinstance(got, Scores) and got.table["a"].tolist() == [1] and got.weights.tolist() == [1, 1, 1]
    payload, buffers = encode_arguments((np.arange(3),), {"frame": pd.DataFrame({"b": [2]})})
    assert len(buffers) == 2 and len(payload) < 200  # the data rides in the buffers, not the JSON


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"df": pd.DataFrame({"col": [object(), object()]})},
            r"args\[0\]\['df'\]\['col'\]: object column \(holds object\)",
        ),
        ({"df": pd.DataFrame({"mixed": [1, "a"]})}, r"\['mixed'\]: object column \(holds int, str\)"),
        ({"s": pd.Series([object()])}, r"args\[0\]\['s'\]: a Series of objects"),
        ({"df": pd.DataFrame({"a": [1]}, index=[object()])}, r"\['df'\]: its index \(holds object\)"),
        ({"a": np.array([object()])}, r"args\[0\]\['a'\]: an object array cannot be sent"),
        ({"a": np.zeros(2, dtype=[("x", "O")])}, r"a structured dtype holding Python objects"),
        ({"a": np.ma.array([1, 2], mask=[0, 1])}, r"a masked array cannot be sent"),
        ({"df": pd.DataFrame([[1, 2]], columns=["a", "a"])}, r"duplicate column names"),
    ],
)
def test_values_that_are_not_data_are_refused_naming_the_path(value, message):
    with pytest.raises(SerializationError, match=message):
        encode_arguments((value,), {})


def test_a_refusal_never_quotes_the_values():
    secret = "answer-key-do-not-show"
    with pytest.raises(SerializationError) as refused:
        encode_json(pd.DataFrame({"mixed": [secret, 1]}), "result")
    assert secret not in str(refused.value)


# -- hostile frames ---------------------------------------------------------------------------------------


def decode_tagged(tag: str, description: list[Any], frame: bytes) -> Any:
    return decode_json(json.dumps({tag: [0, *description]}).encode(), [frame])


@pytest.mark.parametrize(
    ("description", "frame", "message"),
    [
        (["<f8", [3], False], b"\0" * 16, "needs 24 bytes; its frame has 16"),
        (["<f8", [2**62, 2**62], False], b"\0" * 8, "needs"),
        (["<f8", [-1], False], b"", "sizes"),
        (["<f8", [1] * 65, False], b"\0" * 8, "at most 64"),
        (["|O", [1], False], b"\0" * 8, "not a numpy type string"),
        ([[["x", "|O"]], [1], False], b"\0" * 8, "not a numpy type string"),
        (["not a dtype", [1], False], b"\0" * 8, "not a numpy type string"),
        (["|a1", [8], False], b"\0" * 8, "not a numpy type string"),  # numpy reads it, with a DeprecationWarning
        (["float64", [1], False], b"\0" * 8, "not a numpy type string"),
        ([[["x"]], [1], False], b"\0" * 8, "fields are"),
        (["<U0", [10**9], False], b"", "zero-size items"),
        (["<f8", [1], "yes"], b"\0" * 8, "description"),
        ([{"descr": "<f8"}, [1], False], b"\0" * 8, "description"),
    ],
)
def test_hostile_array_frames_are_refused(description, frame, message):
    with pytest.raises(WireError, match=message):
        decode_tagged("$nd", description, frame)


def ipc_stream(table: pa.Table, **options: Any) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(**options)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def hostile_streams() -> dict[str, bytes]:
    good = ipc_stream(pa.table({"x": list(range(100))}))
    return {
        "compressed (a decompression bomb would declare any size)": ipc_stream(
            pa.table({"x": [0] * 100_000}), compression="zstd"
        ),
        "run-end encoded (one run can stand for 10**12 rows)": ipc_stream(
            pa.table({"x": pa.RunEndEncodedArray.from_arrays([10**6], [1])})
        ),
        "string views": ipc_stream(pa.table({"x": pa.array(["a"], type=pa.string_view())})),
        "a null column longer than its frame can be": ipc_stream(pa.table({"x": pa.nulls(10**8)})),
        "truncated": good[: len(good) // 2],
        "garbage": b"\xff\xff\xff\xff" + b"\x10\0\0\0" + b"\x01" * 64,
        "empty": b"",
    }


@pytest.mark.parametrize("name", list(hostile_streams()))
@pytest.mark.parametrize("kind", ["table", "frame"])
def test_hostile_arrow_streams_are_refused(name, kind):
    with pytest.raises(WireError):
        decode_tagged("$arrow", [kind, False], hostile_streams()[name])


def test_corrupt_offsets_are_caught_by_full_validation():
    stream = bytearray(ipc_stream(pa.table({"s": ["ab", "cd", "ef"]})))
    offsets = struct_find(stream, [0, 2, 4, 6])
    stream[offsets + 12 : offsets + 16] = (10**6).to_bytes(4, "little")  # the last offset points past the data
    with pytest.raises(WireError, match="malformed Arrow stream"):
        decode_tagged("$arrow", ["frame", False], bytes(stream))


def struct_find(data: bytearray, offsets: list[int]) -> int:
    needle = b"".join(offset.to_bytes(4, "little") for offset in offsets)
    position = data.find(needle)
    assert position >= 0
    return position


@pytest.mark.parametrize("missing", ["numpy", "pyarrow"])
def test_a_side_without_the_data_packages_gets_an_error_naming_the_package(missing, tmp_path):
    frame = pd.DataFrame({"a": [1.0]}) if missing == "pyarrow" else None
    payload, buffers = encode_json(np.arange(3) if missing == "numpy" else frame, "value")
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "buffer").write_bytes(bytes(buffers[0]))
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules[{missing!r}] = None  # as if it were not installed
        from greenroom.codec import decode_json
        from greenroom.errors import SerializationError
        try:
            decode_json(open("payload", "rb").read(), [open("buffer", "rb").read()])
        except SerializationError as error:
            print(error)
        """
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert missing in shown and "pip install 'greenroom[data]'" in shown
