"""``greenroom host`` as a JupyterHub service: where it listens, and who its callers are.

Under JupyterHub (``JUPYTERHUB_SERVICE_NAME`` and ``JUPYTERHUB_API_TOKEN`` in the environment) the host
serves under ``JUPYTERHUB_SERVICE_PREFIX`` and listens where ``JUPYTERHUB_SERVICE_URL`` says.  Each call
connection presents its user's hub token (``Authorization: token ...``: a single-user server's kernels
inherit ``JUPYTERHUB_API_TOKEN``); :class:`HubUsers` asks the hub who it is through
``jupyterhub.services.auth.HubAuth``, whose answers are cached (``cache_max_age``, 5 minutes), so the hub
sees one request per token, not one per call.  While the hub is down or slow (no answer within
``timeout``), a token the hub vouched for in the last hour is still accepted as the same user; any other
token is refused with 503 and the reason, never left waiting past the timeout.

Invariant: a connection opens only for a *user* (never a service) whose token grants access to this
service (``access:services!service=<name>`` or ``access:services``); the token itself is never logged
or stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from tornado import web

from greenroom.api import User

from .identity import Caller

__all__ = ["HubService", "HubUsers", "hub_service"]

#: Longest token accepted in a header (hub tokens are 32 hex characters; OAuth ones longer).
MAX_TOKEN_LENGTH = 512
#: How long (seconds) a token the hub vouched for stays accepted while the hub cannot answer.
OUTAGE_GRACE = 3600.0
#: How many such tokens are remembered (by digest), oldest forgotten first.
OUTAGE_MEMORY = 10_000


@dataclass(frozen=True)
class HubService:
    """What the hub told the service, from its environment."""

    name: str
    prefix: str  # "/services/<name>/"
    ip: str
    port: int


def hub_service(environ: dict[str, str] | None = None) -> HubService | None:
    """The hub service this process runs as, or None outside JupyterHub."""
    environ = dict(os.environ) if environ is None else environ
    name = environ.get("JUPYTERHUB_SERVICE_NAME", "")
    if not name or not environ.get("JUPYTERHUB_API_TOKEN"):
        return None
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{name}/"
    listen = urlparse(environ.get("JUPYTERHUB_SERVICE_URL", ""))
    return HubService(
        name,
        prefix if prefix.endswith("/") else prefix + "/",
        listen.hostname or "127.0.0.1",
        listen.port or 8765,
    )


class HubUsers:
    """Callers who present a hub user's token granting access to this service."""

    def __init__(self, service: HubService, hub_auth: Any = None, *, timeout: float = 10.0) -> None:
        if hub_auth is None:
            from jupyterhub.services.auth import HubAuth

            hub_auth = HubAuth(access_scopes={f"access:services!service={service.name}", "access:services"})
        self.service = service
        self.hub_auth = hub_auth
        self.timeout = timeout
        # token digest -> (the hub's last answer, when): what an outage of the hub falls back on
        self.vouched: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()

    async def ask_hub(self, token: str) -> dict[str, Any] | None:
        """The hub's user model for ``token`` (None: not a token it knows); while the hub cannot answer, its
        last answer from the past :data:`OUTAGE_GRACE` seconds, else ``HTTPError(503)`` with the reason."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        try:
            model = await asyncio.wait_for(self.hub_auth.user_for_token(token, sync=False), self.timeout)
        except (TimeoutError, web.HTTPError) as error:
            reason = (
                f"did not answer within {self.timeout:g} s"
                if isinstance(error, asyncio.TimeoutError)
                else f"could not check the token ({error.log_message or error.status_code})"
            )
            remembered = self.vouched.get(digest)
            if remembered is not None and time.monotonic() - remembered[1] < OUTAGE_GRACE:
                return remembered[0]
            raise web.HTTPError(503, f"greenroom: the hub {reason}; try again when it is back") from None
        if model:
            self.vouched[digest] = (model, time.monotonic())
            self.vouched.move_to_end(digest)
            while len(self.vouched) > OUTAGE_MEMORY:
                self.vouched.popitem(last=False)
        else:
            self.vouched.pop(digest, None)
        return model  # type: ignore[no-any-return]

    async def authenticate(self, handler: web.RequestHandler) -> Caller | None:
        scheme, _, token = handler.request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("token", "bearer") or not token:
            return None
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
            raise web.HTTPError(403, "greenroom: a malformed token")
        model = await self.ask_hub(token)
        if not model:
            raise web.HTTPError(403, "greenroom: the hub does not know this token")
        if model.get("kind", "user") != "user":
            raise web.HTTPError(403, "greenroom: a service's token cannot call server functions")
        if not self.hub_auth.check_scopes(self.hub_auth.access_scopes, model):
            raise web.HTTPError(
                403, f"greenroom: this token does not grant access:services!service={self.service.name}"
            )
        name = str(model.get("name", ""))
        user = User(name, frozenset(str(group) for group in model.get("groups") or []))
        connection = uuid.uuid4().hex
        return Caller("hub", name, f"hub:{name}:{connection}", owner=False, user=user)
