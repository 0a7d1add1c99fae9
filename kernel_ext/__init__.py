"""greenroom: server modules for Jupyter.

``from greenroom import server`` then ``server.call("name", ...)`` from any
kernel; ``@server.callable`` in a ``*.server.ipynb`` declares functions.

``greenroom.ConnectionError`` and ``greenroom.TimeoutError`` (also ``server.ConnectionError`` and
``server.TimeoutError``) subclass the built-ins of the same name and are deliberately left out of
``__all__``: ``from greenroom import *`` must not shadow the built-ins.
"""

from __future__ import annotations

from typing import Any

from .api import CallContext, Server, User, connect, server
from .errors import ConnectionError as ConnectionError  # re-exported, not in __all__ (see above)
from .errors import (
    ExecutionTerminatedError,
    GreenroomError,
    NoServerFunctionError,
    RemoteError,
    SerializationError,
)
from .errors import TimeoutError as TimeoutError  # re-exported, not in __all__ (see above)
from .media import BlobMedia, Media, URLMedia
from .portable import portable_class

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here

__all__ = [
    "BlobMedia",
    "CallContext",
    "ExecutionTerminatedError",
    "GreenroomError",
    "Media",
    "NoServerFunctionError",
    "RemoteError",
    "SerializationError",
    "Server",
    "URLMedia",
    "User",
    "__version__",
    "connect",
    "load_ipython_extension",
    "portable_class",
    "server",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext greenroom``: register the ``%greenroom`` magic and the notebook importer."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext greenroom``: remove what :func:`load_ipython_extension` added."""
    from .magics import unload

    unload(ipython)
