"""Exceptions cross the wire as data and are rebuilt only from an allow list.

Sent: type name, module, message, args (when they encode), and the server
frames as (notebook, cell, line, function).  Never source text, never locals.
Rebuilt: built-in ``Exception`` subclasses as themselves, greenroom errors as
themselves, portable exception classes as themselves, anything else as
:class:`RemoteError`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeAlias

from . import errors
from .codec import decode, encode
from .errors import GreenroomError, RemoteError, RemoteFrame, SerializationError, WireError
from .portable import portable_classes

__all__ = ["ErrorData", "FrameLocator", "error_from_data", "error_to_data"]

ErrorData: TypeAlias = dict[str, Any]
#: Maps a code object's filename and line to (notebook, cell) or None to hide the frame.
FrameLocator: TypeAlias = Callable[[str], tuple[str, int] | None]

_GREENROOM_ERRORS: dict[str, type[GreenroomError]] = {
    name: getattr(errors, name)
    for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), GreenroomError)
}


def _frames(traceback: TracebackType | None, locate: FrameLocator) -> list[list[Any]]:
    frames = []
    while traceback is not None:
        code = traceback.tb_frame.f_code
        where = locate(code.co_filename)
        if where is not None:
            frames.append([where[0], where[1], traceback.tb_lineno, code.co_name])
        traceback = traceback.tb_next
    return frames


def error_to_data(error: BaseException, locate: FrameLocator) -> ErrorData:
    """Describe ``error`` for the wire, keeping only frames ``locate`` accepts."""
    kind = type(error)
    data: ErrorData = {
        "type": kind.__qualname__,
        "module": kind.__module__,
        "message": str(error),
        "frames": _frames(error.__traceback__, locate),
    }
    # A nested call's error passed on: this process's frames first, the inner call's (more recent) last.
    data["frames"] = data["frames"] + list(getattr(error, "remote_frames_data", []))
    if isinstance(error, OSError) and error.filename is not None:
        data["filenames"] = [str(error.filename), None if error.filename2 is None else str(error.filename2)]
    if isinstance(error, GreenroomError) and kind.__module__.startswith("greenroom"):
        data["module"] = "greenroom.errors"
        if isinstance(error, RemoteError):
            data["remote_type"] = error.type_name
            data["remote_message"] = error.remote_message
    # A SyntaxError's args hold the offending source line and the file's path on the host.
    args = [error.msg] if isinstance(error, SyntaxError) else list(error.args)
    try:
        data["args"] = encode(args, "args")[0]
    except (SerializationError, RecursionError):
        data["args"] = None
    name = portable_classes.by_class.get(kind)
    if name is not None:
        try:
            data["portable"] = [name, encode(error, "error")[0]]
        except (SerializationError, RecursionError):
            pass
    return data


def _rebuild(data: ErrorData) -> BaseException:
    message = str(data.get("message", ""))
    type_name = str(data.get("type", "Exception"))
    module = data.get("module")
    args = None
    if isinstance(data.get("args"), list):
        try:
            args = decode(data["args"], [])
        except (WireError, RecursionError):
            args = None
    portable = data.get("portable")
    if isinstance(portable, list) and len(portable) == 2 and portable[0] in portable_classes.by_name:
        try:
            portable_error = decode(portable[1], [])
            if isinstance(portable_error, BaseException):
                return portable_error
        except (WireError, RecursionError, TypeError):
            pass
    if module == "greenroom.errors" and type_name in _GREENROOM_ERRORS:
        if type_name == "RemoteError":
            return RemoteError(str(data.get("remote_type", "Exception")), str(data.get("remote_message", "")))
        return _GREENROOM_ERRORS[type_name](message)
    candidate = getattr(builtins, type_name, None) if module == "builtins" else None
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        for attempt in (args, [message]):
            if attempt is None:
                continue
            try:
                rebuilt: Exception = candidate(*attempt)
            except Exception:  # noqa: BLE001, S112 - an odd constructor (UnicodeDecodeError, ExceptionGroup)
                continue
            filenames = data.get("filenames")
            if isinstance(rebuilt, OSError) and isinstance(filenames, list) and len(filenames) == 2:
                rebuilt.filename = filenames[0]
                if filenames[1] is not None:
                    rebuilt.filename2 = filenames[1]
            return rebuilt
    qualified = type_name if module in (None, "builtins", "__main__") else f"{module}.{type_name}"
    return RemoteError(qualified, message)


def error_from_data(data: ErrorData) -> BaseException:
    """Rebuild an exception from :func:`error_to_data` output, with the server frames as a note."""
    if not isinstance(data, dict):
        return WireError("malformed error from the host")
    error = _rebuild(data)
    frames = []
    raw_frames = data.get("frames")
    for frame in raw_frames if isinstance(raw_frames, list) else []:
        try:
            notebook, cell, line, function = frame
            frames.append(RemoteFrame(str(notebook), int(cell), int(line), str(function)))
        except (TypeError, ValueError):
            continue
    error.remote_frames = frames  # type: ignore[attr-defined]
    error.remote_frames_data = [[f.notebook, f.cell, f.line, f.function] for f in frames]  # type: ignore[attr-defined]
    if frames:
        error.add_note("Server traceback (most recent call last):\n" + "\n".join(map(str, frames)))
    return error
