"""Floor: a bare tornado WebSocket echo round trip on loopback.

``python ws_floor.py --calls N`` starts an echo server in a child process
(``ws_floor.py --serve``), then measures round trips of a 64-byte binary
message two ways and prints one JSON object:

- ``direct``: the caller awaits ``write_message`` / ``read_message`` on the
  event loop's own thread (the least a tornado WebSocket can cost);
- ``threaded``: the caller is another thread that hands the message to the
  loop with ``call_soon_threadsafe`` and waits on a ``concurrent.futures.Future``
  resolved by a reader task, which is how ``greenroom.connection`` works.

``--large-bytes N --large-calls M`` adds ``large``: ``direct`` round trips of an
N-byte message (tornado's 100 MB read buffers raised to fit it): the floor of any
call that carries a large array or table over a WebSocket.

Latencies are nanoseconds from ``time.perf_counter_ns``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import subprocess
import sys
import threading
import time
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application
from tornado.websocket import WebSocketClientConnection, WebSocketHandler, websocket_connect

PAYLOAD = bytes(range(64))
WARMUP = 200
STOP_TIMEOUT = 10.0


#: The largest message the echo server takes.
LARGEST = 1 << 30


class EchoHandler(WebSocketHandler):
    """Sends every message straight back."""

    max_message_size = LARGEST

    def on_message(self, message: str | bytes) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


async def serve() -> None:
    """Listen on a free loopback port, print it, and echo until stdin closes (the parent is gone)."""
    sockets = bind_sockets(0, "127.0.0.1")
    HTTPServer(Application([(r"/echo", EchoHandler)]), max_buffer_size=LARGEST + (1 << 20)).add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    await asyncio.to_thread(sys.stdin.read)


async def direct_round_trips(url: str, calls: int, payload: bytes = PAYLOAD, warmup: int = WARMUP) -> list[int]:
    ws = await websocket_connect(url, max_message_size=LARGEST)
    ws.protocol.stream.max_buffer_size = LARGEST + (1 << 20)  # type: ignore[union-attr]
    latencies: list[int] = []
    for index in range(warmup + calls):
        before = time.perf_counter_ns()
        await ws.write_message(payload, binary=True)
        reply = await ws.read_message()
        if index >= warmup:
            latencies.append(time.perf_counter_ns() - before)
        if reply != payload:
            raise AssertionError("the echo server answered something else")
    ws.close()
    return latencies


class ThreadedClient:
    """A WebSocket driven by a loop in a daemon thread, used from the calling thread."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.waiting: concurrent.futures.Future[Any] | None = None
        self.ws: WebSocketClientConnection = asyncio.run_coroutine_threadsafe(self._open(url), self.loop).result(10)

    async def _open(self, url: str) -> WebSocketClientConnection:
        ws = await websocket_connect(url)
        self.loop.create_task(self._read(ws))
        return ws

    async def _read(self, ws: WebSocketClientConnection) -> None:
        while (message := await ws.read_message()) is not None:
            if self.waiting is not None:
                self.waiting.set_result(message)

    def round_trip(self) -> Any:
        self.waiting = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self.ws.write_message, PAYLOAD, True)
        return self.waiting.result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.ws.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def threaded_round_trips(url: str, calls: int) -> list[int]:
    client = ThreadedClient(url)
    latencies: list[int] = []
    try:
        for index in range(WARMUP + calls):
            before = time.perf_counter_ns()
            reply = client.round_trip()
            if index >= WARMUP:
                latencies.append(time.perf_counter_ns() - before)
            if reply != PAYLOAD:
                raise AssertionError("the echo server answered something else")
    finally:
        client.close()
    return latencies


def measure(calls: int, large_bytes: int = 0, large_calls: int = 0) -> dict[str, list[int]]:
    """Start the echo server, measure both ways, stop the server (our own child)."""
    echo = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert echo.stdout is not None
        port = echo.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("the WebSocket echo server did not start")
        url = f"ws://127.0.0.1:{port}/echo"
        result = {"direct": asyncio.run(direct_round_trips(url, calls)), "threaded": threaded_round_trips(url, calls)}
        if large_bytes and large_calls:
            large = asyncio.run(direct_round_trips(url, large_calls, bytes(large_bytes), warmup=1))
            result["large"] = large
        return result
    finally:
        if echo.stdin is not None:
            echo.stdin.close()  # the server's signal to stop
        try:
            echo.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            echo.kill()
            echo.wait()
        if echo.stdout is not None:
            echo.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--large-bytes", type=int, default=0, help="also echo a message of this size")
    parser.add_argument("--large-calls", type=int, default=0)
    parser.add_argument("--serve", action="store_true", help="run the echo server (used internally)")
    options = parser.parse_args(argv)
    if options.serve:
        asyncio.run(serve())
        return 0
    print(json.dumps(measure(options.calls, options.large_bytes, options.large_calls)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
