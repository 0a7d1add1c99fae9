"""``greenroom host DIR``: the standalone host, with no Jupyter server and no kernels of its own.

A bare tornado application around the one :class:`~greenroom.server_ext.host.Host` (through
:class:`~greenroom.server_ext.embedding.HostEmbedding`, like the other embeddings).  Every
``GreenroomApp`` option is accepted on the command line (``--GreenroomApp.persistent=True``).  Callers
present the host's token (printed at start, and in its 0600 runtime file): ``GREENROOM_URL`` with
``GREENROOM_TOKEN``, or ``greenroom.connect(url, token=...)``.  SIGTERM and SIGINT stop the runtime
processes and remove the runtime file and the socket folder before the process exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.web import Application
from traitlets import Float, Int, Unicode
from traitlets.config import Application as ConfigApplication

from .application import GreenroomApp
from .embedding import HostEmbedding
from .host import Host
from .hub import HubService, HubUsers, hub_service
from .identity import Authenticator, HostToken, KernelTokens
from .kernels import reachable_url
from .runtime.channel import die_with_parent

__all__ = ["GreenroomHostApp", "launch"]

#: tornado's read buffer unless told otherwise (bytes); a WebSocket frame must fit in it whole.
DEFAULT_READ_BUFFER = 100 * 1024 * 1024
USAGE = "usage: greenroom host DIR [--port N] [--ip ADDR] [--GreenroomApp.<option>=<value> ...]"


class GreenroomHostApp(ConfigApplication):
    """The standalone host's command line: where to listen, and every ``GreenroomApp`` option."""

    name = "greenroom-host"
    description = "greenroom host DIR: serve the server notebooks under DIR to callers that present its token"
    classes = [GreenroomApp]  # noqa: RUF012 - traitlets declares these as plain class attributes
    aliases = {"port": "GreenroomHostApp.port", "ip": "GreenroomHostApp.ip"}  # noqa: RUF012

    port = Int(8765, help="The port to listen on (no other is tried).").tag(config=True)
    ip = Unicode("127.0.0.1", help="The address to listen on.").tag(config=True)
    hub_timeout = Float(
        10.0,
        help="Under JupyterHub: how long (seconds) to wait for the hub to check a caller's token before refusing "
        "the connection with 503 (tokens the hub vouched for in the last hour are still accepted meanwhile).",
    ).tag(config=True)
    root = Unicode("", help="The folder whose server notebooks the host serves (the command's argument).")
    hub: HubService | None = None  # set when this process runs as a JupyterHub service
    prefix = "/"

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        if len(self.extra_args) != 1:
            raise SystemExit(USAGE)
        self.root = os.path.abspath(self.extra_args[0])
        if not os.path.isdir(self.root):
            raise SystemExit(f"greenroom host: {self.extra_args[0]!r} is not a folder")
        self.hub = hub_service()
        if self.hub is not None:  # a JupyterHub service listens where the hub says, under its prefix
            self.ip, self.port, self.prefix = self.hub.ip, self.hub.port, self.hub.prefix
            if _parent_is_jupyterhub():  # hub-managed: stop (cleanly) when the hub ends, however it ends
                die_with_parent(signal.SIGTERM)
                if os.getppid() == 1:
                    raise SystemExit("greenroom host: the hub that started this service has ended")

    def url(self) -> str:
        return reachable_url("http", self.ip, self.port, self.prefix)

    def embedding(self) -> HostEmbedding:
        options = GreenroomApp(config=self.config, log=self.log)
        if "call_log" not in self.config.GreenroomApp:  # on by default for the standalone host
            options.call_log = True
        hub, hub_timeout = self.hub, self.hub_timeout
        if not hub_timeout > 0:
            raise ValueError(f"GreenroomHostApp.hub_timeout must be a positive number of seconds, not {hub_timeout!r}")

        def authenticators(host: Host) -> list[Authenticator]:
            # No kernels of its own: a kernel token can never be minted here.  Under a hub, its users.
            found: list[Authenticator] = [KernelTokens(host.credentials, lambda _: False, kernels_are_owners=False)]
            if hub is not None:
                found.append(HubUsers(hub, timeout=hub_timeout))
            return [*found, HostToken(host.credentials)]

        return HostEmbedding(options.host_config(), self.root, self.log, self.url, authenticators)

    def application(self, embedding: HostEmbedding) -> Application:
        settings = {"websocket_ping_interval": 30, **embedding.settings()}
        return Application(embedding.handlers(self.prefix, jupyter=False), **settings)

    def start(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        embedding = self.embedding()
        buffer_size = max(DEFAULT_READ_BUFFER, embedding.host.config.max_message_size + (1 << 20))
        server = HTTPServer(self.application(embedding), max_buffer_size=buffer_size)
        server.listen(self.port, self.ip)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stopped.set)
        embedding.start_soon()
        if self.hub is not None:  # tokens are never logged under a hub: the owner's is in the runtime file
            sys.stdout.write(
                f"greenroom host serving {self.root} as JupyterHub service {self.hub.name!r} at {self.url()}; "
                f"hub users whose token grants access:services!service={self.hub.name} may call\n"
            )
        else:
            token = embedding.host.credentials.token_for("local")
            sys.stdout.write(
                f"greenroom host serving {self.root}\n  GREENROOM_URL={self.url()}\n  GREENROOM_TOKEN={token}\n"
            )
        sys.stdout.flush()
        try:
            await stopped.wait()
        finally:
            self.log.info("stopping")
            server.stop()
            await embedding.stop()


def _parent_is_jupyterhub() -> bool:
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
            return b"jupyterhub" in handle.read()
    except OSError:
        return False


def launch(args: list[str]) -> None:
    """Run ``greenroom host`` with ``args`` (the arguments after ``host``)."""
    app = GreenroomHostApp()
    app.initialize(args)
    try:
        app.start()
    except ValueError as error:  # a bad option value (HostConfig names it)
        raise SystemExit(f"greenroom host: {error}") from None
