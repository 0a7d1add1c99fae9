"""Exceptions cross the wire as data and are rebuilt only from an allow list.

Sent: type name, module, message, args (when they encode), and the server
frames as (notebook, cell, line, function).  Never source text, never locals.
Rebuilt: built-in ``Exception`` subclasses as themselves, greenroom errors as
themselves, portable exception classes as themselves, anything else as
:class:`RemoteError`; its traceback holds one source-less entry per server
frame, so tracebacks show the server frames where Python and IPython put frames.
"""

from __future__ import annotations

import builtins
import linecache
import math
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeAlias

from . import errors
from .codec import Buffers, decode, encode
from .errors import GreenroomError, RemoteError, RemoteFrame, SerializationError, WireError
from .portable import portable_classes

__all__ = [
    "ErrorData",
    "FrameLocator",
    "describe_server_frames",
    "error_from_data",
    "error_to_data",
    "server_traceback",
]

#: At most this many server frames (the most recent) become traceback entries.
MAX_SERVER_FRAMES = 100

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


def error_to_data(error: BaseException, locate: FrameLocator, buffers: Buffers | None = None) -> ErrorData:
    """Describe ``error`` for the wire, keeping only frames ``locate`` accepts.  With ``buffers`` (an empty
    list), arguments that travel as binary parts (arrays, tables, Media) are kept and their parts appended;
    without, such arguments are left out and the error is rebuilt from its message."""
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
        if isinstance(error, errors.RateLimitExceeded):
            data["retry_after"] = error.retry_after
        if isinstance(error, RemoteError):
            data["remote_type"] = error.type_name
            data["remote_message"] = error.remote_message
    # A SyntaxError's args hold the offending source line and the file's path on the host.
    args = [error.msg] if isinstance(error, SyntaxError) else list(error.args)
    try:
        data["args"], arg_buffers = encode(args, "args")
        if arg_buffers and (buffers is None or buffers):
            data["args"] = None  # nowhere to put them (the buffers' indices count from the first)
        elif buffers is not None:
            buffers.extend(arg_buffers)
    except (SerializationError, RecursionError):
        data["args"] = None
    name = portable_classes.by_class.get(kind)
    if name is not None:
        try:
            data["portable"] = [name, encode(error, "error")[0]]
        except (SerializationError, RecursionError):
            pass
    return data


def _rebuild(data: ErrorData, buffers: Buffers) -> BaseException:
    message = str(data.get("message", ""))
    type_name = str(data.get("type", "Exception"))
    module = data.get("module")
    args = None
    if isinstance(data.get("args"), list):
        try:
            args = decode(data["args"], buffers)
        except (WireError, SerializationError, RecursionError):
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
        if type_name == "RateLimitExceeded":
            retry_after = data.get("retry_after")
            seconds = float(retry_after) if isinstance(retry_after, int | float) and math.isfinite(retry_after) else 0.0
            return errors.RateLimitExceeded(message, seconds)
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


def error_from_data(data: ErrorData, buffers: Sequence[bytes | memoryview] = ()) -> BaseException:
    """Rebuild an exception from :func:`error_to_data` output; its traceback is the server frames."""
    if not isinstance(data, dict):
        return WireError("malformed error from the host")
    error = _rebuild(data, list(buffers))
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
    return error.with_traceback(server_traceback(frames))


class _Link(Exception):
    """Raised once per server frame to obtain a traceback entry for it."""


def _printable(text: str, limit: int = 200) -> str:
    return "".join(character if character.isprintable() else "?" for character in text[:limit])


#: What a traceback shows as the line of a server frame.
SOURCE_PLACEHOLDER = "# (the source stays on the server)"

#: Server frames past this line show no placeholder (tracebacks then say they cannot get the source).
_MAX_PLACEHOLDER_LINE = 100_000


def _say_source_stays_on_the_server(filename: str, line: int) -> None:
    """Give ``linecache`` (where ``traceback`` and IPython look for source) a placeholder as ``filename``'s
    ``line``.  The entry has no modification time, so ``linecache.checkcache`` keeps it; ``linecache.clearcache``
    forgets it.  One entry per server cell, as long as its longest line seen."""
    if not 1 <= line <= _MAX_PLACEHOLDER_LINE:
        return
    entry = linecache.cache.get(filename)
    lines = list(entry[2]) if entry is not None and len(entry) == 4 else []
    lines.extend(["\n"] * (line - len(lines)))
    lines[line - 1] = SOURCE_PLACEHOLDER + "\n"
    linecache.cache[filename] = (0, None, lines, filename)


def server_traceback(frames: list[RemoteFrame]) -> TracebackType | None:
    """Traceback entries for the server frames, outermost first: each names its notebook and cell as the file
    (``<server notebook calc.server.ipynb, cell 7>``, which no file can be, so no source is ever looked up),
    its line and its function.  Raising the rebuilt error puts the caller's frames above them, so a notebook
    or a terminal shows the caller's line, then the server frames, then the message."""
    head: TracebackType | None = None
    for frame in reversed(frames[-MAX_SERVER_FRAMES:]):
        filename = f"<server notebook {_printable(frame.notebook)}, cell {frame.cell}>"
        name = _printable(frame.function) or "<module>"
        _say_source_stays_on_the_server(filename, frame.line)
        code = compile("raise _Link", filename, "exec").replace(
            co_name=name, co_qualname=name, co_firstlineno=min(max(frame.line, 1), 1 << 30)
        )
        try:
            exec(code, {"_Link": _Link})  # noqa: S102 - a one-statement code object of our own making
        except _Link as link:
            entry = link.__traceback__.tb_next if link.__traceback__ else None
        if entry is not None:
            entry.tb_next = head
            head = entry
    return head


def describe_server_frames(error: BaseException) -> str:
    """``error``'s server frames as text (empty when it has none), for places that show no traceback."""
    frames = getattr(error, "remote_frames", None) or []
    if not frames:
        return ""
    return "Server traceback (most recent call last):\n" + "\n".join(map(str, frames))
