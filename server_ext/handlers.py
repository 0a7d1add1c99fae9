"""HTTP and WebSocket handlers of the greenroom extension.

``/greenroom/api/ws`` carries calls: one long-lived, multiplexed WebSocket per client.  The
embedding's authenticators decide who may open it (a kernel's greenroom token, the runtime
file's local token, or a Jupyter user whom the server's Authorizer allows to ``execute`` on
the ``greenroom`` resource); refusals happen before the socket opens.
``/greenroom/api/status`` reports the host's state to users allowed to ``read`` it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from greenroom.errors import WireError
from greenroom.wire import Parts, pack, unpack

from .clientcalls import ClientCalls
from .host import Host
from .identity import AUTH_RESOURCE, Authenticator, Caller, authenticate

__all__ = ["BareCallSocketHandler", "CallChannel", "CallSocketHandler", "StatusHandler"]


class CallChannel(WebSocketHandler):
    """The call channel over any tornado WebSocket handler: binary messages ``[route, payload, *buffers]`` both
    ways (see :mod:`greenroom.protocol`), opened only for a caller an authenticator accepts; the requests are
    :class:`~greenroom.server_ext.clientcalls.ClientCalls`'."""

    caller: Caller
    calls: ClientCalls | None = None
    #: Bytes of messages written to the client that have not left the host yet.
    _unsent = 0

    @property
    def host(self) -> Host:
        return self.settings["greenroom_host"]  # type: ignore[no-any-return]

    @property
    def authenticators(self) -> Sequence[Authenticator]:
        return self.settings["greenroom_authenticators"]  # type: ignore[no-any-return]

    @property
    def max_message_size(self) -> int:
        return self.host.config.max_message_size

    async def admit(self) -> bool:
        """Identify the caller before the socket opens.  A refusal is answered here, with its status and
        ``{"message": ...}`` (the reason, which the client shows), and returns False."""
        try:
            self.caller = await authenticate(self.authenticators, self)
        except web.HTTPError as error:
            self.host.log.warning("refused a call connection: %s", error.log_message)
            self.clear()
            self.set_status(error.status_code)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": error.log_message or ""}))
            return False
        self.calls = ClientCalls(self.host, self.caller, self._send, lambda: self._unsent)
        return True

    def open(self, *args: Any, **kwargs: Any) -> None:
        # Replies and pushes are small and often follow each other without an answer in between (a task's
        # news): Nagle's algorithm would hold each behind the peer's delayed ACK, about 40 ms.
        self.set_nodelay(True)

    def on_message(self, message: str | bytes) -> None:
        assert self.calls is not None  # admitted before the socket opened
        if isinstance(message, str):
            self.calls.refuse(WireError("greenroom messages are binary"))
            return
        try:
            parts = unpack(message, self.host.config.max_message_size)
        except WireError as error:
            self.calls.refuse(error)
            return
        self.calls.receive(parts)

    def _send(self, parts: Parts) -> bool:
        data = pack(parts)  # one WebSocket message holds the whole frame
        try:
            written = self.write_message(data, binary=True)
        except WebSocketClosedError:
            return False
        self._unsent += len(data)
        written.add_done_callback(lambda done: self._sent(done, len(data)))
        return True

    def _sent(self, done: asyncio.Future[None], size: int) -> None:
        """A message left the host (or the client went away first)."""
        self._unsent -= size
        if not done.cancelled():
            done.exception()  # a client gone before it was written: retrieved, it is on_close's business

    def on_close(self) -> None:
        if self.calls is not None:
            self.calls.close()


class CallSocketHandler(ExtensionHandlerMixin, WebSocketMixin, CallChannel, JupyterHandler):
    """The call channel inside a Jupyter server (or Voilà): its users may call when its Authorizer allows."""

    auth_resource = AUTH_RESOURCE

    def set_default_headers(self) -> None:
        """WebSockets take none of JupyterHandler's default headers."""

    @allow_unauthenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if await self.admit():
            await super().get(*args, **kwargs)


class BareCallSocketHandler(CallChannel):
    """The call channel of a bare tornado application (``greenroom host``): no Jupyter server around it."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if await self.admit():
            await super().get(*args, **kwargs)


class StatusHandler(ExtensionHandlerMixin, APIHandler):
    """GET the host's status (users the Authorizer lets ``read`` the ``greenroom`` resource)."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(self.settings["greenroom_host"].status()))
