"""The host's side of a server function's policy: who may call it, and how often.

``require_user=True`` is decided here (the host knows the caller); a ``require_user`` check function is
server code, so the worker runs it before anything else of the call.  ``rate_limit`` counts calls per
user, or per session for callers without one, per function, in a sliding window: a refused call costs
no worker and runs no server code.

Invariant: the limiter keeps at most ``calls`` timestamps per (caller, function), and forgets a key
once its window has passed (:meth:`RateLimiter.prune`), so its memory follows the active callers.
"""

from __future__ import annotations

import collections
from typing import Any

from greenroom import errors

from .identity import Caller

__all__ = ["RateLimiter", "refusal"]


class RateLimiter:
    """Sliding-window call counts per (caller key, function)."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], collections.deque[float]] = {}

    def admit(self, key: str, function: str, calls: int, window: float, now: float) -> float | None:
        """Record a call and return None, or return the seconds until one may pass."""
        moments = self._calls.setdefault((key, function), collections.deque())
        while moments and moments[0] <= now - window:
            moments.popleft()
        if len(moments) >= calls:
            return moments[0] + window - now
        moments.append(now)
        return None

    def prune(self, now: float, longest_window: float = 86400.0) -> None:
        """Forget keys whose last call is older than the longest window."""
        for key in [key for key, moments in self._calls.items() if not moments or moments[-1] <= now - longest_window]:
            del self._calls[key]

    def __len__(self) -> int:
        return len(self._calls)


def refusal(caller: Caller, name: str, info: dict[str, Any], limiter: RateLimiter, now: float) -> Exception | None:
    """Why ``caller`` may not call ``name`` now (its ``info`` from the registry), or None."""
    if info.get("require_user") and caller.user is None and caller.client_type != "server":
        return errors.AuthenticationFailed(f"{name}() needs an authenticated user, and this caller has none")
    limit = info.get("rate_limit")
    if limit and caller.client_type != "server":  # a nested call counts against no one
        calls, window = int(limit[0]), float(limit[1])
        key = f"user:{caller.user.name}" if caller.user is not None else caller.session_key
        wait = limiter.admit(key, name, calls, window, now)
        if wait is not None:
            return errors.RateLimitExceeded(
                f"{name}() allows {calls} call(s) per {window:g} s; try again in {wait:.1f} s", wait
            )
    return None
