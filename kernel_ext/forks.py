"""A forked process never uses the connections to the host it inherited.

After a fork the child shares its parent's sockets (a reply would go to whichever process reads first) and
has none of its threads.  Each connection registers here when it is made; in a forked child every one of
them is abandoned: it touches nothing of the parent's connection (the local socket's copy of the
descriptor is closed, the WebSocket's and a worker's channel are left alone), and using it, or a ``Task``
watched through it, raises :class:`~greenroom.errors.ConnectionError`.  ``server`` itself then connects a
kernel's child again (see ``greenroom.api``); a worker's child has no credentials to connect with.

Invariant: a child never reads from or writes to a socket a connection of its parent's holds.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

from .errors import ConnectionError

__all__ = ["Abandonable", "inherited_error", "track"]


class Abandonable(Protocol):
    """A connection that a forked child can let go of."""

    def abandon(self) -> None:
        """In a forked child: let go of the parent's connection without touching it, and refuse every later
        use (set ``abandoned``)."""


_connections: weakref.WeakSet[Abandonable] = weakref.WeakSet()


def track(connection: Abandonable) -> None:
    """Abandon ``connection`` in every process forked from this one."""
    _connections.add(connection)


def inherited_error() -> ConnectionError:
    """What using an abandoned connection raises."""
    return ConnectionError(
        "this process was forked from one connected to the greenroom host, and that connection (and the tasks "
        "watched through it) stays with that process; in a kernel's child, server.call opens a new one, but a "
        "process a server function forks cannot call the host"
    )


def _after_fork_in_child() -> None:
    inherited = list(_connections)
    _connections.clear()
    for connection in inherited:
        connection.abandon()


os.register_at_fork(after_in_child=_after_fork_in_child)
