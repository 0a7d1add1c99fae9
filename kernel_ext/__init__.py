"""greenroom: server modules for Jupyter.

``from greenroom import server`` then ``server.call("name", ...)`` from any
kernel; ``@server.callable`` in a ``*.server.ipynb`` declares functions.
"""

from __future__ import annotations

from typing import Any

from .api import CallContext, Server, connect, server
from .errors import (
    ConnectionError,
    ExecutionTerminatedError,
    GreenroomError,
    NoServerFunctionError,
    RemoteError,
    SerializationError,
    TimeoutError,
)
from .media import BlobMedia, Media, URLMedia
from .portable import portable_class

__version__ = "0.1.0"

__all__ = [
    "BlobMedia",
    "CallContext",
    "ConnectionError",
    "ExecutionTerminatedError",
    "GreenroomError",
    "Media",
    "NoServerFunctionError",
    "RemoteError",
    "SerializationError",
    "Server",
    "TimeoutError",
    "URLMedia",
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
