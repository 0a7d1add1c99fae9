"""One client's requests, whatever carries them: the WebSocket (:mod:`.handlers`) or the local socket that
kernels on the host's machine use (:mod:`.localcalls`).

A transport hands :class:`ClientCalls` each message it receives, already split into parts, and gives it
a ``send`` that writes one message, given as its parts (False once the client is gone), and an ``unread``
that says how much of what it wrote the client has not taken yet.  Each request runs as its own task, keyed
by its id: a ``cancel`` stops it, a duplicate id is refused, and closing ends them all.

Invariant: every request with an id gets exactly one reply (unless cancelled or the client is gone), and a
malformed one is answered with a :class:`~greenroom.errors.WireError` while the client's other calls go on.
A client that stops reading its replies cannot make the host hold more of them than one largest message
(``max_message_size``): past that, its new requests are refused until it reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from greenroom.errors import GreenroomError, WireError
from greenroom.protocol import Kind, Reply, Request
from greenroom.wire import Parts, parse_route

from .host import Host
from .identity import Caller

__all__ = ["ClientCalls", "SendMessage", "UnreadBytes"]

#: Writes one message (its parts) to the client; False when it is gone.
SendMessage = Callable[[Parts], bool]
#: How many bytes written to the client it has not read yet (held by the host, waiting for the socket).
UnreadBytes = Callable[[], int]


class ClientCalls:
    """The requests of one authenticated client connection."""

    def __init__(self, host: Host, caller: Caller, send: SendMessage, unread: UnreadBytes) -> None:
        self.host = host
        self.caller = caller
        self.send = send
        self.unread = unread
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def receive(self, parts: Parts) -> None:
        """One message from the client (its parts; the transport has checked its size)."""
        try:
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
        unread, limit = self.unread(), self.host.config.max_message_size
        if unread > limit:
            self._reply(
                request_id,
                Reply.of_error(
                    GreenroomError(
                        f"this connection has {unread} bytes of replies it has not read, more than max_message_size "
                        f"({limit} bytes): read them before asking for more"
                    )
                ),
            )
            return
        task = asyncio.get_running_loop().create_task(self._handle(request))
        self.tasks[request_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(request_id, None))

    def refuse(self, error: WireError) -> None:
        """Answer a message that could not even be split into parts (its request id is unknown)."""
        self._reply(None, Reply.of_error(error))

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
        self.send(reply.pack(request_id))

    def _push(self, parts: Parts) -> None:
        """Send news the client did not ask for this time (a watched task's)."""
        if not self.send(parts):
            self.host.background.unwatch(self)

    def close(self) -> None:
        """The client is gone: its watches end, its running requests are cancelled, its session ends."""
        self.host.background.unwatch(self)
        for task in list(self.tasks.values()):
            task.cancel()
        self.host.end_session(self.caller)
