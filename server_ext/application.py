"""The greenroom ExtensionApp: configuration and wiring into the Jupyter server."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import IOLoop
from traitlets import Bool, Float, Int, List, Unicode

from .handlers import CallSocketHandler, StatusHandler
from .host import Host
from .kernels import inject_credentials, local_url

__all__ = ["GreenroomApp"]


class GreenroomApp(ExtensionApp):
    """Runs server notebooks in worker processes and answers ``server.call`` from kernels."""

    name = "greenroom"
    description = "greenroom: server modules for Jupyter"
    load_other_extensions = True

    server_notebooks = List(
        Unicode(), default_value=["*.server.ipynb"],
        help="Glob patterns (matched against paths relative to the server root, and file names) of server notebooks.",
    ).tag(config=True)
    persistent = Bool(
        False, help="Keep workers alive between calls so globals may persist (default: every call starts fresh).",
    ).tag(config=True)
    call_timeout = Float(
        30.0, help="Seconds a call may run before it is stopped (per function: @server.callable(timeout=...)).",
    ).tag(config=True)
    max_message_size = Int(
        128 * 1024 * 1024, help="Largest message, in bytes, accepted from a client or a worker.",
    ).tag(config=True)
    max_calls_per_session = Int(
        64, help="Most calls one session (one client kernel or connection) may have in flight at once.",
    ).tag(config=True)
    prefork = Int(
        2, help="Fresh-state workers forked ahead of demand, so the fork is off the call path.",
    ).tag(config=True)
    workers = Int(2, help="Persistent mode: workers kept alive.").tag(config=True)
    max_workers = Int(
        8, help="Most workers alive at once, in both modes; more calls wait for a worker (within their timeout).",
    ).tag(config=True)
    worker_memory_limit = Int(
        0, help="Bytes each worker may allocate beyond what the loaded notebooks use (0: no limit).",
    ).tag(config=True)
    reload_poll_interval = Float(
        1.0, help="Seconds between scans for new, changed or deleted server notebooks.",
    ).tag(config=True)
    load_timeout = Float(
        120.0, help="Seconds the server notebooks may take to load before the load counts as failed.",
    ).tag(config=True)
    python = Unicode(
        "", help="Python interpreter of the runtime processes (default: the server's own).",
    ).tag(config=True)

    host: Host

    def initialize_settings(self) -> None:
        self.host = Host(self, root=self.serverapp.root_dir, log=self.log,
                         live_kernel_ids=self.serverapp.kernel_manager.list_kernel_ids)
        self.settings["greenroom_host"] = self.host
        inject_credentials(self.serverapp.kernel_manager, lambda: local_url(self.serverapp), self.host.credentials)
        IOLoop.current().add_callback(self._start_host)

    async def _start_host(self) -> None:
        # The port is final only once the server runs: write the runtime file now.
        self.host.credentials.write_runtime_file(local_url(self.serverapp))
        await self.host.start()

    def initialize_handlers(self) -> None:
        self.handlers.extend([
            (r"/greenroom/api/ws", CallSocketHandler),
            (r"/greenroom/api/status", StatusHandler),
        ])

    async def stop_extension(self) -> None:
        await self.host.stop()
