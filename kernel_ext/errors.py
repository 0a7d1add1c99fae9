"""The exceptions greenroom raises, one small hierarchy.

Every class derives from :class:`GreenroomError`; where a built-in exception
already names the situation (a timeout, a lost connection) the greenroom class
derives from it too, so ``except TimeoutError`` keeps working.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

__all__ = [
    "AuthenticationFailed",
    "ConnectionError",
    "ExecutionTerminatedError",
    "GreenroomError",
    "NoServerFunctionError",
    "PermissionDenied",
    "RateLimitExceeded",
    "RemoteError",
    "RemoteFrame",
    "SerializationError",
    "TimeoutError",
    "WireError",
]


@dataclass(frozen=True)
class RemoteFrame:
    """One frame of server code, as the caller sees it: where, never what."""

    notebook: str
    cell: int
    line: int
    function: str

    def __str__(self) -> str:
        return f'  notebook "{self.notebook}", cell {self.cell}, line {self.line}, in {self.function}'


class GreenroomError(Exception):
    """Base class of every greenroom error."""


class SerializationError(GreenroomError, TypeError):
    """A value cannot cross the wire; the message names the path of the bad value."""


class NoServerFunctionError(GreenroomError, LookupError):
    """No loaded server notebook defines a callable with that name."""


class TimeoutError(GreenroomError, builtins.TimeoutError):
    """The call ran longer than its timeout and was stopped."""


class ExecutionTerminatedError(GreenroomError):
    """The worker process running the call ended before it answered."""


class ConnectionError(GreenroomError, builtins.ConnectionError):
    """No greenroom host could be reached, or the connection to it was lost."""


class WireError(GreenroomError, ValueError):
    """A message on the wire is malformed, too large or of an unknown kind."""


class AuthenticationFailed(GreenroomError, PermissionError):
    """The server function needs an authenticated user, and the caller has none."""


class PermissionDenied(GreenroomError, PermissionError):
    """The server function's ``require_user`` check refused the calling user."""


class RateLimitExceeded(GreenroomError):
    """The caller passed the server function's ``rate_limit``; ``retry_after``: seconds until a call may pass."""

    def __init__(self, message: str = "", retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = float(retry_after)


class RemoteError(GreenroomError):
    """An exception from server code whose type cannot be rebuilt in the caller.

    ``type_name`` is the remote exception's qualified type name and
    ``remote_message`` its message.
    """

    def __init__(self, type_name: str, remote_message: str) -> None:
        super().__init__(f"{type_name}: {remote_message}" if remote_message else type_name)
        self.type_name = type_name
        self.remote_message = remote_message
