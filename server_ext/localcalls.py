"""The local call socket: kernels on the host's machine call over a unix socket instead of the WebSocket.

The socket lives in the host's private folder (0700, the socket itself 0600), and its path reaches the
kernels the host launches in ``GREENROOM_SOCKET``, next to their token.  A connection opens with a hello,
``{"kind": "hello", "headers": {...}}`` carrying the headers the client would send on the WebSocket; the
embedding's own authenticators judge it exactly as they judge the WebSocket's opening request.  The host
answers ``{"kind": "welcome"}``, or ``{"kind": "refused", "message": ...}`` and closes.  Then messages
flow as on the WebSocket, each a :func:`greenroom.wire.pack` frame, one after another.

Invariant: no request is served before the hello is accepted; a frame that cannot be read (oversized,
malformed) is answered with its error and ends the connection, since the stream cannot be resynchronised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any, cast

from tornado import web
from tornado.httputil import HTTPHeaders

from greenroom.errors import WireError
from greenroom.wire import MAX_PARTS, Parts, frame_pieces, pack, parse_route, read_message, route_bytes

from .clientcalls import ClientCalls
from .host import Host
from .identity import Authenticator, authenticate

__all__ = ["LocalCallListener"]

#: A hello is small; a client that sends nothing gets this long.
MAX_HELLO = 16384
HELLO_TIMEOUT = 10.0


class _Opening:
    """What an authenticator reads of a WebSocket's opening request, made from a hello's headers."""

    current_user = None
    settings: dict[str, Any] = {}  # noqa: RUF012 - read only: no authenticator of a hello needs the server's

    def __init__(self, headers: dict[str, str]) -> None:
        self.request = type("Request", (), {"headers": HTTPHeaders(headers)})()


class LocalCallListener:
    """Serves the local call socket at ``path`` for ``host``."""

    def __init__(self, path: str, host: Host, authenticators: Sequence[Authenticator], log: logging.Logger) -> None:
        self.path = path
        self.host = host
        self.authenticators = authenticators
        self.log = log
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path, limit=1 << 20)
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.host.tasks.track(task)
        calls: ClientCalls | None = None
        try:
            calls = await self._welcome(reader, writer)
            if calls is None:
                return
            limit = self.host.config.max_message_size
            while True:
                try:
                    parts = await read_message(reader, limit, MAX_PARTS)
                except WireError as error:
                    calls.refuse(error)  # the stream cannot be read on: say why, then close
                    break
                calls.receive(parts)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            if calls is not None:
                calls.close()
            writer.close()

    async def _welcome(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> ClientCalls | None:
        try:
            parts = await asyncio.wait_for(read_message(reader, MAX_HELLO), HELLO_TIMEOUT)
            route = parse_route(parts[0])
            headers = route.get("headers")
            if route["kind"] != "hello" or not isinstance(headers, dict):
                raise WireError("the first message must be a hello with the client's headers")
            if not all(isinstance(key, str) and isinstance(value, str) for key, value in headers.items()):
                raise WireError("a hello's headers are strings")
            caller = await authenticate(self.authenticators, cast(web.RequestHandler, _Opening(headers)))
        except (TimeoutError, WireError) as error:
            self.log.warning("refused a local call connection: %s", error or "no hello in time")
            self._answer(writer, {"kind": "refused", "message": f"greenroom: {error or 'no hello in time'}"})
            return None
        except web.HTTPError as error:
            self.log.warning("refused a local call connection: %s", error.log_message)
            self._answer(writer, {"kind": "refused", "message": error.log_message or "refused"})
            return None
        self._answer(writer, {"kind": "welcome"})

        def send(parts: Parts) -> bool:
            if writer.is_closing():
                return False
            for piece in frame_pieces(parts):
                writer.write(piece)
            return True

        return ClientCalls(self.host, caller, send, writer.transport.get_write_buffer_size)

    @staticmethod
    def _answer(writer: asyncio.StreamWriter, route: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(pack([route_bytes(route), b""]))
