"""Fixtures: a real Jupyter server with greenroom, server notebooks, clients and kernels."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpserver import HTTPServer
from traitlets.config import Config

from helpers import CALC_SOURCE, Client, KernelRunner, write_notebook

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def greenroom_config() -> dict[str, Any]:
    """Extra GreenroomApp options; override in a module or with parametrize."""
    return {}


@pytest.fixture
def server_files(jp_root_dir: Any) -> Any:
    """The server notebooks every test starts with."""
    write_notebook(
        jp_root_dir / "calc.server.ipynb", CALC_SOURCE, ("raise RuntimeError('skipped cell ran')", ["greenroom:skip"])
    )
    return jp_root_dir


@pytest.fixture
def runtime() -> str:
    """Where calls run: ``local`` (the host's own processes) or ``dask`` (the session's Dask cluster).
    Parametrize with :data:`helpers.BOTH_RUNTIMES` to run a test on each."""
    return "local"


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real ``dask scheduler`` and two ``dask worker`` processes on loopback, shared by the tests that run
    on the Dask runtime (started by the first of them)."""
    pytest.importorskip("distributed", reason="the Dask runtime needs greenroom[dask]")
    from processes import start_dask_cluster, stop_dask_cluster

    cluster = start_dask_cluster(tmp_path_factory.mktemp("dask-shared"))
    yield cluster
    stop_dask_cluster(cluster)


@pytest.fixture
def runtime_config(runtime: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if runtime == "dask":
        return {"dask_scheduler": request.getfixturevalue("dask_cluster")["address"]}
    assert runtime == "local", runtime
    return {}


@pytest.fixture
def jp_server_config(server_files: Any, greenroom_config: dict[str, Any], runtime_config: dict[str, Any]) -> Config:
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"greenroom.server_ext": True}},
            "GreenroomApp": {"reload_poll_interval": 0.2, "prefork": 1, **runtime_config, **greenroom_config},
        }
    )


@pytest.fixture
def http_server(jp_asyncio_loop: Any, http_server_port: Any, jp_web_app: Any, jp_serverapp: Any) -> Iterator[Any]:
    """The HTTP server as ``jupyter server`` makes it: with the ServerApp's buffer and body sizes (pytest-jupyter's
    own uses tornado's 100 MB default, smaller than a greenroom message may be)."""

    async def listen() -> HTTPServer:
        server = HTTPServer(
            jp_web_app, max_body_size=jp_serverapp.max_body_size, max_buffer_size=jp_serverapp.max_buffer_size
        )
        server.add_socket(http_server_port[0])
        return server

    server = jp_asyncio_loop.run_until_complete(listen())
    yield server
    server.stop()
    with contextlib.suppress(asyncio.TimeoutError):
        jp_asyncio_loop.run_until_complete(server.close_all_connections())
    http_server_port[0].close()


@pytest.fixture
def host(jp_serverapp: Any, http_server_client: Any, jp_asyncio_loop: Any) -> Any:
    """The running host, once its first generation has loaded."""
    running = jp_serverapp.web_app.settings["greenroom_host"]
    jp_asyncio_loop.run_until_complete(asyncio.wait_for(running.reloader.ready.wait(), 60))
    return running


@pytest.fixture
def base_url(jp_serverapp: Any, jp_http_port: int, jp_base_url: str) -> str:
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def client(host: Any, base_url: str, jp_serverapp: Any) -> Iterator[Client]:
    """A client authenticated with the Jupyter server's token (like ``greenroom.connect``)."""
    connection = Client(base_url, {"Authorization": f"token {jp_serverapp.identity_provider.token}"})
    yield connection
    connection.close()


@pytest.fixture
def start_kernel(host: Any, jp_serverapp: Any, jp_asyncio_loop: Any) -> Iterator[Any]:
    """Factory: start real kernels through the server's kernel manager (shut down afterwards)."""
    manager = jp_serverapp.kernel_manager
    started: list[tuple[str, Any]] = []

    async def start(path: str = "") -> KernelRunner:
        for attempt in range(3):
            kernel_id = await manager.start_kernel(path=path)
            kernel_client = manager.get_kernel(kernel_id).client()
            kernel_client.start_channels()
            try:
                await kernel_client.wait_for_ready(timeout=60)
            except RuntimeError:
                # A kernel can lose a race for its random ports with other processes on a busy machine.
                kernel_client.stop_channels()
                await manager.shutdown_kernel(kernel_id, now=True)
                if attempt == 2:
                    raise
                continue
            started.append((kernel_id, kernel_client))
            return KernelRunner(kernel_client, kernel_id)
        raise AssertionError("unreachable")

    yield start
    for kernel_id, kernel_client in started:
        kernel_client.stop_channels()
        if kernel_id in manager.list_kernel_ids():  # a test may have shut it down itself
            jp_asyncio_loop.run_until_complete(manager.shutdown_kernel(kernel_id, now=True))


@pytest.fixture(autouse=True)
def _isolated_runtime_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's runtime files in its own folder."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    os.makedirs(tmp_path / "runtime", exist_ok=True)
