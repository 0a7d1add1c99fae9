"""Hostile input on the live call socket: every case gets a clean error and the host keeps serving."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from greenroom.wire import pack, route_bytes, unpack

CASES_RUN = {"hand": 0, "generated": 0}


async def open_socket(base_url: str, token: str):
    url = base_url.replace("http://", "ws://") + "greenroom/api/ws"
    return await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {token}"}), max_message_size=1 << 30
    )


async def reply_to(ws, data) -> dict | None:
    """Send raw data; return the reply's route, or None if the host closed the socket."""
    await ws.write_message(data, binary=not isinstance(data, str))
    message = await ws.read_message()
    if message is None:
        return None
    parts = unpack(message, 1 << 30)
    route = json.loads(bytes(parts[0]))
    if not route.get("ok"):
        route["error"] = json.loads(bytes(parts[1]))
    return route


def call_message(call_id, name="add", payload=b"[[1,2],{}]", **extra) -> bytes:
    return pack([route_bytes({"kind": "call", "id": call_id, "name": name, **extra}), payload])


def deep(depth: int) -> bytes:
    return b"[[" + b"[" * depth + b"1" + b"]" * depth + b"],{}]"


HAND_CASES = [
    ("text frame", "hello", "binary"),
    ("empty", b"", "truncated"),
    ("truncated count", b"\x00\x00", "truncated"),
    ("zero parts", struct.pack("!I", 0), "parts"),
    ("one part", pack([b"{}"])[:12], "parts"),
    ("lengths beyond data", struct.pack("!IQQ", 2, 10, 10) + b"abc", "arrived"),
    ("huge part count", struct.pack("!I", 2**31) + b"\x00" * 16, "parts"),
    ("route not json", pack([b"\xff\xfe", b""]), "malformed message header"),
    ("route is a list", pack([b"[1,2]", b""]), "JSON object"),
    ("kind not a string", pack([b'{"kind": 5, "id": 1}', b""]), "JSON object"),
    ("id missing", pack([b'{"kind": "call", "name": "add"}', b"[[1,2],{}]"]), "integer 'id'"),
    ("id a string", pack([b'{"kind": "call", "id": "1", "name": "add"}', b"[[1,2],{}]"]), "integer 'id'"),
    ("id a bool", pack([b'{"kind": "call", "id": true, "name": "add"}', b"[[1,2],{}]"]), "integer 'id'"),
    ("name an int", pack([route_bytes({"kind": "call", "id": 7, "name": 5}), b"[[1,2],{}]"]), "string 'name'"),
    ("unknown kind", pack([route_bytes({"kind": "exec", "id": 8}), b""]), "unknown message kind"),
    ("payload not json", call_message(9, payload=b"{{{"), "malformed JSON"),
    ("payload invalid utf-8", call_message(10, payload=b'[["\xff\xfe"],{}]'), "malformed JSON"),
    ("payload not [args, kwargs]", call_message(11, payload=b'{"a": 1}'), "[args, kwargs]"),
    ("100000-deep nesting", call_message(12, payload=deep(100000)), "malformed JSON"),
    ("250-deep nesting", call_message(13, payload=deep(250)), "nested deeper"),
    ("huge int", call_message(14, payload=b"[[" + b"9" * 5000 + b", 1],{}]"), "malformed JSON"),
    ("NaN literal", call_message(15, payload=b"[[NaN, 1],{}]"), None),
    ("unknown tag", call_message(16, payload=b'[[{"$evil": 1}, 1],{}]'), "unknown tag"),
    ("media without buffer", call_message(17, payload=b'[[{"$media": [3, "a/b", null]}, 1],{}]'), "no buffer"),
    (
        "unregistered portable class",
        call_message(18, payload=b'[[{"$obj": ["os.system", {}]}, 1],{}]'),
        "not registered",
    ),
    ("dunder function name", call_message(19, name="__import__"), "no server function"),
    ("very long name", call_message(20, name="x" * 100000), "larger than 65536 bytes"),
    (
        "huge route header",
        pack([route_bytes({"kind": "call", "id": 21, "pad": "x" * 200000}), b""]),
        "larger than 65536 bytes",
    ),
]


@pytest.mark.parametrize(("label", "data", "expected"), HAND_CASES, ids=[case[0] for case in HAND_CASES])
async def test_hand_written_hostile_messages(host, base_url, jp_serverapp, label, data, expected):
    token = jp_serverapp.identity_provider.token
    ws = await open_socket(base_url, token)
    route = await reply_to(ws, data)
    CASES_RUN["hand"] += 1
    assert route is not None, f"{label}: the host closed the connection instead of answering"
    if expected is not None:
        assert not route["ok"], label
        assert expected in route["error"]["message"], route["error"]["message"]
    if label == "name an int":
        assert route["id"] == 7  # a valid id is answered, so its caller does not wait
    # the same connection, and the host, keep serving
    assert (await reply_to(ws, call_message(99)))["ok"]
    ws.close()


@pytest.mark.parametrize("greenroom_config", [{"max_message_size": 1 << 20}])
async def test_oversized_message_closes_only_that_connection(host, base_url, jp_serverapp):
    token = jp_serverapp.identity_provider.token
    ws = await open_socket(base_url, token)
    assert await reply_to(ws, call_message(1, payload=b'[["' + b"x" * (2 << 20) + b'"],{}]')) is None
    ws.close()
    fresh = await open_socket(base_url, token)
    assert (await reply_to(fresh, call_message(2)))["ok"]
    fresh.close()


async def test_replayed_call_id_while_in_flight_is_refused(host, base_url, jp_serverapp):
    ws = await open_socket(base_url, jp_serverapp.identity_provider.token)
    await ws.write_message(call_message(5, name="slow", payload=b"[[0.5],{}]"), binary=True)
    await ws.write_message(call_message(5), binary=True)
    first = json.loads(bytes(unpack(await ws.read_message(), 1 << 30)[0]))
    assert first == {"ok": False, "kind": "reply", "id": 5}
    second = json.loads(bytes(unpack(await ws.read_message(), 1 << 30)[0]))
    assert second["id"] == 5 and second["ok"]
    assert (await reply_to(ws, call_message(5)))["ok"]  # reusing the id once the call is done is fine
    ws.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda route, payload: pack([route, payload]), st.binary(max_size=80), st.binary(max_size=80)),
        st.builds(
            lambda kind, call_id, name, payload: pack(
                [route_bytes({"kind": kind, "id": call_id, "name": name}), payload]
            ),
            st.sampled_from(["call", "cancel", "functions", "status", "x"]),
            st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none()),
            st.one_of(st.sampled_from(["add", "echo", "divide", "crash"]), st.text(max_size=10), st.integers()),
            st.one_of(
                st.binary(max_size=60),
                st.recursive(
                    st.none() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3),
                    max_leaves=10,
                ).map(lambda tree: json.dumps([tree, {}]).encode()),
            ),
        ),
    )
)
def test_generated_messages_never_break_the_host(live_socket, data):
    CASES_RUN["generated"] += 1
    live_socket.send(data)


@pytest.fixture
def live_socket(host, base_url, jp_serverapp, jp_asyncio_loop):
    """A sync wrapper: hypothesis drives the cases, the server's loop answers them."""

    class LiveSocket:
        def __init__(self) -> None:
            self.ws = jp_asyncio_loop.run_until_complete(open_socket(base_url, jp_serverapp.identity_provider.token))

        def send(self, data: bytes) -> None:
            async def exchange() -> None:
                await self.ws.write_message(data, binary=True)
                # a cancel, or a crash call, may answer nothing or late: a probe call must still answer
                await self.ws.write_message(call_message(10**9, name="add"), binary=True)
                while True:
                    message = await self.ws.read_message()
                    if message is None:
                        self.ws.close()
                        self.ws = await open_socket(base_url, jp_serverapp.identity_provider.token)
                        return
                    route = json.loads(bytes(unpack(message, 1 << 30)[0]))
                    if route.get("id") == 10**9:
                        assert route["ok"]
                        return

            jp_asyncio_loop.run_until_complete(asyncio.wait_for(exchange(), 60))

    import asyncio

    socket = LiveSocket()
    yield socket
    socket.ws.close()
