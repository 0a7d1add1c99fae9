"""The local call socket: kernels on the host's machine call over it, from many threads at once and from
async code; an interrupted call leaves it usable; and whatever else connects to it is refused or answered
with a clear error while the host keeps serving."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest

from greenroom.protocol import Kind, Request
from greenroom.wire import pack, route_bytes, unpack
from helpers import KernelError, wait_until

THREADS_CODE = """
import threading, asyncio
from greenroom import server
server.call('add', 0, 0)
print(type(server._transport).__name__)
wrong = []
def caller(me):
    for i in range(200):
        if server.call('echo', me, i) != [[me, i], {}]:
            wrong.append((me, i))
threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
results = await asyncio.gather(*(server.call_async('add', i, 1) for i in range(60)))
print(len(wrong), results == [i + 1 for i in range(60)])
"""


async def test_kernels_call_over_the_local_socket_from_many_threads_and_async_code(start_kernel):
    kernel = await start_kernel()
    out = await kernel.run(THREADS_CODE, timeout=120)
    assert out.split() == ["LocalConnection", "0", "True"], out


async def test_an_interrupted_call_leaves_the_local_socket_usable(start_kernel, host, jp_serverapp):
    kernel = await start_kernel()
    await kernel.run("from greenroom import server\nprint(server.call('add', 1, 1))")
    running = asyncio.ensure_future(kernel.run("server.call('slow', 30)", timeout=60))
    await wait_until(lambda: sum(host.in_flight.values()) > 0)
    await jp_serverapp.kernel_manager.interrupt_kernel(kernel.kernel_id)
    with pytest.raises(KernelError, match="KeyboardInterrupt"):
        await running
    await wait_until(lambda: sum(host.in_flight.values()) == 0)  # the interrupt cancelled the call on the host
    assert (await kernel.run("print(server.call('add', 1, 2), type(server._transport).__name__)")).split() == [
        "3",
        "LocalConnection",
    ]


def frame(route: dict, *parts: bytes) -> bytes:
    return pack([route_bytes(route), *(parts or (b"",))])


def read_reply(sock: socket.socket) -> dict:
    """The next message's route (the test's side reads whole frames with a deadline)."""
    data = b""
    while True:
        try:
            parts = unpack(data, 1 << 24)
            return json.loads(bytes(parts[0]))
        except Exception:  # noqa: BLE001 - not a whole frame yet
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed after {data[:200]!r}") from None
            data += chunk


@pytest.fixture
def local_socket(host, jp_serverapp):
    path = f"{host.socket_dir}/calls.sock"

    def connect(hello: bytes | None = None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(path)
        if hello is not None:
            sock.sendall(hello)
        return sock

    return connect


def local_hello(host) -> bytes:
    from greenroom.server_ext.credentials import LOCAL_ID

    token = host.credentials.token_for(LOCAL_ID)
    return frame({"kind": "hello", "headers": {"X-Greenroom-Token": token, "X-Greenroom-Kernel-Id": ""}})


async def test_the_local_socket_refuses_strangers_and_answers_bad_frames_while_the_host_serves(
    local_socket, host, client
):
    def exchange() -> list:
        seen = []
        for hello in (
            frame({"kind": "hello", "headers": {"X-Greenroom-Token": "wrong", "X-Greenroom-Kernel-Id": ""}}),
            frame({"kind": "call", "id": 1, "name": "add"}),  # no hello first
            frame({"kind": "hello", "headers": ["not", "a", "dict"]}),
            b"\x00\x00\x00\x02" + b"\xff" * 60,  # a frame whose parts add up to far more than a hello may
        ):
            with local_socket(hello) as sock:
                route = read_reply(sock)
                seen.append((route["kind"], route.get("message", "")))
                assert sock.recv(1) == b""  # and closed
        with local_socket(local_hello(host)) as sock:
            assert read_reply(sock)["kind"] == "welcome"
            sock.sendall(frame({"kind": "call", "id": 7, "name": 5}, b"[[1, 2], {}]"))  # a name that is not a str
            seen.append(read_reply(sock))
            sock.sendall(pack(Request(Kind.CALL, 8, "add", b"[[1, 2], {}]").pack()))
            seen.append(read_reply(sock))
            sock.sendall(struct.pack("!I", 2) + struct.pack("!QQ", 1 << 40, 1))  # a frame of a terabyte
            seen.append(read_reply(sock))
            assert sock.recv(1) == b""  # its framing is lost: closed
        return seen

    seen = await asyncio.to_thread(exchange)
    assert [kind for kind, _ in seen[:4]] == ["refused"] * 4
    assert "wrong token" in seen[0][1] and "hello" in seen[1][1]
    assert seen[4]["kind"] == "reply" and seen[4]["id"] == 7 and not seen[4]["ok"]
    assert seen[5]["kind"] == "reply" and seen[5]["id"] == 8 and seen[5]["ok"]
    assert seen[6]["kind"] == "reply" and not seen[6]["ok"]
    assert await client.call("add", 2, 3) == 5  # the host serves on


@pytest.mark.parametrize("greenroom_config", [{"max_message_size": 1 << 20}])
async def test_a_client_that_stops_reading_its_replies_is_refused_more_until_it_reads(local_socket, host, client):
    payload = json.dumps([["x" * ((1 << 19) - 64)], {}]).encode()  # each reply just over half the 1 MiB limit
    sock = await asyncio.to_thread(local_socket, local_hello(host))
    try:
        assert (await asyncio.to_thread(read_reply, sock))["kind"] == "welcome"
        base = host.call_ids
        for request_id in (1, 2, 3):  # none read: 1.5 MiB of replies, less what the socket itself holds
            await asyncio.to_thread(sock.sendall, pack(Request(Kind.CALL, request_id, "echo", payload).pack()))
            started = base + request_id
            await wait_until(lambda started=started: host.call_ids == started and not sum(host.in_flight.values()))
        await asyncio.to_thread(sock.sendall, pack(Request(Kind.CALL, 4, "echo", payload).pack()))

        def read_all() -> list:
            replies, data = [], b""
            while len(replies) < 4:
                chunk = sock.recv(1 << 20)
                assert chunk, "closed"
                data += chunk
                while len(data) >= 4:
                    (count,) = struct.unpack_from("!I", data)
                    if len(data) < 4 + 8 * count:
                        break
                    size = 4 + 8 * count + sum(struct.unpack_from(f"!{count}Q", data, 4))
                    if len(data) < size:
                        break
                    parts = unpack(data[:size], 1 << 24)
                    route = json.loads(bytes(parts[0]))
                    replies.append((route["id"], route["ok"], bytes(parts[1][:300])))
                    data = data[size:]
            return replies

        replies = await asyncio.to_thread(read_all)
        assert [(request_id, ok) for request_id, ok, _ in replies] == [(1, True), (2, True), (3, True), (4, False)]
        assert b"replies it has not read" in replies[3][2], replies[3][2]
        await asyncio.to_thread(sock.sendall, pack(Request(Kind.CALL, 5, "add", b"[[1, 2], {}]").pack()))
        assert (await asyncio.to_thread(read_reply, sock))["ok"]  # read: served again
    finally:
        sock.close()
    assert host.call_ids == base + 4  # calls 1, 2, 3 and 5 ran; the refused one never reached a worker
    assert await client.call("add", 2, 3) == 5
