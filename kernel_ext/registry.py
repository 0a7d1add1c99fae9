"""The callables a server notebook declares with ``@server.callable``.

In the server notebook's own kernel the decorator only records the function
and returns it unchanged, so the author can call it directly.  The runtime
reads the registry after loading each notebook.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FunctionRegistry", "Policy", "ServerFunction", "functions", "parse_rate_limit", "public_signature"]


#: ``rate_limit`` units and their seconds.
RATE_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def parse_rate_limit(text: str) -> tuple[int, float]:
    """``"5/minute"`` -> ``(5, 60.0)``: at most that many calls in any window of that many seconds."""
    count, _, unit = str(text).partition("/")
    unit = unit.strip().rstrip("s") if unit.strip() not in RATE_UNITS else unit.strip()
    if not count.strip().isdigit() or int(count) < 1 or unit not in RATE_UNITS:
        raise ValueError(f"rate_limit is 'N/second', 'N/minute', 'N/hour' or 'N/day' with N >= 1, not {text!r}")
    return int(count), RATE_UNITS[unit]


@dataclass(frozen=True)
class Policy:
    """Who may call a function, and how often: ``require_user`` (True, or a function of the calling
    ``greenroom.User``) and ``rate_limit`` ``(calls, seconds)``."""

    require_user: bool | Callable[[Any], bool] = False
    rate_limit: tuple[int, float] | None = None

    def describe(self) -> dict[str, Any]:
        """The host's part: whether a user is required (or a check runs in the worker), and the rate limit."""
        return {
            "require_user": "check" if callable(self.require_user) else bool(self.require_user),
            "rate_limit": list(self.rate_limit) if self.rate_limit else None,
        }


@dataclass
class ServerFunction:
    """One callable: its public name, the function, its own timeout and its policy."""

    name: str
    function: Callable[..., Any]
    timeout: float | None = None
    notebook: str = ""
    policy: Policy = Policy()

    def describe(self) -> dict[str, Any]:
        """What callers may learn: name, signature, first doc line, notebook; never source."""
        doc = inspect.getdoc(self.function) or ""
        return {
            "name": self.name,
            "signature": public_signature(self.function),
            "doc": doc.strip().splitlines()[0] if doc.strip() else "",
            "notebook": self.notebook,
            "timeout": self.timeout,
            **self.policy.describe(),
        }


class _Hidden:
    """Stands for a default value in a shown signature: a default may be a secret."""

    def __repr__(self) -> str:
        return "…"


_HIDDEN = _Hidden()


def public_signature(function: Callable[..., Any]) -> str:
    """The parameter list as Python writes it, with its ``/`` and ``*`` markers, and with default values and
    annotations hidden (a default may be a secret): ``def f(a, /, b, *, c, d=1)`` shows ``(a, /, b, *, c, d=…)``."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return "(...)"
    shown = [
        parameter.replace(
            default=parameter.empty if parameter.default is parameter.empty else _HIDDEN,
            annotation=parameter.empty,
        )
        for parameter in signature.parameters.values()
    ]
    return str(signature.replace(parameters=shown, return_annotation=inspect.Signature.empty))


class FunctionRegistry:
    """Name -> :class:`ServerFunction` for this process: the callables (``by_name``) and, apart, the
    background tasks (``tasks``), which clients cannot call."""

    def __init__(self) -> None:
        self.by_name: dict[str, ServerFunction] = {}
        self.tasks: dict[str, ServerFunction] = {}
        self.current_notebook = ""

    def register_task(self, name: str, function: Callable[..., Any]) -> None:
        existing = self.tasks.get(name)
        if existing is not None and existing.notebook != self.current_notebook and existing.notebook:
            raise ValueError(
                f"background task {name!r} is defined twice: in {existing.notebook} and {self.current_notebook}"
            )
        self.tasks[name] = ServerFunction(name, function, None, self.current_notebook)

    def snapshot(self) -> tuple[dict[str, ServerFunction], dict[str, ServerFunction]]:
        """What is registered now, to go back to with :meth:`restore` (a notebook that failed to load)."""
        return dict(self.by_name), dict(self.tasks)

    def restore(self, snapshot: tuple[dict[str, ServerFunction], dict[str, ServerFunction]]) -> None:
        self.by_name, self.tasks = dict(snapshot[0]), dict(snapshot[1])

    def register(
        self, name: str, function: Callable[..., Any], timeout: float | None, policy: Policy | None = None
    ) -> None:
        existing = self.by_name.get(name)
        if existing is not None and existing.notebook != self.current_notebook and existing.notebook:
            raise ValueError(
                f"server function {name!r} is defined twice: in {existing.notebook} and {self.current_notebook}"
            )
        self.by_name[name] = ServerFunction(name, function, timeout, self.current_notebook, policy or Policy())

    def reset(self) -> None:
        """Forget every function and task (for tests)."""
        self.by_name.clear()
        self.tasks.clear()
        self.current_notebook = ""


functions = FunctionRegistry()
