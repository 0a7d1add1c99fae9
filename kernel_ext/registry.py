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

__all__ = ["FunctionRegistry", "ServerFunction", "functions", "public_signature"]


@dataclass
class ServerFunction:
    """One callable: its public name, the function, and its own timeout."""

    name: str
    function: Callable[..., Any]
    timeout: float | None = None
    notebook: str = ""

    def describe(self) -> dict[str, Any]:
        """What callers may learn: name, signature, first doc line, notebook; never source."""
        doc = inspect.getdoc(self.function) or ""
        return {
            "name": self.name,
            "signature": public_signature(self.function),
            "doc": doc.strip().splitlines()[0] if doc.strip() else "",
            "notebook": self.notebook,
            "timeout": self.timeout,
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
    """Name -> :class:`ServerFunction` for this process."""

    def __init__(self) -> None:
        self.by_name: dict[str, ServerFunction] = {}
        self.current_notebook = ""

    def register(self, name: str, function: Callable[..., Any], timeout: float | None) -> None:
        existing = self.by_name.get(name)
        if existing is not None and existing.notebook != self.current_notebook and existing.notebook:
            raise ValueError(
                f"server function {name!r} is defined twice: in {existing.notebook} and {self.current_notebook}"
            )
        self.by_name[name] = ServerFunction(name, function, timeout, self.current_notebook)

    def reset(self) -> None:
        """Forget every function (for tests)."""
        self.by_name.clear()
        self.current_notebook = ""


functions = FunctionRegistry()
