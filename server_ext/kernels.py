"""Give every kernel the server launches its own greenroom credentials.

The kernel manager's ``start_kernel`` is wrapped: the kernel id is assigned
up front and ``GREENROOM_URL``, ``GREENROOM_KERNEL_ID`` and ``GREENROOM_TOKEN``
are added to the kernel's environment, with ``GREENROOM_SOCKET`` (the host's local
call socket) when the kernels run on the host's machine.  Restarts keep the environment.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from typing import Any

from .credentials import Credentials

__all__ = ["inject_credentials", "local_url", "reachable_url"]


def reachable_url(scheme: str, ip: str, port: int, base_url: str) -> str:
    """The server's URL for a process on this machine: loopback unless it listens on one address only."""
    host = ip if ip and ip not in ("0.0.0.0", "::", "*", "localhost") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{base_url if base_url.endswith('/') else base_url + '/'}"


def local_url(serverapp: Any) -> str:
    """The Jupyter server's URL as seen from a process on this machine."""
    return reachable_url("https" if serverapp.certfile else "http", serverapp.ip, serverapp.port, serverapp.base_url)


def kernel_environment(url: str, kernel_id: str, credentials: Credentials, socket_path: str = "") -> dict[str, str]:
    environment = {
        "GREENROOM_URL": url,
        "GREENROOM_KERNEL_ID": kernel_id,
        "GREENROOM_TOKEN": credentials.token_for(f"kernel:{kernel_id}"),
    }
    if socket_path:
        environment["GREENROOM_SOCKET"] = socket_path  # the local call socket: the same host, fewer hops
    return environment


def inject_credentials(
    kernel_manager: Any, url_of: Callable[[], str], credentials: Credentials, socket_path: str = ""
) -> None:
    """Wrap ``kernel_manager.start_kernel`` once (idempotent)."""
    original = kernel_manager.start_kernel
    if getattr(original, "__greenroom_wrapped__", False):
        return

    @functools.wraps(original)
    async def start_kernel(*args: Any, kernel_id: str | None = None, **kwargs: Any) -> Any:
        kernel_id = kernel_id or str(uuid.uuid4())
        env = dict(kwargs.get("env") or os.environ)
        env.update(kernel_environment(url_of(), kernel_id, credentials, socket_path))
        kwargs["env"] = env
        result = original(*args, kernel_id=kernel_id, **kwargs)
        if hasattr(result, "__await__"):
            result = await result
        return result

    start_kernel.__greenroom_wrapped__ = True  # type: ignore[attr-defined]
    kernel_manager.start_kernel = start_kernel
