"""The runtime side of the unix socket to the host: hello, send, receive."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading

from greenroom.protocol import RUNTIME_MAX_PARTS, Kind, runtime_message_limit
from greenroom.wire import Parts, Route, parse_route, recv_message, route_bytes, send_message

__all__ = ["Channel", "die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(signal_number: int = signal.SIGKILL) -> None:
    """Ask Linux to send this process ``signal_number`` (SIGKILL by default) when its parent ends (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal_number, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Channel:
    """A blocking message channel to the host."""

    def __init__(self, path: str, max_message_size: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.limit = runtime_message_limit(max_message_size)
        self.send_lock = threading.Lock()  # a task's state is sent from a thread of its own

    def send(self, route: Route) -> None:
        """Send a control message: a route and an empty payload."""
        self.send_parts([route_bytes(route), b""])

    def send_parts(self, parts: Parts) -> None:
        """Send a message a :mod:`greenroom.protocol` class packed."""
        with self.send_lock:
            send_message(self.sock, parts)

    def receive(self) -> tuple[Route, Parts]:
        parts = recv_message(self.sock, self.limit, RUNTIME_MAX_PARTS)
        return parse_route(parts[0]), parts

    def hello(self, role: str, generation: int, task: str = "") -> None:
        self.send(
            {
                "kind": Kind.HELLO,
                "role": role,
                "generation": generation,
                "pid": os.getpid(),
                "key": os.environ.get("GREENROOM_RUNTIME_KEY", ""),
                **({"task": task} if task else {}),
            }
        )
