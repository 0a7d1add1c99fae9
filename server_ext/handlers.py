"""HTTP and WebSocket handlers of the greenroom extension.

``/greenroom/api/ws`` carries calls: one long-lived, multiplexed WebSocket per
client, authenticated by a kernel's greenroom credentials, the runtime file's
local token, or the Jupyter server's own authentication.
``/greenroom/api/status`` reports the host's state to Jupyter-authenticated users.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from greenroom.codec import encode_json
from greenroom.errors import GreenroomError, WireError
from greenroom.wire import pack, parse_route, route_bytes, unpack

from .credentials import LOCAL_ID, Caller
from .host import Host, error_reply

__all__ = ["CallSocketHandler", "StatusHandler"]


class CallSocketHandler(ExtensionHandlerMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """The call channel: binary messages ``[route, payload, *buffers]`` both ways."""

    caller: Caller
    tasks: dict[int, asyncio.Task[None]]

    def set_default_headers(self) -> None:
        """WebSockets take none of JupyterHandler's default headers."""

    @property
    def host(self) -> Host:
        return self.settings["greenroom_host"]  # type: ignore[no-any-return]

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        return self.host.max_message_size

    def _authenticate(self) -> Caller | None:
        credentials = self.host.credentials
        kernel_id = self.request.headers.get("X-Greenroom-Kernel-Id", "")
        token = self.request.headers.get("X-Greenroom-Token", "")
        connection = uuid.uuid4().hex
        if token:
            if kernel_id and credentials.check(f"kernel:{kernel_id}", token):
                return Caller("kernel", kernel_id, f"kernel:{kernel_id}")
            if not kernel_id and credentials.check(LOCAL_ID, token):
                return Caller("local", connection, f"local:{connection}")
            return None
        if self.settings.get("greenroom_accept_jupyter_users", True) and self.current_user is not None:
            name = getattr(self.current_user, "username", "") or "user"
            return Caller("user", name, f"user:{connection}")
        return None

    @allow_unauthenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        caller = self._authenticate()
        if caller is None:
            self.log.warning("greenroom: refused a call connection without valid credentials")
            raise web.HTTPError(403, "greenroom: missing or wrong credentials")
        self.caller = caller
        self.tasks = {}
        await super().get(*args, **kwargs)

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._reply(None, *error_reply(WireError, "greenroom messages are binary"))
            return
        try:
            parts = unpack(message, self.host.max_message_size)
            route = parse_route(parts[0])
        except WireError as error:
            self._reply(None, *error_reply(WireError, str(error)))
            return
        call_id = route.get("id")
        if not isinstance(call_id, int) or isinstance(call_id, bool):
            self._reply(None, *error_reply(WireError, "every request needs an integer 'id'"))
            return
        kind = route["kind"]
        if kind == "cancel":
            task = self.tasks.get(call_id)
            if task is not None:
                task.cancel()
            return
        if call_id in self.tasks:
            self._reply(call_id, *error_reply(WireError, f"call id {call_id} is already in use"))
            return
        task = asyncio.get_running_loop().create_task(self._handle(kind, call_id, route, parts))
        self.tasks[call_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(call_id, None))

    async def _handle(self, kind: str, call_id: int, route: dict[str, Any], parts: list[Any]) -> None:
        host = self.host
        try:
            if kind == "call":
                name = route.get("name")
                if not isinstance(name, str):
                    reply = error_reply(WireError, "a call needs a string 'name'")
                else:
                    reply = await host.call(self.caller, name, parts[1], list(parts[2:]))
            elif kind == "functions":
                reply = self._value(host.functions())
            elif kind == "status":
                reply = self._value(host.status())
            elif kind == "reload":
                reply = self._value(await host.reload())
            else:
                reply = error_reply(WireError, f"unknown message kind {kind!r} (expected call, cancel, functions, status or reload)")
        except asyncio.CancelledError:
            return
        except Exception as error:  # noqa: BLE001 - the host keeps serving whatever happens
            self.log.exception("greenroom: %s request failed", kind)
            reply = error_reply(GreenroomError, f"the host failed to handle the request: {type(error).__name__}")
        self._reply(call_id, *reply)

    @staticmethod
    def _value(value: Any) -> tuple[dict[str, Any], list[Any]]:
        payload, _ = encode_json(value, "reply")
        return {"ok": True}, [payload]

    def _reply(self, call_id: int | None, route: dict[str, Any], parts: list[Any]) -> None:
        route.update(kind="reply", id=call_id)
        try:
            self.write_message(pack([route_bytes(route), *parts]), binary=True)
        except WebSocketClosedError:
            pass

    def on_close(self) -> None:
        for task in list(getattr(self, "tasks", {}).values()):
            task.cancel()
        caller = getattr(self, "caller", None)
        if caller is not None and caller.client_type != "kernel":
            self.host.sessions.pop(caller.session_key, None)


class StatusHandler(ExtensionHandlerMixin, APIHandler):
    """GET the host's status (Jupyter-authenticated users only)."""

    @web.authenticated
    async def get(self) -> None:
        self.finish(json.dumps(self.settings["greenroom_host"].status()))
