"""Unit tests of the value codec and of exceptions as data (no server, no kernel).

Values: every allowed type round-trips through ``encode_json``/``decode_json`` and
``encode_arguments``/``decode_arguments``; everything else raises
``SerializationError`` naming the path of the bad value; malformed input raises
``WireError``.  Errors: ``error_to_data``/``error_from_data`` rebuild built-in,
greenroom and portable exceptions as themselves, anything else as ``RemoteError``,
never a ``BaseException`` that is not an ``Exception``, and never carry source text.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from greenroom import server
from greenroom.codec import (
    MAX_DEPTH,
    decode_arguments,
    decode_json,
    encode_arguments,
    encode_json,
)
from greenroom.errors import (
    GreenroomError,
    NoServerFunctionError,
    RemoteError,
    RemoteFrame,
    SerializationError,
    WireError,
)
from greenroom.errors import (
    TimeoutError as GreenroomTimeoutError,
)
from greenroom.media import BlobMedia, URLMedia
from greenroom.portable import portable_class, portable_classes
from greenroom.remote_errors import MAX_SERVER_FRAMES, describe_server_frames, error_from_data, error_to_data
from helpers import normal_form

UTC = datetime.UTC
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
PST = datetime.timezone(datetime.timedelta(hours=-8))


# --------------------------------------------------------------------------- portable classes
# Defined undecorated; the ``portables`` fixture registers them with @portable_class for
# one test and then restores the process-wide registry, so no registration leaks.


class Point:
    """Portable through its ``__dict__``."""

    def __init__(self, x: Any, y: Any) -> None:
        self.x = x
        self.y = y

    def __eq__(self, other: object) -> bool:
        return type(other) is Point and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]


class Money:
    """Portable through ``__serialize__``/``__deserialize__``; keeps a private cache out of the state."""

    def __init__(self, cents: int, currency: str) -> None:
        self.cents = cents
        self.currency = currency
        self._formatted_cache = object()  # not sendable: must not be part of the state

    def __serialize__(self) -> list[Any]:
        return [self.cents, self.currency]

    @classmethod
    def __deserialize__(cls, state: list[Any]) -> Money:
        return cls(*state)


class QuotaExceeded(Exception):
    """A portable exception class with extra attributes."""

    def __init__(self, user: str, limit: int) -> None:
        super().__init__(user, limit)
        self.user = user
        self.limit = limit


class Unregistered:
    """Never registered: not sendable."""


class CustomError(Exception):
    """Neither built in nor portable: arrives as RemoteError."""


@dataclass(slots=True)
class SlottedPoint:
    x: int
    y: int


@pytest.fixture
def portables() -> Iterator[None]:
    """Register the portable test classes for one test; restore the global registry afterwards."""
    saved = (dict(portable_classes.by_name), dict(portable_classes.by_class))
    portable_class(Point)
    portable_class("greenroom.tests.Money")(Money)
    portable_class(QuotaExceeded)
    try:
        yield
    finally:
        portable_classes.by_name.clear()
        portable_classes.by_name.update(saved[0])
        portable_classes.by_class.clear()
        portable_classes.by_class.update(saved[1])


def _json_roundtrip(value: Any, path: str = "return value") -> Any:
    payload, buffers = encode_json(value, path)
    # The payload is strict JSON (no NaN/Infinity literals) in UTF-8.
    json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    return decode_json(payload, buffers)


def _args_roundtrip(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    payload, buffers = encode_arguments(args, kwargs)
    json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    return decode_arguments(payload, buffers)


def _no_constants(name: str) -> None:
    raise AssertionError(f"payload contains the non-JSON constant {name}")


# --------------------------------------------------------------------------- round trips

ROUND_TRIPS: list[tuple[str, Any, Any]] = [
    # (id, value, what arrives)
    ("none", None, None),
    ("true", True, True),
    ("false", False, False),
    ("zero", 0, 0),
    ("int", 42, 42),
    ("negative-int", -7, -7),
    ("int-2**53-1", 2**53 - 1, 2**53 - 1),
    ("int-2**53", 2**53, 2**53),
    ("int-minus-2**53", -(2**53), -(2**53)),
    ("int-2**64", 2**64, 2**64),
    ("int-huge-negative", -(3**200), -(3**200)),
    ("int-4300-digits", 10**4299, 10**4299),
    ("int-minus-4300-digits", -(10**4299), -(10**4299)),
    ("float", 1.5, 1.5),
    ("float-negative-zero", -0.0, -0.0),
    ("float-max", sys.float_info.max, sys.float_info.max),
    ("float-subnormal", 5e-324, 5e-324),
    ("float-tenth", 0.1, 0.1),
    ("nan", math.nan, math.nan),
    ("inf", math.inf, math.inf),
    ("minus-inf", -math.inf, -math.inf),
    ("empty-str", "", ""),
    ("str", "hello", "hello"),
    ("str-latin", "héllo wörld ß", "héllo wörld ß"),
    ("str-cjk", "日本語のテキスト", "日本語のテキスト"),
    ("str-emoji", "🎉 party 👩‍👩‍👧", "🎉 party 👩‍👩‍👧"),
    (
        "str-controls",
        'nul\x00 tab\t nl\n ls\u2028 quote" backslash\\',
        'nul\x00 tab\t nl\n ls\u2028 quote" backslash\\',
    ),
    ("str-looks-like-tag", '{"$dt": "2020-01-01"}', '{"$dt": "2020-01-01"}'),
    ("empty-list", [], []),
    ("list", [1, "a", None, 2.5, True], [1, "a", None, 2.5, True]),
    ("tuple", (1, 2, "three"), [1, 2, "three"]),
    ("nested-tuples", ((1,), [(), (2, (3,))]), [[1], [[], [2, [3]]]]),
    ("empty-dict", {}, {}),
    ("nested-dict", {"a": {"b": {"c": [1, {"d": None}]}}, "e": 1}, {"a": {"b": {"c": [1, {"d": None}]}}, "e": 1}),
    ("dict-order", {"z": 1, "a": 2, "m": 3}, {"z": 1, "a": 2, "m": 3}),
    ("dict-dollar-key", {"$x": 1}, {"$x": 1}),
    ("dict-bare-dollar", {"$": None}, {"$": None}),
    ("dict-looks-like-$dict", {"$dict": [["a", 1]]}, {"$dict": [["a", 1]]}),
    ("dict-looks-like-$media", {"$media": [0, "image/png", None]}, {"$media": [0, "image/png", None]}),
    (
        "dict-looks-like-$obj",
        {"$obj": ["test_codec.Point", {"state": {}}]},
        {"$obj": ["test_codec.Point", {"state": {}}]},
    ),
    ("dict-looks-like-$int", {"$int": "12"}, {"$int": "12"}),
    ("dict-looks-like-$dt", {"$dt": "2020-01-01T00:00:00"}, {"$dt": "2020-01-01T00:00:00"}),
    ("dict-two-dollar-keys", {"$a": 1, "$b": 2}, {"$a": 1, "$b": 2}),
    ("dict-nested-dollar", {"$outer": {"$inner": {"$dict": 1}}}, {"$outer": {"$inner": {"$dict": 1}}}),
    ("dict-non-ascii-keys", {"ключ": 1, "키": [2]}, {"ключ": 1, "키": [2]}),
    (
        "aware-ist",
        datetime.datetime(2024, 3, 1, 9, 15, 30, tzinfo=IST),
        datetime.datetime(2024, 3, 1, 9, 15, 30, tzinfo=IST),
    ),
    (
        "aware-pst",
        datetime.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=PST),
        datetime.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=PST),
    ),
    ("aware-utc", datetime.datetime(2000, 1, 1, tzinfo=UTC), datetime.datetime(2000, 1, 1, tzinfo=UTC)),
    (
        "naive-microseconds",
        datetime.datetime(2021, 6, 7, 8, 9, 10, 123456),
        datetime.datetime(2021, 6, 7, 8, 9, 10, 123456),
    ),
    ("naive-min", datetime.datetime.min, datetime.datetime.min),
    ("naive-max", datetime.datetime.max, datetime.datetime.max),
    ("date", datetime.date(1999, 12, 31), datetime.date(1999, 12, 31)),
    ("date-min", datetime.date.min, datetime.date.min),
    (
        "mixed",
        [{"when": datetime.date(2020, 2, 29), "n": 2**60, "x": math.inf}, ("t",)],
        [{"when": datetime.date(2020, 2, 29), "n": 2**60, "x": math.inf}, ["t"]],
    ),
]


@pytest.mark.parametrize(
    ("value", "expected"), [case[1:] for case in ROUND_TRIPS], ids=[case[0] for case in ROUND_TRIPS]
)
def test_json_round_trip(value: Any, expected: Any) -> None:
    assert normal_form(_json_roundtrip(value)) == normal_form(expected)


@pytest.mark.parametrize(
    ("value", "expected"), [case[1:] for case in ROUND_TRIPS], ids=[case[0] for case in ROUND_TRIPS]
)
def test_arguments_round_trip(value: Any, expected: Any) -> None:
    args, kwargs = _args_roundtrip((value, "second"), {"kw": value, "$odd": value})
    assert normal_form(args) == normal_form([expected, "second"])
    assert normal_form(kwargs) == normal_form({"kw": expected, "$odd": expected})


def test_arguments_empty_and_shapes() -> None:
    assert _args_roundtrip((), {}) == ([], {})
    args, kwargs = _args_roundtrip([1, (2,)], {"only": "$"})
    assert args == [1, [2]]
    assert kwargs == {"only": "$"}


def test_aware_datetime_keeps_its_offset_and_naive_stays_naive() -> None:
    for tz in (IST, PST, UTC):
        sent = datetime.datetime(2024, 7, 1, 12, 0, tzinfo=tz)
        got = _json_roundtrip(sent)
        assert type(got) is datetime.datetime
        assert got.utcoffset() == sent.utcoffset()
        assert (got.hour, got.minute) == (12, 0)
        assert got == sent
    naive = _json_roundtrip(datetime.datetime(2021, 1, 2, 3, 4, 5, 6))
    assert naive.tzinfo is None
    assert naive.microsecond == 6
    date = _json_roundtrip(datetime.date(2021, 1, 2))
    assert type(date) is datetime.date


def test_int_boundaries_keep_type_and_value() -> None:
    for value in (2**53 - 1, 2**53, 2**53 + 1, -(2**53) + 1, -(2**53), -(2**53) - 1, 10**4299):
        got = _json_roundtrip(value)
        assert type(got) is int
        assert got == value
    assert type(_json_roundtrip(True)) is bool


def test_blob_media_travels_as_a_binary_buffer() -> None:
    content = bytes(range(256)) * 4
    media = BlobMedia("image/png", content, name="chart.png")
    payload, buffers = encode_json({"img": media, "again": [media]}, "return value")
    assert len(buffers) == 2
    assert all(bytes(buffer) == content for buffer in buffers)
    assert len(payload) < 200, "Media must not be inlined (e.g. as base64) in the JSON payload"
    # Buffers arrive as views of the received message.
    got = decode_json(payload, [memoryview(bytes(buffer)) for buffer in buffers])
    assert type(got["img"]) is BlobMedia
    assert (got["img"].content_type, got["img"].name, got["img"].get_bytes()) == ("image/png", "chart.png", content)
    assert got["again"][0] == media


def test_blob_media_defaults_and_arguments() -> None:
    empty = BlobMedia("", b"")
    assert normal_form(_json_roundtrip(empty)) == normal_form(empty)
    guessed = BlobMedia(content=b"a,b\n", name="table.csv")
    assert _json_roundtrip(guessed).content_type == "text/csv"
    args, kwargs = _args_roundtrip(
        (BlobMedia("text/plain", b"one"),), {"m": BlobMedia("text/plain", b"two", name="t.txt")}
    )
    assert args[0].get_bytes() == b"one"
    assert (kwargs["m"].get_bytes(), kwargs["m"].name) == (b"two", "t.txt")


def test_url_media_travels_as_its_url_and_is_not_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fetch(self: URLMedia) -> bytes:
        raise AssertionError("URLMedia content must not be fetched to send it")

    monkeypatch.setattr(URLMedia, "get_bytes", no_fetch)
    media = URLMedia("https://example.org/data/file.csv")
    payload, buffers = encode_json(media, "return value")
    assert buffers == []
    got = decode_json(payload, [])
    assert type(got) is URLMedia
    assert (got.url, got.content_type, got.name) == ("https://example.org/data/file.csv", "text/csv", "file.csv")
    named = _json_roundtrip(URLMedia("https://example.org/x", "image/webp", name="pic"))
    assert (named.url, named.content_type, named.name) == ("https://example.org/x", "image/webp", "pic")


def test_portable_class_with_dict_state(portables: None) -> None:
    point = Point(1, [Point(2.5, None), {"when": datetime.date(2020, 1, 1)}])
    got = _json_roundtrip(point)
    assert type(got) is Point
    assert got == point
    args, kwargs = _args_roundtrip((point,), {"p": point})
    assert args[0] == point and kwargs["p"] == point


def test_portable_class_with_serialize(portables: None) -> None:
    payload, _ = encode_json(Money(1999, "EUR"), "return value")
    assert b"greenroom.tests.Money" in payload  # the custom registered name
    got = decode_json(payload, [])
    assert type(got) is Money
    assert (got.cents, got.currency) == (1999, "EUR")


def test_portable_exception_as_a_value(portables: None) -> None:
    got = _json_roundtrip(QuotaExceeded("bob", 3))
    assert type(got) is QuotaExceeded
    assert got.args == ("bob", 3)
    assert (got.user, got.limit) == ("bob", 3)


def test_portable_registrations_do_not_leak() -> None:
    assert Point not in portable_classes.by_class
    with pytest.raises(SerializationError, match=r"^return value: Point cannot be sent"):
        encode_json(Point(1, 2), "return value")


def test_newest_registration_of_a_name_wins(portables: None) -> None:
    class Point2:  # a re-run cell redefining the class under the same name
        pass

    portable_class("test_codec.Point")(Point2)
    assert portable_classes.by_name["test_codec.Point"] is Point2
    assert Point not in portable_classes.by_class
    with pytest.raises(SerializationError):
        encode_json(Point(1, 2), "return value")


def test_portable_slotted_dataclass(portables: None) -> None:
    portable_class(SlottedPoint)
    try:
        got = _json_roundtrip([SlottedPoint(1, 2)])
    except SerializationError as error:
        assert str(error).startswith("return value[0]")
    else:
        assert got == [SlottedPoint(1, 2)]


# --------------------------------------------------------------------------- scalar subclasses


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


class Tag(str):
    pass


class Ratio(float):
    pass


class Flag(enum.IntFlag):
    A = 1
    B = 2


class Mode(str, enum.Enum):
    """The common pre-3.11 "string enum" idiom."""

    FAST = "fast"


class Shouty(str):
    def __str__(self) -> str:
        return self.upper()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Color.GREEN, 2),
        (Flag.A | Flag.B, 3),
        (Tag("label"), "label"),
        (Ratio(0.25), 0.25),
        ([Color.RED, {"t": Tag("x")}], [1, {"t": "x"}]),
    ],
    ids=["IntEnum", "IntFlag", "str-subclass", "float-subclass", "nested"],
)
def test_scalar_subclasses_encode_as_their_base(value: Any, expected: Any) -> None:
    got = _json_roundtrip(value)
    assert normal_form(got) == normal_form(expected)
    args, _ = _args_roundtrip((value,), {})
    assert normal_form(args[0]) == normal_form(expected)


@pytest.mark.parametrize(
    ("value", "expected"), [(Mode.FAST, "fast"), (Shouty("quiet"), "quiet")], ids=["str-Enum", "str-__str__"]
)
def test_str_subclass_sends_its_value_not_its_str(value: Any, expected: str) -> None:
    assert _json_roundtrip(value) == expected


# --------------------------------------------------------------------------- SerializationError and paths

_SET = "set cannot be sent (allowed: "


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (({"tags": {"a", "b"}},), {}, "args[0]['tags']: set cannot be sent"),
        ((1, frozenset()), {}, "args[1]: frozenset cannot be sent"),
        ((b"raw",), {}, "args[0]: bytes cannot be sent"),
        ((bytearray(b"raw"),), {}, "args[0]: bytearray cannot be sent"),
        (([0, [1, object()]],), {}, "args[0][1][1]: object cannot be sent"),
        ((), {"x": {1, 2}}, "kwargs['x']: set cannot be sent"),
        ((), {"opts": {"deep": [(1, b"")]}}, "kwargs['opts']['deep'][0][1]: bytes cannot be sent"),
        ((), {"ok": 1, "bad": Unregistered()}, "kwargs['bad']: Unregistered cannot be sent"),
        ((range(3),), {}, "args[0]: range cannot be sent"),
        ((print,), {}, "args[0]: builtin_function_or_method cannot be sent"),
        ((), {"k": {"a": {1: "x"}}}, "kwargs['k']['a']: dict key 1 is a int; only str keys can be sent"),
        (({(1, 2): "x"},), {}, "args[0]: dict key (1, 2) is a tuple; only str keys can be sent"),
        (({None: "x"},), {}, "args[0]: dict key None is a NoneType; only str keys can be sent"),
        (({b"k": "x"},), {}, "args[0]: dict key b'k' is a bytes; only str keys can be sent"),
        ((10**4300,), {}, "args[0]: int with more than 4300 digits is too large"),
        ((), {"n": [-(10**5000)]}, "kwargs['n'][0]: int with more than 4300 digits is too large"),
    ],
    ids=[
        "set-in-dict",
        "frozenset",
        "bytes",
        "bytearray",
        "object",
        "kwarg-set",
        "kwarg-deep-bytes",
        "unregistered-class",
        "range",
        "function",
        "int-key",
        "tuple-key",
        "none-key",
        "bytes-key",
        "int-4301-digits",
        "negative-int-5001-digits",
    ],
)
def test_arguments_that_cannot_be_sent(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SerializationError) as caught:
        encode_arguments(args, kwargs)
    assert str(caught.value).startswith(message), str(caught.value)


def test_serialization_error_is_the_public_one_and_a_type_error() -> None:
    with pytest.raises(server.SerializationError) as caught:
        encode_json({1, 2}, "return value")
    assert str(caught.value).startswith("return value: " + _SET)
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, GreenroomError)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (set(), "return value: set cannot be sent"),
        ([frozenset({1})], "return value[0]: frozenset cannot be sent"),
        ({"a": [b"x"]}, "return value['a'][0]: bytes cannot be sent"),
        ({"$only": object()}, "return value['$only']: object cannot be sent"),
        (10**4300, "return value: int with more than 4300 digits is too large"),
        ({1: 2}, "return value: dict key 1 is a int; only str keys can be sent"),
    ],
    ids=["set", "frozenset", "bytes", "object-under-dollar-key", "huge-int", "int-key"],
)
def test_return_value_paths(value: Any, message: str) -> None:
    with pytest.raises(SerializationError) as caught:
        encode_json(value, "return value")
    assert str(caught.value).startswith(message), str(caught.value)


def test_portable_state_that_cannot_be_sent_names_the_path(portables: None) -> None:
    with pytest.raises(SerializationError) as caught:
        encode_arguments((Point(1, {2, 3}),), {})
    message = str(caught.value)
    assert message.startswith("args[0]") and "['y']: set cannot be sent" in message, message
    # Money's unsendable private cache is not part of its state (__serialize__ decides).
    encode_arguments((Money(1, "EUR"),), {})


def test_list_cycle() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    with pytest.raises(SerializationError) as caught:
        encode_json(cycle, "return value")
    assert str(caught.value) == "return value[1]: a cycle (the value contains itself)"
    with pytest.raises(SerializationError) as caught:
        encode_arguments((0, {"loop": cycle}), {})
    assert str(caught.value) == "args[1]['loop'][1]: a cycle (the value contains itself)"


def test_dict_cycle() -> None:
    cycle: dict[str, Any] = {"a": 1}
    cycle["self"] = cycle
    with pytest.raises(SerializationError) as caught:
        encode_json(cycle, "return value")
    assert str(caught.value) == "return value['self']: a cycle (the value contains itself)"
    with pytest.raises(SerializationError) as caught:
        encode_arguments((), {"x": [cycle]})
    assert str(caught.value) == "kwargs['x'][0]['self']: a cycle (the value contains itself)"


def test_indirect_cycle_through_a_portable_object(portables: None) -> None:
    outer = Point(1, None)
    outer.y = [outer]
    with pytest.raises(SerializationError, match=r"a cycle \(the value contains itself\)$"):
        encode_json(outer, "return value")


def test_shared_references_are_not_cycles() -> None:
    shared = [1, 2]
    assert _json_roundtrip([shared, shared, {"a": shared}]) == [[1, 2], [1, 2], {"a": [1, 2]}]


def _nested_lists(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def _nested_dicts(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


def test_nesting_up_to_max_depth_round_trips() -> None:
    assert MAX_DEPTH == 200
    assert _json_roundtrip(_nested_lists(MAX_DEPTH)) == _nested_lists(MAX_DEPTH)
    assert _json_roundtrip(_nested_dicts(MAX_DEPTH)) == _nested_dicts(MAX_DEPTH)


def test_nesting_beyond_max_depth_is_refused_with_its_path() -> None:
    with pytest.raises(SerializationError) as caught:
        encode_json(_nested_lists(MAX_DEPTH + 1), "return value")
    assert str(caught.value) == "return value" + "[0]" * MAX_DEPTH + f": nested deeper than {MAX_DEPTH} levels"
    with pytest.raises(SerializationError) as caught:
        encode_arguments((), {"x": _nested_dicts(MAX_DEPTH + 5)})
    assert str(caught.value) == "kwargs['x']" + "['k']" * (MAX_DEPTH - 1) + f": nested deeper than {MAX_DEPTH} levels"
    with pytest.raises(SerializationError):
        encode_json(_nested_lists(10_000), "return value")


def test_portable_objects_near_max_depth_round_trip(portables: None) -> None:
    chain: Any = "leaf"
    for _ in range(80):  # the encoder counts 2 levels per object: 160 < MAX_DEPTH
        chain = Point(chain, None)
    payload, buffers = encode_json(chain, "return value")
    got = decode_json(payload, buffers)
    assert type(got) is Point


@pytest.mark.parametrize("encode_kind", ["encode_json", "encode_arguments"])
def test_lone_surrogate_is_sent_or_refused_cleanly(encode_kind: str) -> None:
    value = {"name": "file\udcff.txt"}
    try:
        if encode_kind == "encode_json":
            got = _json_roundtrip(value)
        else:
            got = _args_roundtrip((value,), {})[0][0]
    except SerializationError as error:
        assert "['name']" in str(error)
    else:
        assert got == value


# --------------------------------------------------------------------------- WireError on malformed input


@pytest.mark.parametrize(
    ("data", "buffers", "message"),
    [
        (b"", [], "malformed JSON payload"),
        (b"{", [], "malformed JSON payload"),
        (b"[1,]", [], "malformed JSON payload"),
        (b"\xff\xfe\xfa", [], "malformed JSON payload"),
        (b'"\xc3\x28"', [], "malformed JSON payload"),
        (b"1" * 5000, [], "malformed JSON payload"),  # int beyond the str conversion limit
        (b"[" * 100_000 + b"]" * 100_000, [], "malformed JSON payload"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, [], "malformed JSON payload"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), [], f"value nested deeper than {MAX_DEPTH} levels"),
        (b'{"$nope":1}', [], "unknown tag '$nope' in an encoded value"),
        (b'{"$":1}', [], "unknown tag '$' in an encoded value"),
        (b'[{"$Dt":"2020-01-01"}]', [], "unknown tag '$Dt' in an encoded value"),
        (b'{"$media":[3,"text/plain",null]}', [b"x"], "malformed $media value"),
        (b'{"$media":[0,"text/plain",null]}', [], "malformed $media value"),
        (b'{"$media":["0","text/plain",null]}', [b"x"], "malformed $media value"),
        (b'{"$media":[0,"text/plain"]}', [b"x"], "malformed $media value"),
        (b'{"$media":5}', [b"x"], "malformed $media value"),
        (b'{"$dt":"yesterday"}', [], "malformed $dt value"),
        (b'{"$dt":"2020-13-01T00:00:00"}', [], "malformed $dt value"),
        (b'{"$dt":"2020-01-01T00:00:00+25:00"}', [], "malformed $dt value"),
        (b'{"$dt":20200101}', [], "malformed $dt value"),
        (b'{"$dt":null}', [], "malformed $dt value"),
        (b'{"$date":"2020-02-30"}', [], "malformed $date value"),
        (b'{"$date":["2020-01-01"]}', [], "malformed $date value"),
        (b'{"$int":"12a"}', [], "malformed $int value"),
        (b'{"$int":"' + b"9" * 5000 + b'"}', [], "malformed $int value"),
        (b'{"$int":null}', [], "malformed $int value"),
        (b'{"$int":NaN}', [], "malformed $int value"),
        (b'{"$float":"1.5"}', [], "malformed $float value"),
        (b'{"$float":"Infinity"}', [], "malformed $float value"),
        (b'{"$float":["nan"]}', [], "malformed $float value"),
        (b'{"$dict":5}', [], "malformed $dict value"),
        (b'{"$dict":[["a"]]}', [], "malformed $dict value"),
        (b'{"$dict":[[1,2,3]]}', [], "malformed $dict value"),
        (b'{"$url":["",null,null]}', [], "malformed $url value"),
        (b'{"$url":"https://x"}', [], "malformed $url value"),
        (b'{"$obj":["nope.Nope",{"state":{}}]}', [], "portable class 'nope.Nope' is not registered here"),
        (
            b'{"$obj":["test_codec.Unregistered",{"state":{}}]}',
            [],
            "portable class 'test_codec.Unregistered' is not registered here",
        ),
        (b'{"$obj":[["unhashable"],{}]}', [], "malformed $obj value"),
        (b'{"$obj":"x"}', [], "malformed $obj value"),
    ],
    ids=lambda item: repr(item[:40])[2:-1] if isinstance(item, bytes) else None,
)
def test_malformed_payload_raises_wire_error(data: bytes, buffers: list[bytes], message: str) -> None:
    with pytest.raises(WireError) as caught:
        decode_json(data, buffers)
    assert str(caught.value).startswith(message), str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        b'{"$obj":["test_codec.Point",["not","a","dict"]]}',
        b'{"$obj":["test_codec.Point",{"state":"ab"}]}',
        b'{"$obj":["test_codec.Point",{"state":[1,2]}]}',
        b'{"$obj":["test_codec.QuotaExceeded",{"args":5,"state":{}}]}',
        b'{"$obj":["greenroom.tests.Money",["x"]]}',
        b'{"$obj":["greenroom.tests.Money",{"state":[1,2,3,4]}]}',
    ],
)
def test_malformed_portable_state_raises_wire_error(portables: None, data: bytes) -> None:
    with pytest.raises(WireError, match=r"^malformed \$obj value"):
        decode_json(data, [])


@pytest.mark.parametrize(
    "data",
    [
        b'{"$obj":["greenroom.tests.Money",{}]}',
        b'{"$obj":["greenroom.tests.Money",{"args":[]}]}',
        b'{"$int":Infinity}',
        b'{"$int":-1e400}',
    ],
    ids=["deserialize-without-state", "deserialize-args-only", "int-Infinity", "int-float-overflow"],
)
def test_malformed_input_escaping_as_other_exceptions(portables: None, data: bytes) -> None:
    with pytest.raises(WireError):
        decode_json(data, [])


@pytest.mark.parametrize(
    "data",
    [b'{"$media":[-1,"text/plain",null]}', b'{"$media":[true,"text/plain",null]}', b'{"$media":[0,"text/plain",[1]]}'],
    ids=["negative-index", "bool-index", "list-name"],
)
def test_media_index_must_be_a_real_index(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_json(data, [b"first", b"second"])


@pytest.mark.parametrize(
    "data",
    [b"[]", b"[[]]", b"[[],{},3]", b"{}", b"[{},[]]", b"[[],[]]", b'"args"', b"null", b'{"$dict":[["a",1]]}'],
)
def test_call_payload_must_be_args_and_kwargs(data: bytes) -> None:
    with pytest.raises(WireError, match="call payload must be"):
        decode_arguments(data, [])


def test_decode_arguments_malformed_json_is_wire_error() -> None:
    with pytest.raises(WireError):
        decode_arguments(b"[[", [])
    with pytest.raises(WireError):
        decode_arguments(b'[[{"$nope":1}],{}]', [])


# --------------------------------------------------------------------------- errors as data


def _no_frames(filename: str) -> None:
    return None


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:  # noqa: BLE001 - any exception, with its traceback
        return caught


def _roundtrip_error(error: BaseException) -> BaseException:
    data = error_to_data(_raised(error), _no_frames)
    json.dumps(data, allow_nan=False)  # what the worker sends is plain JSON
    return error_from_data(json.loads(json.dumps(data)))


def test_builtin_error_with_args_is_rebuilt_as_itself() -> None:
    got = _roundtrip_error(ValueError("bad value", 3, [1, 2]))
    assert type(got) is ValueError
    assert got.args == ("bad value", 3, [1, 2])


def test_key_error_keeps_its_key_and_message() -> None:
    got = _roundtrip_error(KeyError("missing"))
    assert type(got) is KeyError
    assert got.args == ("missing",)
    assert str(got) == "'missing'"


@pytest.mark.parametrize(
    "error",
    [
        ZeroDivisionError("division by zero"),
        TypeError("nope"),
        IndexError(),
        StopIteration(5),
        UnicodeEncodeError("ascii", "é", 0, 1, "ordinal not in range(128)"),
    ],
    ids=["ZeroDivisionError", "TypeError", "IndexError-no-args", "StopIteration", "UnicodeEncodeError"],
)
def test_more_builtin_errors(error: Exception) -> None:
    got = _roundtrip_error(error)
    assert type(got) is type(error)
    assert str(got) == str(error)


def test_builtin_error_with_unsendable_args_keeps_its_message() -> None:
    got = _roundtrip_error(ValueError({1, 2}))
    assert type(got) is ValueError
    assert str(got) == "{1, 2}"


@pytest.mark.parametrize("kind", ["UnicodeDecodeError", "ExceptionGroup"])
def test_builtin_error_with_unusual_constructor_is_still_rebuilt(kind: str) -> None:
    if kind == "UnicodeDecodeError":
        try:
            b"\xff".decode("utf-8")
        except UnicodeDecodeError as error:
            original: Exception = error
    else:
        original = ExceptionGroup("several", [ValueError(1), KeyError(2)])
    got = _roundtrip_error(original)
    assert isinstance(got, Exception)
    assert str(original) in str(got)


def test_os_error_keeps_its_filename() -> None:
    try:
        open("/nonexistent-greenroom-dir/data.csv")  # noqa: SIM115
    except FileNotFoundError as error:
        original = error
    got = _roundtrip_error(original)
    assert type(got) is FileNotFoundError
    assert str(got) == str(original)


@pytest.mark.parametrize(
    "error",
    [
        NoServerFunctionError("no server function named 'nope'"),
        GreenroomTimeoutError("call 'slow' took longer than 30 s"),
    ],
    ids=["NoServerFunctionError", "TimeoutError"],
)
def test_greenroom_errors_are_rebuilt_as_themselves(error: GreenroomError) -> None:
    data = error_to_data(_raised(error), _no_frames)
    assert data["module"] == "greenroom.errors"
    got = error_from_data(data)
    assert type(got) is type(error)
    assert str(got) == str(error)
    if isinstance(error, GreenroomTimeoutError):
        assert isinstance(got, TimeoutError)  # the built-in, so `except TimeoutError` works
        assert type(got) is server.TimeoutError


def test_remote_error_relays_its_type_and_message() -> None:
    first = _roundtrip_error(CustomError("custom failure"))
    again = _roundtrip_error(first)
    assert type(again) is RemoteError
    assert again.type_name == f"{CustomError.__module__}.CustomError"
    assert again.remote_message == "custom failure"


def test_unknown_exception_type_becomes_remote_error() -> None:
    got = _roundtrip_error(CustomError("it broke", 42))
    assert type(got) is RemoteError
    assert isinstance(got, server.RemoteError)
    assert got.type_name == f"{CustomError.__module__}.CustomError"
    assert got.remote_message == "('it broke', 42)"
    assert str(got) == f"{CustomError.__module__}.CustomError: ('it broke', 42)"


def test_unknown_type_from_main_and_forged_modules() -> None:
    got = error_from_data({"type": "Boom", "module": "__main__", "message": "m", "frames": []})
    assert type(got) is RemoteError and got.type_name == "Boom"
    # A type name that is not an exception, or a builtin claimed by another module, is not instantiated.
    for data in (
        {"type": "print", "module": "builtins", "message": "x"},
        {"type": "object", "module": "builtins", "message": "x"},
        {"type": "__class__", "module": "builtins", "message": "x"},
        {"type": "ValueError", "module": "os", "message": "x"},
        {"type": "SerializationError", "module": "evil.errors", "message": "x"},
        {"type": "Popen", "module": "subprocess", "message": "x", "args": [["rm", "-rf", "/"]]},
    ):
        got = error_from_data(data)
        assert type(got) is RemoteError, data
    assert isinstance(error_from_data("not a dict"), WireError)  # type: ignore[arg-type]
    assert isinstance(error_from_data({}), Exception)


def test_portable_exception_is_rebuilt_as_itself(portables: None) -> None:
    data = error_to_data(_raised(QuotaExceeded("bob", 3)), _no_frames)
    assert data["portable"][0] == "test_codec.QuotaExceeded"
    got = error_from_data(json.loads(json.dumps(data)))
    assert type(got) is QuotaExceeded
    assert got.args == ("bob", 3)
    assert (got.user, got.limit) == ("bob", 3)


def test_portable_exception_unknown_to_the_caller_becomes_remote_error(portables: None) -> None:
    data = error_to_data(_raised(QuotaExceeded("bob", 3)), _no_frames)
    del portable_classes.by_name["test_codec.QuotaExceeded"]
    del portable_classes.by_class[QuotaExceeded]
    got = error_from_data(data)
    assert type(got) is RemoteError
    assert got.type_name == f"{QuotaExceeded.__module__}.QuotaExceeded"


@pytest.mark.parametrize(
    "error",
    [
        SystemExit(3),
        SystemExit("bye"),
        KeyboardInterrupt(),
        GeneratorExit(),
        BaseException("base"),
        BaseExceptionGroup("g", [SystemExit(1)]),
    ],
    ids=[
        "SystemExit-code",
        "SystemExit-message",
        "KeyboardInterrupt",
        "GeneratorExit",
        "BaseException",
        "BaseExceptionGroup",
    ],
)
def test_base_exceptions_are_never_rebuilt_as_themselves(error: BaseException) -> None:
    got = _roundtrip_error(error)
    # Raising it in the caller must not exit the kernel or look like Ctrl-C.
    assert isinstance(got, Exception)
    assert type(got) is RemoteError
    assert got.type_name == type(error).__name__
    forged = error_from_data({"type": type(error).__name__, "module": "builtins", "message": "x", "args": ["x"]})
    assert type(forged) is RemoteError


def test_forged_portable_field_cannot_build_arbitrary_types(portables: None) -> None:
    data = {
        "type": "SystemExit",
        "module": "builtins",
        "message": "0",
        "portable": ["test_codec.QuotaExceeded", {"$obj": ["builtins.SystemExit", {"args": [0], "state": {}}]}],
    }
    got = error_from_data(data)
    assert type(got) is RemoteError
    data["portable"] = ["test_codec.QuotaExceeded", {"$obj": ["test_codec.Point", {"state": {"x": 1, "y": 2}}]}]
    assert type(error_from_data(data)) is RemoteError  # a portable non-exception is not raised


SECRET_SOURCE = """\
def check_password(attempt):
    ANSWER_KEY = "hunter2-top-secret"
    if attempt != ANSWER_KEY:
        raise ValueError("wrong password")
"""


def _server_error() -> tuple[BaseException, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(SECRET_SOURCE, "<greenroom-cell-7>", "exec"), namespace)  # noqa: S102 - a fake notebook cell
    try:
        namespace["check_password"]("guess")
    except ValueError as error:
        caught = error

    def locate(filename: str) -> tuple[str, int] | None:
        return ("calc.server.ipynb", 7) if filename == "<greenroom-cell-7>" else None

    return caught, locate


def test_frames_only_from_located_files_and_no_source_text() -> None:
    error, locate = _server_error()
    data = error_to_data(error, locate)
    # This test file's own frame is not a notebook frame: it is dropped.
    assert data["frames"] == [["calc.server.ipynb", 7, 4, "check_password"]]
    assert set(data) <= {"type", "module", "message", "frames", "args", "portable"}
    text = json.dumps(data)
    for secret in ("hunter2-top-secret", "ANSWER_KEY", "attempt", "guess", "if attempt"):
        assert secret not in text
    got = error_from_data(json.loads(text))
    assert type(got) is ValueError
    assert got.args == ("wrong password",)
    assert got.remote_frames == [RemoteFrame("calc.server.ipynb", 7, 4, "check_password")]  # type: ignore[attr-defined]
    shown = "".join(traceback.format_exception(got))
    assert 'File "<server notebook calc.server.ipynb, cell 7>", line 4, in check_password' in shown
    assert "(the source stays on the server)" in shown
    for secret in ("hunter2", "ANSWER_KEY", "attempt !=", "raise ValueError"):
        assert secret not in shown and secret not in describe_server_frames(got)
    assert describe_server_frames(got) == (
        'Server traceback (most recent call last):\n  notebook "calc.server.ipynb", cell 7, line 4, in check_password'
    )


def test_no_located_frames_means_no_server_traceback() -> None:
    error, _ = _server_error()
    data = error_to_data(error, _no_frames)
    assert data["frames"] == []
    got = error_from_data(data)
    assert got.remote_frames == [] and got.__traceback__ is None  # type: ignore[attr-defined]
    assert describe_server_frames(got) == ""


def test_hostile_frames_make_a_bounded_printable_traceback() -> None:
    frames = [["x.server.ipynb\n  File fake", 1, 10**12, "f\x1b[31m" * 100]] * 1000
    got = error_from_data({"type": "ValueError", "module": "builtins", "message": "m", "frames": frames})
    entries = traceback.extract_tb(got.__traceback__)
    assert len(entries) == MAX_SERVER_FRAMES
    assert all("\n" not in entry.filename and "\x1b" not in entry.name for entry in entries)


def test_malformed_frames_are_skipped() -> None:
    data = {
        "type": "ValueError",
        "module": "builtins",
        "message": "m",
        "args": ["m"],
        "frames": [["nb", "x", 1, "f"], "junk", None, ["nb", 1], ["a.server.ipynb", 2, 3, "g"]],
    }
    got = error_from_data(data)
    assert got.remote_frames == [RemoteFrame("a.server.ipynb", 2, 3, "g")]  # type: ignore[attr-defined]


def test_non_list_frames_are_ignored() -> None:
    got = error_from_data({"type": "ValueError", "module": "builtins", "message": "m", "frames": 5})
    assert type(got) is ValueError


def test_nested_call_keeps_inner_frames_of_builtin_errors() -> None:
    error, locate = _server_error()
    inner = error_from_data(error_to_data(error, locate))  # arrives in the outer server function
    relayed = error_to_data(_raised(inner), _no_frames)
    assert ["calc.server.ipynb", 7, 4, "check_password"] in relayed["frames"]


def test_nested_call_frames_are_in_call_order() -> None:
    inner = error_from_data(
        {"type": "Boom", "module": "m", "message": "x", "frames": [["inner.server.ipynb", 1, 2, "inner"]]}
    )
    namespace: dict[str, Any] = {}
    exec(compile("def outer(e):\n    raise e\n", "<outer-cell>", "exec"), namespace)  # noqa: S102
    try:
        namespace["outer"](inner)
    except RemoteError as error:
        relayed = error_to_data(error, lambda f: ("outer.server.ipynb", 3) if f == "<outer-cell>" else None)
    assert relayed["frames"] == [["outer.server.ipynb", 3, 2, "outer"], ["inner.server.ipynb", 1, 2, "inner"]]


def test_portable_exception_relayed_through_a_nested_call(portables: None) -> None:
    namespace: dict[str, Any] = {}
    exec(compile("def f(e):\n    raise e\n", "<cell-1>", "exec"), namespace)  # noqa: S102
    try:
        namespace["f"](QuotaExceeded("bob", 3))
    except QuotaExceeded as error:
        first = error_from_data(error_to_data(error, lambda f: ("a.server.ipynb", 1) if f == "<cell-1>" else None))
    assert type(first) is QuotaExceeded
    relayed = error_from_data(error_to_data(_raised(first), _no_frames))
    assert type(relayed) is QuotaExceeded


def test_error_with_unsendable_portable_state_falls_back(portables: None) -> None:
    error = QuotaExceeded("bob", 3)
    error.limit = {1, 2}  # type: ignore[assignment]
    data = error_to_data(_raised(error), _no_frames)
    assert "portable" not in data
    got = error_from_data(data)
    assert type(got) is RemoteError
    assert got.type_name.endswith("QuotaExceeded")
