"""The wiring every embedding of the host shares, written once.

An embedding (the Jupyter server extension, ``greenroom serve``, a standalone host) builds a
:class:`HostEmbedding` with its configuration, root, logger, kernel manager (if it launches
kernels, which are then given this host's credentials unless they call another host), its URL
and its authenticators.  The embedding then adds :meth:`settings` to its
tornado settings, :meth:`handlers` to its routes, calls :meth:`start_soon` once its loop runs
and awaits :meth:`stop` when it stops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from .config import HostConfig
from .handlers import BareCallSocketHandler, CallSocketHandler, StatusHandler
from .host import Host
from .identity import Authenticator
from .kernels import inject_credentials
from .localcalls import LocalCallListener

__all__ = ["CALL_SOCKET_PATH", "STATUS_PATH", "HostEmbedding"]

CALL_SOCKET_PATH = "/greenroom/api/ws"
STATUS_PATH = "/greenroom/api/status"


class HostEmbedding:
    """A :class:`Host`, the kernels it gives credentials to, and how callers are authenticated."""

    def __init__(
        self,
        config: HostConfig,
        root: str,
        log: logging.Logger,
        url_of: Callable[[], str],
        authenticators: Callable[[Host], Sequence[Authenticator]],
        kernel_manager: Any = None,
        *,
        kernels_call_this_host: bool = True,
    ) -> None:
        self.url_of = url_of
        live_kernel_ids = kernel_manager.list_kernel_ids if kernel_manager is not None else None
        self.host = Host(config, root, log, live_kernel_ids=live_kernel_ids)
        self.authenticators = list(authenticators(self.host))
        #: The unix socket the kernels it launches call over (they are on this machine).
        self.local_calls: LocalCallListener | None = None
        if kernel_manager is not None and kernels_call_this_host:
            path = os.path.join(self.host.socket_dir, "calls.sock")
            self.local_calls = LocalCallListener(path, self.host, self.authenticators, self.host.log)
            inject_credentials(kernel_manager, url_of, self.host.credentials, path)

    def settings(self) -> dict[str, Any]:
        """What greenroom's handlers find in the tornado application's settings."""
        return {"greenroom_host": self.host, "greenroom_authenticators": self.authenticators}

    def handlers(
        self, prefix: str = "", *, status: bool = True, jupyter: bool = True, **handler_kwargs: Any
    ) -> list[tuple[str, type, dict[str, Any]]]:
        """The call socket route under ``prefix``, and the status route unless ``status`` is false; ``jupyter``:
        the handlers run in a Jupyter server's application (else in a bare tornado one, with no status route)."""
        if not jupyter:
            return [(url_path_join(prefix, CALL_SOCKET_PATH), BareCallSocketHandler, handler_kwargs)]
        routes: list[tuple[str, type, dict[str, Any]]] = [
            (url_path_join(prefix, CALL_SOCKET_PATH), CallSocketHandler, handler_kwargs),
        ]
        if status:
            routes.append((url_path_join(prefix, STATUS_PATH), StatusHandler, handler_kwargs))
        return routes

    def start_soon(self) -> None:
        """Start the host once the loop runs (the port is final only then: the runtime file names it)."""
        IOLoop.current().add_callback(self._start)

    async def _start(self) -> None:
        if self.local_calls is not None:
            await self.local_calls.start()
        local = self.local_calls.path if self.local_calls is not None else ""
        self.host.credentials.write_runtime_file(self.url_of(), local)
        await self.host.start()

    async def stop(self) -> None:
        if self.local_calls is not None:
            self.local_calls.close()
        await self.host.stop()
