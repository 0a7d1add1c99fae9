"""The greenroom ExtensionApp: the options (traitlets) and the wiring into a Jupyter server.

Every option is a trait with help text; :meth:`GreenroomApp.host_config` freezes them into the
:class:`~greenroom.server_ext.config.HostConfig` the host is built from.  Inside a Jupyter server,
callers are the server's kernels (their greenroom tokens), processes with the runtime file's
token, and the server's own users when its Authorizer lets them ``execute`` on ``greenroom``.
"""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, List, Unicode

from .config import HostConfig
from .embedding import HostEmbedding
from .host import Host
from .identity import Authenticator, JupyterUsers, KernelTokens, server_user
from .kernels import local_url

__all__ = ["GreenroomApp"]


class GreenroomApp(ExtensionApp):
    """Runs server notebooks in worker processes and answers ``server.call`` from kernels."""

    name = "greenroom"
    description = "greenroom: server modules for Jupyter"
    load_other_extensions = True

    server_notebooks = List(
        Unicode(),
        default_value=["*.server.ipynb"],
        help="Glob patterns (matched against paths relative to the server root, and file names) of server notebooks.",
    ).tag(config=True)
    persistent = Bool(
        False,
        help="Keep workers alive between calls so globals may persist (default: every call starts fresh).",
    ).tag(config=True)
    call_timeout = Float(
        30.0,
        help="Seconds a call may run before it is stopped (per function: @server.callable(timeout=...)).",
    ).tag(config=True)
    max_message_size = Int(
        128 * 1024 * 1024,
        help="Largest message, in bytes, accepted from a client or a worker (Media travel as binary frames in it).",
    ).tag(config=True)
    max_payload_size = Int(
        16 * 1024 * 1024,
        help="Largest JSON part of a call (its arguments without Media), in bytes; larger calls are refused "
        "before they take a worker. Send large data as Media.",
    ).tag(config=True)
    max_values = Int(
        1_000_000,
        help="Most values (list items, dict entries, containers) a worker decodes from one call's arguments or "
        "session; more is refused with SerializationError before decoding.",
    ).tag(config=True)
    max_session_bytes = Int(
        256 * 1024 * 1024,
        help="Most bytes of arguments one session may have in flight (running or waiting for a worker).",
    ).tag(config=True)
    max_workers_per_session = Int(
        0,
        help="Most workers the calls of one session may hold at once, so that others never wait behind it "
        "(0: half of max_workers, at least 1).",
    ).tag(config=True)
    max_calls_per_session = Int(
        64,
        help="Most calls one session (one client kernel or connection) may have in flight at once.",
    ).tag(config=True)
    prefork = Int(
        2,
        help="Fresh-state workers forked ahead of demand, so the fork is off the call path.",
    ).tag(config=True)
    workers = Int(2, help="Persistent mode: workers kept alive.").tag(config=True)
    max_workers = Int(
        8,
        help="Most workers alive at once, in both modes; more calls wait for a worker (within their timeout).",
    ).tag(config=True)
    worker_memory_limit = Int(
        -1,
        help="Bytes of address space each worker may allocate beyond what the loaded notebooks use "
        "(-1: twice the template's size, at least 1 GiB; 0: no limit).",
    ).tag(config=True)
    reload_poll_interval = Float(
        1.0,
        help="Seconds between scans for new, changed or deleted server notebooks.",
    ).tag(config=True)
    load_timeout = Float(
        120.0,
        help="Seconds the server notebooks may take to load before the load counts as failed.",
    ).tag(config=True)
    python = Unicode(
        "",
        help="Python interpreter of the runtime processes (default: the server's own).",
    ).tag(config=True)
    dask_scheduler = Unicode(
        "",
        help="Address of a Dask distributed scheduler (tcp:// or tls://host:8786): calls and background tasks run on "
        "its workers, one greenroom "
        "runtime per worker, with this host in front (empty: on this machine). Needs greenroom[dask].",
    ).tag(config=True)
    max_tasks = Int(
        4,
        help="Most background tasks running at once; more wait, in the order they were launched.",
    ).tag(config=True)
    task_timeout = Float(
        0.0,
        help="Seconds a background task may run before it is killed (0: no limit).",
    ).tag(config=True)
    task_record_days = Float(
        7.0,
        help="Days the records of ended background tasks (status, last state, result or error) are kept "
        "under data_dir.",
    ).tag(config=True)
    call_log = Bool(
        False,
        help="Record every call, refused ones included, in SQLite under data_dir: UTC time, user, session, "
        "function, duration, outcome; never arguments, results or tokens (on by default for greenroom host).",
    ).tag(config=True)
    data_dir = Unicode(
        "",
        help="Folder of the host's own data, such as the call log (default: <root>/.greenroom/, never served).",
    ).tag(config=True)

    embedding: HostEmbedding

    def host_config(self) -> HostConfig:
        """The options as the host's frozen configuration (:class:`ValueError` for a bad value)."""
        return HostConfig.from_options(self)

    @property
    def host(self) -> Host:
        return self.embedding.host

    def initialize_settings(self) -> None:
        serverapp = self.serverapp
        if serverapp is None:
            raise RuntimeError("the greenroom extension runs inside a Jupyter server")

        def authenticators(host: Host) -> list[Authenticator]:
            kernels = serverapp.kernel_manager
            owned = KernelTokens(
                host.credentials, kernels.__contains__, kernels_are_owners=True, kernel_user=server_user()
            )
            return [owned, JupyterUsers()]

        elsewhere = os.environ.get("GREENROOM_URL", "")
        if elsewhere:  # e.g. a hub user's server, whose admin pointed every kernel at the hub's greenroom service
            self.log.info(
                "GREENROOM_URL names a greenroom host (%s): this server's kernels are left pointed at it; "
                "this server's own host serves only processes that use its runtime file",
                elsewhere,
            )
        self.embedding = HostEmbedding(
            self.host_config(),
            serverapp.root_dir,
            self.log,
            lambda: local_url(serverapp),
            authenticators,
            kernel_manager=serverapp.kernel_manager,
            kernels_call_this_host=not elsewhere,
        )
        self.settings.update(self.embedding.settings())
        if serverapp.max_buffer_size < self.max_message_size:
            self.log.warning(
                "GreenroomApp.max_message_size (%d bytes) is larger than ServerApp.max_buffer_size (%d bytes): "
                "larger messages will close their connection; raise ServerApp.max_buffer_size",
                self.max_message_size,
                serverapp.max_buffer_size,
            )
        self.embedding.start_soon()

    def initialize_handlers(self) -> None:
        # ExtensionApp puts its handlers under the server's base_url.
        self.handlers.extend(self.embedding.handlers())

    async def stop_extension(self) -> None:
        await self.embedding.stop()
