"""Credentials: per-kernel tokens, the local token, and the runtime file.

A kernel's token is an HMAC of its kernel id under a secret that lives only in
the host's memory, so a kernel cannot forge another kernel's token.  Processes
the host did not launch read the ``local`` token from a 0600 runtime file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets

from jupyter_core.paths import jupyter_runtime_dir

__all__ = ["LOCAL_ID", "Credentials"]

LOCAL_ID = "local"


class Credentials:
    """Mints and checks greenroom tokens."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)
        self.runtime_file: str | None = None

    def token_for(self, client_id: str) -> str:
        return hmac.new(self._secret, client_id.encode(), hashlib.sha256).hexdigest()

    def check(self, client_id: str, token: str) -> bool:
        """Constant-time check of ``token`` for ``client_id``."""
        return hmac.compare_digest(self.token_for(client_id).encode(), token.encode("utf-8", "replace"))

    def write_runtime_file(self, url: str, socket_path: str = "") -> str:
        """Write the 0600 file through which same-user processes find this host (and its local call socket,
        if it has one)."""
        directory = jupyter_runtime_dir()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, f"greenroom-{os.getpid()}.json")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            info = {"url": url, "pid": os.getpid(), "token": self.token_for(LOCAL_ID)}
            json.dump({**info, "socket": socket_path} if socket_path else info, handle)
        self.runtime_file = path
        return path

    def remove_runtime_file(self) -> None:
        if self.runtime_file:
            try:
                os.unlink(self.runtime_file)
            except FileNotFoundError:
                pass
            self.runtime_file = None
