"""Property tests (hypothesis) and hand-made malformed frames for the codec and the framing.

Properties:
1. every value built from the allowed types round-trips through encode_json/decode_json
   (and encode_arguments/decode_arguments);
2. ``unpack`` of arbitrary bytes returns parts or raises WireError, nothing else;
3. ``parse_route`` of arbitrary bytes returns a dict with a str "kind" or raises WireError;
4. ``decode_json`` of arbitrary JSON-ish text (with random ``$`` tags) returns a value or
   raises WireError.

Example counts are small so the module runs in about a second; set GREENROOM_FUZZ_SCALE=50
for a deeper local run.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import struct
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from greenroom.codec import MAX_DEPTH, decode_arguments, decode_json, encode_arguments, encode_json
from greenroom.errors import WireError
from greenroom.media import BlobMedia, URLMedia
from greenroom.portable import PortableRegistry
from greenroom.wire import MAX_PARTS, frame_prefix, pack, parse_route, recv_message, route_bytes, send_message, unpack
from helpers import normal_form

SCALE = max(1, int(os.environ.get("GREENROOM_FUZZ_SCALE", "1")))
#: Fuzz cases run in this module, by test (hypothesis examples and hand-made cases).
FUZZ_CASES: Counter[str] = Counter()


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,  # nothing written into the repo
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def _report_fuzz_cases() -> Iterator[None]:
    yield
    total = sum(FUZZ_CASES.values())
    details = ", ".join(f"{name}={count}" for name, count in sorted(FUZZ_CASES.items()))
    print(f"\n[greenroom fuzz] {total} cases: {details}", file=sys.stderr)


# --------------------------------------------------------------------------- portable classes (private registry)

REGISTRY = PortableRegistry()


class Point:
    def __init__(self, x: Any, y: Any) -> None:
        self.x = x
        self.y = y


class Money:
    def __init__(self, cents: int, currency: str) -> None:
        self.cents = cents
        self.currency = currency

    def __serialize__(self) -> list[Any]:
        return [self.cents, self.currency]

    @classmethod
    def __deserialize__(cls, state: Any) -> Money:
        return cls(*state)


class Oops(Exception):
    def __init__(self, code: Any) -> None:
        super().__init__(code)
        self.code = code


REGISTRY.register(Point, "fuzz.Point")
REGISTRY.register(Money, "fuzz.Money")
REGISTRY.register(Oops, "fuzz.Oops")


# --------------------------------------------------------------------------- property 1: allowed values round-trip

FIXED_OFFSETS = st.integers(-86399, 86399).map(lambda seconds: datetime.timezone(datetime.timedelta(seconds=seconds)))
# (Offsets with microseconds are left out: CPython 3.11's fromisoformat drops the microseconds of
# "+00:00:00.000001"; no real zone has them.)

SAFE_TEXT = st.text(max_size=12)
DOLLAR_KEYS = st.one_of(
    st.sampled_from(["$", "$dict", "$obj", "$int", "$float", "$media", "$url", "$dt", "$date", "$$"]),
    SAFE_TEXT.map(lambda text: "$" + text),
)
KEYS = st.one_of(SAFE_TEXT, DOLLAR_KEYS)

INTS = st.one_of(
    st.integers(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, -(2**53) + 1, -(2**53), -(2**53) - 1, 10**4299, -(10**4299)]),
    st.integers(-(10**300), 10**300),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
URLS = st.one_of(
    st.builds(lambda path: "https://example.org/" + path, st.text(max_size=20)),
    st.text(min_size=1, max_size=30),
)
MEDIA = st.one_of(
    st.builds(
        BlobMedia,
        content_type=st.one_of(st.just(""), st.sampled_from(["image/png", "text/plain; charset=utf-8"]), SAFE_TEXT),
        content=st.binary(max_size=64),
        name=st.one_of(st.none(), SAFE_TEXT, st.sampled_from(["a.png", "data.csv", "x.tar.gz"])),
    ),
    st.builds(URLMedia, URLS, st.one_of(st.just(""), SAFE_TEXT), st.one_of(st.none(), SAFE_TEXT)),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    FLOATS,
    st.text(),
    st.datetimes(),
    st.datetimes(timezones=FIXED_OFFSETS),
    st.dates(),
    MEDIA,
)


def _containers(children: st.SearchStrategy[Any], portable: bool) -> st.SearchStrategy[Any]:
    options = [
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(KEYS, children, max_size=5),
        st.builds(lambda key, value: {key: value}, DOLLAR_KEYS, children),
    ]
    if portable:
        options += [
            st.builds(Point, children, children),
            st.builds(Money, INTS, st.text(max_size=5)),
            st.builds(Oops, children),
        ]
    return st.one_of(*options)


def allowed_values(portable: bool = True) -> st.SearchStrategy[Any]:
    return st.recursive(SCALARS, lambda children: _containers(children, portable), max_leaves=20)


def _strict_json(payload: bytes) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"payload holds the non-JSON constant {name}")

    json.loads(payload.decode("utf-8"), parse_constant=refuse)


@fuzz_settings(200)
@given(allowed_values())
@example([2**53, -(2**53), float("nan"), float("-inf"), -0.0, (), {"$dict": [["$a", 1]]}])
@example({"$media": [0, "x", None], "a": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)})
def test_allowed_values_round_trip(value: Any) -> None:
    FUZZ_CASES["round_trip_json"] += 1
    payload, buffers = encode_json(value, "return value", REGISTRY)
    _strict_json(payload)
    assert all(isinstance(buffer, bytes | memoryview) for buffer in buffers)
    got = decode_json(payload, [memoryview(bytes(buffer)) for buffer in buffers], REGISTRY)
    assert normal_form(got) == normal_form(value)


@fuzz_settings(100)
@given(
    st.lists(allowed_values(portable=False), max_size=4),
    st.dictionaries(KEYS, allowed_values(portable=False), max_size=4),
)
def test_allowed_arguments_round_trip(args: list[Any], kwargs: dict[str, Any]) -> None:
    FUZZ_CASES["round_trip_arguments"] += 1
    payload, buffers = encode_arguments(tuple(args), kwargs)
    _strict_json(payload)
    got_args, got_kwargs = decode_arguments(payload, buffers)
    assert normal_form(got_args) == normal_form(args)
    assert normal_form(got_kwargs) == normal_form(kwargs)


# --------------------------------------------------------------------------- property 2: unpack


def _check_unpacked(data: bytes, limit: int) -> None:
    try:
        parts = unpack(data, limit)
    except WireError:
        return
    assert 2 <= len(parts) <= MAX_PARTS
    assert sum(len(part) for part in parts) <= limit
    assert pack(parts) == data  # nothing skipped, nothing invented


LIMITS = st.one_of(st.integers(0, 256), st.sampled_from([2**20, 2**63, 2**64]))


@fuzz_settings(300)
@given(st.binary(max_size=256), LIMITS)
@example(b"", 100)
@example(b"\x00\x00\x00\x02" + b"\x00" * 16, 0)
@example(b"\xff\xff\xff\xff", 2**64)
def test_unpack_arbitrary_bytes(data: bytes, limit: int) -> None:
    FUZZ_CASES["unpack_binary"] += 1
    _check_unpacked(data, limit)


@st.composite
def damaged_frames(draw: st.DrawFn) -> bytes:
    """A well-formed message, then maybe cut, extended, a byte changed, or the count/lengths rewritten."""
    parts = draw(st.lists(st.binary(max_size=24), min_size=0, max_size=6))
    data = bytearray(pack(parts))
    action = draw(st.sampled_from(["none", "cut", "extend", "flip", "count", "length"]))
    if action == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif action == "extend":
        data += draw(st.binary(min_size=1, max_size=16))
    elif action == "flip" and data:
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= draw(st.integers(1, 255))
    elif action == "count":
        data[0:4] = struct.pack("!I", draw(st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1))))
    elif action == "length" and parts:
        index = draw(st.integers(0, len(parts) - 1))
        data[4 + 8 * index : 12 + 8 * index] = struct.pack("!Q", draw(st.integers(0, 2**64 - 1)))
    return bytes(data)


@fuzz_settings(300)
@given(damaged_frames(), LIMITS)
def test_unpack_damaged_frames(data: bytes, limit: int) -> None:
    FUZZ_CASES["unpack_damaged"] += 1
    _check_unpacked(data, limit)


@fuzz_settings(100)
@given(st.lists(st.binary(max_size=64), min_size=2, max_size=8))
def test_pack_unpack_round_trip(parts: list[bytes]) -> None:
    FUZZ_CASES["pack_round_trip"] += 1
    data = pack(parts)
    assert data[: 4 + 8 * len(parts)] == frame_prefix(parts)
    got = unpack(data, sum(map(len, parts)))
    assert [bytes(part) for part in got] == parts
    assert all(isinstance(part, memoryview) for part in got)  # views, no copies


# --------------------------------------------------------------------------- property 3: parse_route

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=15,
)
ROUTES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"kind": JSON_VALUES}, optional={"id": JSON_VALUES, "nbuf": JSON_VALUES}),
    st.fixed_dictionaries({"kind": st.text(max_size=10)}, optional={"id": st.integers(), "x": JSON_VALUES}),
)


def _check_route(data: bytes) -> None:
    try:
        route = parse_route(data)
    except WireError:
        return
    assert type(route) is dict
    assert isinstance(route["kind"], str)


@fuzz_settings(300)
@given(st.binary(max_size=128))
@example(b"")
@example(b"\xff")
@example(b"[" * 100_000)
@example(b'{"kind":' * 50_000)
@example(b'{"kind": "call"}')
@example(b'{"kind": 1}')
def test_parse_route_arbitrary_bytes(data: bytes) -> None:
    FUZZ_CASES["parse_route_binary"] += 1
    _check_route(data)


@fuzz_settings(150)
@given(ROUTES, st.sampled_from(["utf-8", "utf-16", "utf-32"]), st.booleans())
def test_parse_route_json_text(route: Any, encoding: str, use_route_bytes: bool) -> None:
    FUZZ_CASES["parse_route_json"] += 1
    if use_route_bytes:
        data = route_bytes(route)
    else:
        data = json.dumps(route).encode(encoding)
    _check_route(data)
    if isinstance(route, dict) and isinstance(route.get("kind"), str) and use_route_bytes:
        assert json.dumps(parse_route(data)) == json.dumps(route)


# --------------------------------------------------------------------------- property 4: decode_json on JSON-ish text

TAGS = ["$dt", "$date", "$int", "$float", "$dict", "$media", "$url", "$obj"]
TAG_KEYS = st.one_of(st.sampled_from(TAGS), st.text(max_size=5).map(lambda text: "$" + text))
HUGE_INTS = st.integers(-(10**4000), 10**4000)


def _tag_data(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    iso = st.one_of(
        st.datetimes().map(datetime.datetime.isoformat),
        st.datetimes(timezones=FIXED_OFFSETS).map(datetime.datetime.isoformat),
        st.dates().map(datetime.date.isoformat),
        st.text(alphabet="0123456789-:T+Z. W", max_size=30),
    )
    return st.one_of(
        children,
        iso,
        st.sampled_from(["nan", "inf", "-inf", "NaN", "1e999", "0x10", "1_000", " 12 ", "", "١٢"]),
        HUGE_INTS.map(str),
        st.lists(children, max_size=4),
        st.lists(st.lists(children, max_size=3), max_size=3),  # $dict pairs
        st.tuples(
            st.one_of(st.integers(-3, 4), st.text(min_size=1, max_size=12)),
            st.one_of(st.none(), st.text(max_size=8), children),
            st.one_of(st.none(), st.text(max_size=8), children),
        ).map(list),
        st.tuples(st.sampled_from(["fuzz.Point", "fuzz.Money", "fuzz.Oops", "nope"]), children).map(list),
        st.tuples(
            st.sampled_from(["fuzz.Point", "fuzz.Money", "fuzz.Oops"]),
            st.fixed_dictionaries({}, optional={"state": children, "args": children}),
        ).map(list),
    )


def _jsonish(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), TAG_KEYS), children, max_size=4),
        st.builds(lambda key, data: {key: data}, TAG_KEYS, _tag_data(children)),
    )


JSONISH = st.recursive(
    st.one_of(JSON_SCALARS, HUGE_INTS, st.floats(allow_nan=True, allow_infinity=True)),
    _jsonish,
    max_leaves=20,
)


def _check_decode(data: bytes, buffers: list[bytes]) -> None:
    try:
        decode_json(data, buffers, REGISTRY)
    except WireError:
        pass


@fuzz_settings(400)
@given(JSONISH, st.lists(st.binary(max_size=8), max_size=3))
@example({"$int": float("inf")}, [])
@example({"$obj": ["fuzz.Money", {}]}, [])
@example({"$media": [0, "", {"a": 1}]}, [b"x"])
@example([[[[{"$dict": [["$obj", {"$obj": ["fuzz.Point", {"state": {"x": {"$int": "1"}}}]}]]}]]]], [])
def test_decode_json_jsonish(tree: Any, buffers: list[bytes]) -> None:
    FUZZ_CASES["decode_jsonish"] += 1
    _check_decode(json.dumps(tree, allow_nan=True).encode(), buffers)


@fuzz_settings(200)
@given(st.binary(max_size=128))
def test_decode_json_arbitrary_bytes(data: bytes) -> None:
    FUZZ_CASES["decode_binary"] += 1
    _check_decode(data, [])


DESCRS = st.one_of(
    st.sampled_from(["<f8", "|b1", "<i4", ">u2", "<M8[ns]", "<m8[s]", "|S3", "<U2", "<c16", "|O", "|V8", "<U0"]),
    st.text(max_size=8),
    st.lists(st.lists(st.sampled_from(["x", "y", "<f4", "|O", "|S2"]), min_size=2, max_size=2), max_size=3),
)


@fuzz_settings(300)
@given(DESCRS, st.lists(st.integers(-2, 2**40), max_size=4), st.booleans(), st.binary(max_size=64))
def test_array_frames_decode_or_are_refused(descr: Any, shape: list[int], fortran: bool, frame: bytes) -> None:
    FUZZ_CASES["decode_array_frame"] += 1
    payload = json.dumps({"$nd": [0, descr, shape, fortran]}).encode()
    try:
        array = decode_json(payload, [frame])
    except WireError:
        return
    assert array.nbytes == len(frame) and not array.dtype.hasobject


def _arrow_stream() -> bytes:
    import pyarrow as pa

    table = pa.table({"n": [1, None, 3], "s": ["a", "bc", None], "l": [[1.5], [], None]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@fuzz_settings(300)
@given(st.data(), st.sampled_from(["table", "frame", "series", "index"]))
def test_damaged_arrow_streams_decode_or_are_refused(data: Any, kind: str) -> None:
    FUZZ_CASES["decode_arrow_frame"] += 1
    stream = bytearray(_arrow_stream())
    for _ in range(data.draw(st.integers(1, 8))):  # flip bytes anywhere, metadata and body alike
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    stream = stream[: data.draw(st.integers(0, len(stream)))]
    payload = json.dumps({"$arrow": [0, kind, False]}).encode()
    try:
        decode_json(payload, [bytes(stream)])
    except WireError:
        pass


@fuzz_settings(100)
@given(JSONISH)
def test_decode_arguments_jsonish(tree: Any) -> None:
    FUZZ_CASES["decode_arguments"] += 1
    payload = json.dumps([tree, {"k": tree}] if isinstance(tree, list) else tree).encode()
    try:
        args, kwargs = decode_arguments(payload, [])
    except WireError:
        return
    assert type(args) is list and type(kwargs) is dict


# --------------------------------------------------------------------------- hand-made frames

LIMIT = 1 << 20


def _count(value: int) -> bytes:
    return struct.pack("!I", value)


def _lengths(*values: int) -> bytes:
    return b"".join(struct.pack("!Q", value) for value in values)


GOOD = pack([b'{"kind":"call","id":1}', b"[[1],{}]", b"\x00\x01binary"])

BAD_FRAMES: list[tuple[str, bytes, int, str]] = [
    ("empty", b"", LIMIT, "truncated message"),
    ("three-bytes", b"\x00\x00\x00", LIMIT, "truncated message"),
    ("count-0", _count(0), LIMIT, "a message has 2 to 1024 parts, not 0"),
    ("count-0-with-junk", _count(0) + b"junk", LIMIT, "a message has 2 to 1024 parts, not 0"),
    ("count-1", pack([b"only"]), LIMIT, "a message has 2 to 1024 parts, not 1"),
    ("count-2-no-lengths", _count(2), LIMIT, "truncated or oversized message header"),
    ("count-2-half-lengths", _count(2) + _lengths(0)[:5], LIMIT, "truncated or oversized message header"),
    ("count-1025", pack([b""] * (MAX_PARTS + 1)), LIMIT, "a message has 2 to 1024 parts"),
    ("count-huge", _count(2**32 - 1) + b"\x00" * 64, LIMIT, "a message has 2 to 1024 parts"),
    ("count-huge-alone", _count(2**32 - 1), LIMIT, "a message has 2 to 1024 parts"),
    (
        "lengths-beyond-limit",
        _count(2) + _lengths(LIMIT, 1),
        LIMIT,
        "message of 1048577 bytes is larger than the limit",
    ),
    ("lengths-2**63", _count(2) + _lengths(2**63, 2**63), LIMIT, "message of 18446744073709551616 bytes is larger"),
    ("lengths-sum-wraps-64-bits", _count(3) + _lengths(2**64 - 1, 2**64 - 1, 2), 2**64, "message of"),
    ("lengths-1024-max", _count(MAX_PARTS) + _lengths(*[2**64 - 1] * MAX_PARTS), LIMIT, "message of"),
    ("oversized-vs-limit", pack([b"r", b"x" * 101]), 101, "message of 102 bytes is larger than the limit of 101 bytes"),
    ("oversized-limit-0", pack([b"", b"x"]), 0, "message of 1 bytes is larger than the limit of 0 bytes"),
    ("one-byte-short", GOOD[:-1], LIMIT, "message parts add up to"),
    ("one-byte-extra", GOOD + b"\x00", LIMIT, "message parts add up to"),
    ("lengths-too-small", _count(2) + _lengths(1, 1) + b"abc", LIMIT, "message parts add up to 2 bytes but 3 arrived"),
    ("lengths-too-large", _count(2) + _lengths(3, 3) + b"abc", LIMIT, "message parts add up to 6 bytes but 3 arrived"),
]


@pytest.mark.parametrize(
    ("data", "limit", "message"), [case[1:] for case in BAD_FRAMES], ids=[case[0] for case in BAD_FRAMES]
)
def test_bad_frames(data: bytes, limit: int, message: str) -> None:
    FUZZ_CASES["hand_bad_frames"] += 1
    with pytest.raises(WireError) as caught:
        unpack(data, limit)
    assert str(caught.value).startswith(message), str(caught.value)
    with pytest.raises(WireError):
        unpack(memoryview(bytearray(data)), limit)


def test_every_truncation_of_a_message_is_refused() -> None:
    for end in range(len(GOOD)):
        FUZZ_CASES["hand_truncations"] += 1
        with pytest.raises(WireError):
            unpack(GOOD[:end], LIMIT)


def test_good_frames_at_the_edges() -> None:
    cases = [
        (GOOD, LIMIT),
        (pack([b"", b""]), 0),
        (pack([b"r", b"x" * 101]), 102),  # exactly at the limit
        (pack([b""] * MAX_PARTS), 0),
        (pack([b"a"] * MAX_PARTS), MAX_PARTS),
    ]
    for data, limit in cases:
        FUZZ_CASES["hand_good_frames"] += 1
        parts = unpack(data, limit)
        assert pack(parts) == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b"null",
        b"{}",
        b'{"kind":null}',
        b'{"kind":["call"]}',
        b'"call"',
        b"[" * 100_000,
        b'{"kind":"x"' + b" " * 10 + b"]",
    ],
)
def test_bad_routes(data: bytes) -> None:
    FUZZ_CASES["hand_bad_routes"] += 1
    with pytest.raises(WireError):
        parse_route(data)


def test_route_round_trip() -> None:
    FUZZ_CASES["hand_routes"] += 1
    route = {"kind": "call", "id": 7, "name": "gues\u00df", "nbuf": 2}
    assert parse_route(memoryview(route_bytes(route))) == route


# --------------------------------------------------------------------------- the stream socket path


def _pair() -> tuple[socket.socket, socket.socket]:
    left, right = socket.socketpair()
    left.settimeout(5)
    right.settimeout(5)
    return left, right


def test_send_and_recv_message_round_trip() -> None:
    left, right = _pair()
    with left, right:
        for parts in ([b"{}", b"x"], [b'{"kind":"r"}', b"p", b"\x00" * 200_000, b"tail"]):
            FUZZ_CASES["hand_stream"] += 1
            sender = threading.Thread(target=send_message, args=(left, parts))  # large ones block until read
            sender.start()
            got = recv_message(right, LIMIT)
            sender.join(5)
            assert [bytes(part) for part in got] == parts


STREAM_BAD: list[tuple[str, bytes, type[Exception], str]] = [
    ("count-0", _count(0), WireError, "a message has 2 to 1024 parts, not 0"),
    ("count-1", _count(1) + _lengths(0), WireError, "a message has 2 to 1024 parts, not 1"),
    ("count-huge", _count(2**32 - 1), WireError, "a message has 2 to 1024 parts"),
    ("lengths-beyond-limit", _count(2) + _lengths(2**63, 2**63), WireError, "message of"),
    ("oversized-vs-limit", _count(2) + _lengths(LIMIT, 1), WireError, "message of 1048577 bytes is larger"),
    ("closed-in-count", b"\x00\x00", EOFError, "connection closed"),
    ("closed-in-lengths", _count(2) + _lengths(1)[:3], EOFError, "connection closed"),
    ("closed-in-body", _count(2) + _lengths(10, 10) + b"short", EOFError, "connection closed"),
]


@pytest.mark.parametrize(
    ("data", "error", "message"), [case[1:] for case in STREAM_BAD], ids=[case[0] for case in STREAM_BAD]
)
def test_recv_message_refuses_bad_streams(data: bytes, error: type[Exception], message: str) -> None:
    FUZZ_CASES["hand_stream_bad"] += 1
    left, right = _pair()
    with left, right:
        left.sendall(data)
        left.shutdown(socket.SHUT_WR)  # the peer stops sending: no test can hang on a short message
        with pytest.raises(error) as caught:
            recv_message(right, LIMIT)
        assert str(caught.value).startswith(message), str(caught.value)


# --------------------------------------------------------------------------- hand-made payloads


HAND_PAYLOADS = [
    b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    b"[" * 100_000 + b"]" * 100_000,
    b'{"$dict":' * 1000 + b"[]" + b"}" * 1000,
    b'{"$obj":["fuzz.Point",' * 300 + b"{}" + b"]}" * 300,
    b'{"$int":"' + b"7" * 4301 + b'"}',
    b"1" * 4301,
    b'{"$float":NaN}',
    b'{"$dt":"\xed\xa0\x80"}',
    b'{"$media":[99999999999999999999999,"a",null]}',
    b'{"$media":[0.5,"a",null]}',
    b'{"$url":["data:,x",1,2]}',
    b'{"$obj":["fuzz.Oops",{"args":{"a":1},"state":[["k","v"]]}]}',
    b'{"$obj":["fuzz.Oops",{"args":"abc","state":null}]}',
    b'{"$obj":["fuzz.Money",{"state":null}]}',
    b'{"$obj":["fuzz.Point",{"state":{"__class__":"x","__dict__":1}}]}',
]


@pytest.mark.parametrize("data", HAND_PAYLOADS, ids=[f"payload{index}" for index in range(len(HAND_PAYLOADS))])
def test_hand_payloads_decode_or_raise_wire_error(data: bytes) -> None:
    FUZZ_CASES["hand_payloads"] += 1
    try:
        value = decode_json(data, [b"buffer"], REGISTRY)
    except WireError:
        return
    if isinstance(value, Point):
        assert type(value) is Point  # "__class__" in the state does not change the class
