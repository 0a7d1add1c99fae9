"""The client's connection: a host that answers nonsense never leaves a caller waiting."""

from __future__ import annotations

import logging

import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application
from tornado.websocket import WebSocketHandler

from greenroom.errors import ConnectionError as GreenroomConnectionError
from helpers import Client


class NonsenseHost(WebSocketHandler):
    """Speaks WebSocket on greenroom's path but answers every message with bytes that are no reply."""

    def on_message(self, message: str | bytes) -> None:
        self.write_message(b"\x00\x00\x00\x07 not a greenroom message", binary=True)


@pytest.fixture
def nonsense_url(jp_asyncio_loop):
    sock, port = bind_unused_port("127.0.0.1")
    server = HTTPServer(Application([(r"/greenroom/api/ws", NonsenseHost)]))
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}/"
    server.stop()


async def test_a_malformed_reply_fails_the_waiting_call_and_is_logged(nonsense_url, caplog):
    client = Client(nonsense_url, {})
    try:
        with caplog.at_level(logging.WARNING, logger="greenroom"):
            with pytest.raises(GreenroomConnectionError, match="malformed reply"):
                await client.call("add", 1, 2)
            with pytest.raises(GreenroomConnectionError, match="malformed reply"):  # a new connection, same answer
                await client.call("add", 1, 2)
        assert sum("malformed reply from the host" in record.getMessage() for record in caplog.records) == 2
    finally:
        client.close()
