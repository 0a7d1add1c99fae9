"""A forked process never uses the connections to the host it inherited.

After a fork the child shares its parent's sockets (a reply would go to whichever process reads first) and
has none of its threads.  Each connection registers here when it is made; in a forked child every one of
them is abandoned: the child's copy of its socket closes, the parent's connection goes on untouched, and
using it raises :class:`~greenroom.errors.ConnectionError`.  ``server`` itself then connects a kernel's
child again (see ``greenroom.api``).

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
        """In a forked child: close this process's copy of the socket, and refuse every later use."""


_connections: weakref.WeakSet[Abandonable] = weakref.WeakSet()


def track(connection: Abandonable) -> None:
    """Abandon ``connection`` in every process forked from this one."""
    _connections.add(connection)


def inherited_error() -> ConnectionError:
    """What using an abandoned connection raises."""
    return ConnectionError(
        "this process was forked from one connected to the greenroom host, and that connection stays with it "
        "(a server function's worker cannot share its channel): call server functions from that process"
    )


def _after_fork_in_child() -> None:
    inherited = list(_connections)
    _connections.clear()
    for connection in inherited:
        connection.abandon()


os.register_at_fork(after_in_child=_after_fork_in_child)
