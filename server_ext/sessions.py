"""``server.session`` on the host's side: each calling session's dict, kept between calls, lent to one call
at a time.

A call that never uses its session runs without it.  A call's first use asks the host (a
:data:`~greenroom.protocol.Kind.SESSION` request from its worker); the host answers once no other call
of the same session holds it, and the call holds it until it ends, when its changes, if any, are kept.
So concurrent calls of one session never lose each other's changes.  A server-to-server call is lent
its caller's session by the caller's worker instead, and never waits here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from greenroom.errors import WireError
from greenroom.protocol import CallResult, Reply, SessionParts

from .links import Link

__all__ = ["EMPTY_SESSION", "Sessions"]

EMPTY_SESSION: SessionParts = (b"{}", [])


class Sessions:
    """The kept sessions (encoded, as the worker sent them) and the lock of each one in use."""

    def __init__(self) -> None:
        self.kept: dict[str, SessionParts] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self.kept)

    def held(self) -> int:
        """Sessions a call holds now."""
        return sum(lock.locked() for lock in self.locks.values())

    async def lend(self, link: Link) -> Reply:
        """The session of the call ``link`` runs, once that call may hold it."""
        caller, call_id = link.caller, link.call_id
        if caller is None:
            return Reply.of_error(WireError("a worker asked for a session outside a call"))
        key = caller.session_key
        if not link.holds_session:
            lock = self.locks.setdefault(key, asyncio.Lock())
            await lock.acquire()
            if link.closed or link.caller is not caller or link.call_id != call_id:
                lock.release()  # the call ended while it waited
                return Reply.of_error(WireError("the call ended before its session was free"))
            link.holds_session = True
        payload, buffers = self.kept.get(key, EMPTY_SESSION)
        return Reply(True, payload, buffers)

    def finish(self, link: Link, result: CallResult | None) -> None:
        """The call ``link`` ran has ended: keep the session it changed, and let the next call have it."""
        if not link.holds_session or link.caller is None:
            return
        key = link.caller.session_key
        if result is not None and result.session is not None:
            self.kept[key] = (bytes(result.session), [bytes(buffer) for buffer in result.session_buffers])
        link.holds_session = False
        lock = self.locks.get(key)
        if lock is not None and lock.locked():
            lock.release()

    def forget(self, key: str) -> None:
        self.kept.pop(key, None)
        lock = self.locks.get(key)
        if lock is not None and not lock.locked():
            del self.locks[key]

    def prune(self, keep: Callable[[str], bool]) -> None:
        """Forget every session whose key ``keep`` rejects."""
        for key in [key for key in {*self.kept, *self.locks} if not keep(key)]:
            self.forget(key)
