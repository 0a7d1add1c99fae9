"""``greenroom serve APP_DIR``: publish an app as a Voilà dashboard with the host embedded.

``APP_DIR/app.ipynb`` is shown at ``/`` when it exists, else a listing of the
client notebooks.  Server notebooks are loaded from APP_DIR by the embedded
host and are never listed, rendered or served by any URL.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from typing import Any

import tornado.web
from tornado.routing import Rule
from tornado.web import ErrorHandler
from voila.app import Voila

from .application import GreenroomApp
from .embedding import HostEmbedding
from .guard import SERVER_SUFFIX, ServerNotebookMatcher
from .host import Host
from .identity import Authenticator, KernelTokens
from .kernels import reachable_url

__all__ = ["GreenroomVoila", "launch"]

#: tornado's read buffer unless told otherwise (bytes).
DEFAULT_READ_BUFFER = 100 * 1024 * 1024


class GreenroomVoila(Voila):
    """Voilà with the greenroom host inside; server notebooks stay on the host."""

    description = "greenroom serve: publish a greenroom app as a Voilà dashboard"

    def init_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = super().init_settings()
        greenroom_app = GreenroomApp(config=self.config, log=self.log)
        hidden = ["*" + SERVER_SUFFIX, *(pattern.rsplit("/", 1)[-1] for pattern in greenroom_app.server_notebooks)]
        self.contents_manager.hide_globs = [*self.contents_manager.hide_globs, *hidden]

        def authenticators(host: Host) -> list[Authenticator]:
            # the app's own kernels only (visitors run no code), and they are the visitors', not the owner's
            return [KernelTokens(host.credentials, self.kernel_manager.__contains__, kernels_are_owners=False)]

        self.greenroom = HostEmbedding(
            greenroom_app.host_config(),
            self.root_dir,
            self.log,
            self.local_url,
            authenticators,
            kernel_manager=self.kernel_manager,
        )
        settings.update(self.greenroom.settings(), greenroom=greenroom_app)
        self.greenroom.start_soon()
        return settings

    @property
    def greenroom_host(self) -> Host:
        return self.greenroom.host

    def local_url(self) -> str:
        return reachable_url("http", self.ip, self.port, self.base_url)

    def init_handlers(self) -> list[Any]:
        host = self.greenroom_host
        own = [
            Rule(
                ServerNotebookMatcher(host.root, host.config.server_notebooks, lambda: host.reloader.notebooks),
                ErrorHandler,
                {"status_code": 404},
            ),
            *self.greenroom.handlers(self.server_url, status=False, name="greenroom"),
        ]
        theirs: list[Any] = super().init_handlers()
        return own + theirs

    def listen(self) -> None:
        # Voilà's server keeps tornado's 100 MB read buffer; a WebSocket frame must fit in it whole.
        buffer_size = max(DEFAULT_READ_BUFFER, self.greenroom_host.config.max_message_size + (1 << 20))
        self.app.listen = functools.partial(tornado.web.Application.listen, self.app, max_buffer_size=buffer_size)
        super().listen()

    def _handle_signal_stop(self, sig: int, frame: Any) -> None:
        """SIGTERM: stop the host (its runtime processes, runtime file, socket) on the loop, then the loop."""
        self.greenroom_host.log.info("signal %s, stopping", sig)
        loop = self.ioloop.asyncio_loop
        loop.call_soon_threadsafe(lambda: loop.create_task(self._shutdown()))

    async def _shutdown(self) -> None:
        try:
            await asyncio.wait_for(self.greenroom_host.stop(), 15)
        finally:
            self.ioloop.stop()

    def start(self) -> None:
        try:
            super().start()
        finally:
            if not self.greenroom_host.stopping:  # Ctrl-C: the loop is stopped but can run the cleanup
                self.ioloop.run_sync(self.greenroom_host.stop, timeout=15)


def voila_arguments(args: list[str]) -> list[str]:
    """Translate ``APP_DIR [--port N] [--ip ADDR] [--no-browser] ...`` into Voilà's command line."""
    if not args or args[0].startswith("-"):
        raise SystemExit("usage: greenroom serve APP_DIR [--port N] [--ip ADDR] [--no-browser] [Voila options]")
    app_dir, rest = os.path.abspath(args[0]), args[1:]
    if not os.path.isdir(app_dir):
        raise SystemExit(f"greenroom serve: {args[0]!r} is not a folder")
    app_notebook = os.path.join(app_dir, "app.ipynb")
    translated = [app_notebook if os.path.isfile(app_notebook) else app_dir]
    if not os.path.isfile(app_notebook):
        translated.append(f"--Voila.root_dir={app_dir}")
    index = 0
    while index < len(rest):
        option = rest[index]
        for name, trait in (("--port", "--Voila.port"), ("--ip", "--Voila.ip")):
            if option == name and index + 1 < len(rest):
                translated.append(f"{trait}={rest[index + 1]}")
                index += 2
                break
            if option.startswith(name + "="):
                translated.append(trait + option[len(name) :])
                index += 1
                break
        else:
            translated.append(option)
            index += 1
    if not any(a.startswith("--Voila.port_retries") for a in translated):
        translated.append("--Voila.port_retries=0")
    return translated


def launch(args: list[str]) -> None:
    """Run ``greenroom serve``."""
    GreenroomVoila.launch_instance(voila_arguments(args))
    sys.exit(0)
