"""Who is calling: the :class:`Caller`, and the authenticators each embedding plugs in.

An authenticator looks at a call socket's opening request and answers with a
:class:`Caller` (accepted), ``None`` (not a credential it knows: ask the next one)
or raises ``HTTPError(403)`` (refused, whatever the others would say).  Each embedding
chooses its list: a Jupyter server accepts kernel tokens and its own users; a published
app accepts its kernels only.  Refusals happen before the WebSocket opens.
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jupyter_server.utils import ensure_async
from tornado import web

from greenroom.api import User

from .credentials import LOCAL_ID, Credentials

__all__ = [
    "AUTH_RESOURCE",
    "Authenticator",
    "Caller",
    "JupyterUsers",
    "KernelTokens",
    "authenticate",
    "server_user",
]

#: The resource name greenroom's handlers give jupyter_server's Authorizer (action ``execute`` for calls).
AUTH_RESOURCE = "greenroom"
KERNEL_ID_HEADER = "X-Greenroom-Kernel-Id"
TOKEN_HEADER = "X-Greenroom-Token"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a call; ``session_key`` names the session dict the host keeps for it.  An ``owner`` (the
    server's user: its token, the runtime file's token, or its own kernels inside Jupyter) may also force
    a reload; other callers may only call."""

    client_type: str  # "kernel", "local", "user", "hub" or "server" (a nested call)
    client_id: str
    session_key: str
    owner: bool = False
    user: User | None = None  # the authenticated user, where the deployment knows one


#: The caller of a server-to-server call that has no caller of its own.
SERVER_CALLER = Caller("server", "", "server")


def server_user(environ: dict[str, str] | None = None) -> User:
    """Whom a Jupyter server runs for, and so whose its kernels are: the hub user of a JupyterHub single-user
    server (``JUPYTERHUB_USER``), else the account the server runs as."""
    environ = dict(os.environ) if environ is None else environ
    name = environ.get("JUPYTERHUB_USER", "")
    if not name:
        try:
            name = getpass.getuser()
        except (OSError, KeyError):  # an account with no name (a container's bare uid)
            name = f"uid {os.getuid()}"
    return User(name)


class Authenticator(Protocol):
    """Turns a call socket's opening request into a :class:`Caller`."""

    async def authenticate(self, handler: web.RequestHandler) -> Caller | None:
        """A caller, ``None`` when the request carries no credential this authenticator knows, or raise
        ``tornado.web.HTTPError(403)`` to refuse."""


class KernelTokens:
    """The greenroom tokens: a kernel's (an HMAC of its id, accepted while that kernel lives) and the runtime
    file's local token.  ``kernels_are_owners``: inside a Jupyter server the kernels are its user's
    (``kernel_user``, see :func:`server_user`); in a published app they are its visitors', whom no one
    has authenticated."""

    def __init__(
        self,
        credentials: Credentials,
        is_live: Callable[[str], bool],
        *,
        kernels_are_owners: bool,
        kernel_user: User | None = None,
    ) -> None:
        self.credentials = credentials
        self.is_live = is_live
        self.kernels_are_owners = kernels_are_owners
        self.kernel_user = kernel_user if kernels_are_owners else None

    async def authenticate(self, handler: web.RequestHandler) -> Caller | None:
        token = handler.request.headers.get(TOKEN_HEADER, "")
        if not token:
            return None
        kernel_id = handler.request.headers.get(KERNEL_ID_HEADER, "")
        if kernel_id and self.credentials.check(f"kernel:{kernel_id}", token):
            if not self.is_live(kernel_id):
                raise web.HTTPError(403, "greenroom: the token of a kernel that has shut down")
            return Caller(
                "kernel", kernel_id, f"kernel:{kernel_id}", owner=self.kernels_are_owners, user=self.kernel_user
            )
        if not kernel_id and self.credentials.check(LOCAL_ID, token):
            connection = uuid.uuid4().hex
            return Caller("local", connection, f"local:{connection}", owner=True)
        raise web.HTTPError(403, "greenroom: wrong token")


class HostToken:
    """``Authorization: token <t>`` where ``t`` is the host's own token (printed by ``greenroom host`` and kept
    in its runtime file): whoever started the host, and the processes they gave it to.  Any other token is
    left to the next authenticator."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    async def authenticate(self, handler: web.RequestHandler) -> Caller | None:
        scheme, _, token = handler.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "token" or not token.strip() or not self.credentials.check(LOCAL_ID, token.strip()):
            return None
        connection = uuid.uuid4().hex
        return Caller("local", connection, f"local:{connection}", owner=True)


class JupyterUsers:
    """Users the Jupyter server itself authenticated (its token or login), allowed by its Authorizer to
    ``execute`` on the ``greenroom`` resource, as the kernel WebSocket asks for ``execute`` on ``kernels``."""

    async def authenticate(self, handler: web.RequestHandler) -> Caller | None:
        user: Any = handler.current_user
        if user is None:
            return None
        authorizer = handler.settings["authorizer"]
        if not await ensure_async(authorizer.is_authorized(handler, user, "execute", AUTH_RESOURCE)):
            raise web.HTTPError(403, f"greenroom: user {getattr(user, 'username', '')!r} may not call server functions")
        connection = uuid.uuid4().hex
        name = getattr(user, "username", "") or "user"
        return Caller("user", name, f"user:{connection}", owner=True, user=User(name))


async def authenticate(authenticators: Sequence[Authenticator], handler: web.RequestHandler) -> Caller:
    """The first caller an authenticator accepts; ``HTTPError(403)`` when none does."""
    for authenticator in authenticators:
        caller = await authenticator.authenticate(handler)
        if caller is not None:
            return caller
    raise web.HTTPError(403, "greenroom: missing or wrong credentials")
