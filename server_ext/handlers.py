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

from greenroom.errors import GreenroomError, WireError
from greenroom.protocol import Kind, Reply, Request
from greenroom.wire import Parts, pack, parse_route, unpack

from .host import Host
from .identity import AUTH_RESOURCE, Authenticator, Caller, authenticate

__all__ = ["BareCallSocketHandler", "CallChannel", "CallSocketHandler", "StatusHandler"]


class CallChannel(WebSocketHandler):
    """The call channel over any tornado WebSocket handler: binary messages ``[route, payload, *buffers]`` both
    ways (see :mod:`greenroom.protocol`), opened only for a caller an authenticator accepts."""

    caller: Caller
    tasks: dict[int, asyncio.Task[None]]

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
        self.tasks = {}
        return True

    def open(self, *args: Any, **kwargs: Any) -> None:
        # Replies and pushes are small and often follow each other without an answer in between (a task's
        # news): Nagle's algorithm would hold each behind the peer's delayed ACK, about 40 ms.
        self.set_nodelay(True)

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._reply(None, Reply.of_error(WireError("greenroom messages are binary")))
            return
        try:
            parts = unpack(message, self.host.config.max_message_size)
            request = Request.unpack(parse_route(parts[0]), parts)
        except WireError as error:
            self._reply(None, Reply.of_error(error))
            return
        request_id = request.request_id
        if request.session is not None:
            self._reply(request_id, Reply.of_error(WireError("only a server function's worker lends a session")))
            return
        if request.kind == Kind.CANCEL:
            task = self.tasks.get(request_id)
            if task is not None:
                task.cancel()
            return
        if request_id in self.tasks:
            self._reply(request_id, Reply.of_error(WireError(f"call id {request_id} is already in use")))
            return
        task = asyncio.get_running_loop().create_task(self._handle(request))
        self.tasks[request_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(request_id, None))

    async def _handle(self, request: Request) -> None:
        host, kind = self.host, request.kind
        try:
            if kind == Kind.CALL:
                if request.name is None:
                    reply = Reply.of_error(WireError("a call needs a string 'name'"))
                else:
                    reply = await host.call(self.caller, request.name, request.payload, request.buffers)
            elif kind == Kind.FUNCTIONS:
                reply = Reply.of_value(host.functions())
            elif kind == Kind.STATUS:
                reply = Reply.of_value(host.status(self.caller))
            elif kind == Kind.RELOAD:
                reply = await host.reload(self.caller)
            elif kind == Kind.WATCH:
                reply = await host.background.watch(self.caller, request.name or "", self, self._push)
            elif kind == Kind.TASKS:
                reply = Reply.of_value(await host.background.listing(self.caller))
            else:
                reply = Reply.of_error(
                    WireError(
                        f"unknown message kind {kind!r} (expected {', '.join(Kind.CLIENT_REQUESTS[:-1])} or "
                        f"{Kind.CLIENT_REQUESTS[-1]})"
                    )
                )
        except asyncio.CancelledError:
            return
        except Exception as error:
            host.log.exception("%s request failed", kind)
            reply = Reply.of_error(GreenroomError(f"the host failed to handle the request: {type(error).__name__}"))
        self._reply(request.request_id, reply)

    def _reply(self, request_id: int | None, reply: Reply) -> None:
        try:
            self.write_message(pack(reply.pack(request_id)), binary=True)
        except WebSocketClosedError:
            pass

    def _push(self, parts: Parts) -> None:
        """Send news the client did not ask for this time (a watched task's)."""
        try:
            self.write_message(pack(parts), binary=True)
        except WebSocketClosedError:
            self.host.background.unwatch(self)

    def on_close(self) -> None:
        self.host.background.unwatch(self)
        for task in list(getattr(self, "tasks", {}).values()):
            task.cancel()
        caller = getattr(self, "caller", None)
        if caller is not None:
            self.host.end_session(caller)


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
