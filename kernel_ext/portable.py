"""Portable classes: user classes allowed to cross the wire.

A class decorated with ``@server.portable_class`` is encoded as its registered
name plus its state (``__dict__`` or ``__serialize__()``); the receiving side
rebuilds it only if the same name is registered there too (a shared module).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["PortableRegistry", "portable_class", "portable_classes"]

ClassT = TypeVar("ClassT", bound=type)


class PortableRegistry:
    """Name <-> class mapping of the portable classes of this process."""

    def __init__(self) -> None:
        self.by_name: dict[str, type] = {}
        self.by_class: dict[type, str] = {}

    def register(self, cls: type, name: str | None = None) -> None:
        """Register ``cls`` under ``name`` (default: module.qualname)."""
        name = name or f"{cls.__module__}.{cls.__qualname__}"
        previous = self.by_name.get(name)
        if previous is not None and previous is not cls:
            # A re-run cell or reloaded module redefines the class: the newest wins.
            self.by_class.pop(previous, None)
        self.by_name[name] = cls
        self.by_class[cls] = name

    def reset(self) -> None:
        """Forget every registration (for tests)."""
        self.by_name.clear()
        self.by_class.clear()


portable_classes = PortableRegistry()


def portable_class(cls_or_name: Any = None) -> Any:
    """Class decorator: allow instances (and exceptions) of the class on the wire.

    Use as ``@portable_class`` or ``@portable_class("name")``.
    """
    if isinstance(cls_or_name, type):
        portable_classes.register(cls_or_name)
        return cls_or_name

    def decorate(cls: ClassT) -> ClassT:
        portable_classes.register(cls, cls_or_name)
        return cls

    if cls_or_name is not None and not isinstance(cls_or_name, str):
        raise TypeError("portable_class takes a class or a name string")
    return decorate


_NOT_STATE = ("remote_frames", "remote_frames_data", "__notes__")


def _attributes(value: Any) -> dict[str, Any]:
    state = {k: v for k, v in getattr(value, "__dict__", {}).items() if k not in _NOT_STATE}
    for cls in type(value).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                state[slot] = getattr(value, slot)
    return state


def state_of(value: Any) -> dict[str, Any]:
    """The state a portable instance sends (its attributes, slots included, or ``__serialize__()``)."""
    serialize: Callable[[], Any] | None = getattr(value, "__serialize__", None)
    if serialize is not None:
        return {"state": serialize()}
    if isinstance(value, BaseException):
        return {"args": list(value.args), "state": _attributes(value)}
    return {"state": _attributes(value)}


def rebuild(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a portable instance from :func:`state_of` output."""
    deserialize = getattr(cls, "__deserialize__", None)
    if deserialize is not None:
        return deserialize(data.get("state"))
    instance: object
    if issubclass(cls, BaseException):
        error = cls.__new__(cls, *data.get("args", []))
        error.args = tuple(data.get("args", []))
        instance = error
    else:
        instance = cls.__new__(cls)
    for name, attribute in (data.get("state") or {}).items():
        object.__setattr__(instance, name, attribute)
    return instance
