"""greenroom's side of the suite: ``jupyter server`` subprocesses, their kernels, and client processes.

A :class:`JupyterServer` runs on a free loopback port with its own runtime and config
folders, with greenroom enabled (persistent or fresh state) or disabled (the baseline).
The server notebook imports pandas, a realistic template for the runtime to fork from.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import nbformat
from common import (
    CLIENT_READY_TIMEOUT,
    BenchmarkError,
    end_process,
    free_port,
    progress,
    tail,
    wait_until_ready,
)
from jupyter_client import BlockingKernelClient
from procstat import cpu_seconds, tree_cpu_seconds
from task_bench import TASK_FUNCTIONS

HERE = Path(__file__).resolve().parent
CLIENT_SCRIPT = HERE / "client.py"
TOKEN_VARIABLE = "GREENROOM_BENCH_TOKEN"  # read by client.py

SERVER_READY_TIMEOUT = 120.0
KERNEL_READY_TIMEOUT = 60.0
HTTP_TIMEOUT = 10.0
RSS_SAMPLE_INTERVAL = 0.5

SERVER_NOTEBOOK = (
    """\
import pandas  # a realistic template: the runtime forks workers from a process holding pandas
from greenroom import server

@server.callable
def add(a, b):
    return a + b

@server.callable
def echo(x):
    return x

@server.callable
def burn(ms):
    import time
    end = time.perf_counter() + ms / 1000
    spins = 0
    while time.perf_counter() < end:
        spins += 1
    return spins
"""
    + TASK_FUNCTIONS
)


class JupyterServer:
    """A ``jupyter server`` subprocess on a free loopback port, with or without greenroom."""

    def __init__(self, workdir: Path, name: str, greenroom: dict[str, Any] | None) -> None:
        self.name = name
        self.greenroom = greenroom
        self.directory = workdir / name
        self.root = self.directory / "root"
        self.runtime_dir = self.directory / "runtime"
        self.log_path = self.directory / "server.log"
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None
        self.kernels: list[Kernel] = []

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchmarkError(f"{self.name}: the server is not running")
        return self.process.pid

    def _write_files(self) -> Path:
        for directory in (self.root, self.runtime_dir, self.directory / "config"):
            directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "ServerApp": {"jpserver_extensions": {"greenroom.server_ext": self.greenroom is not None}}
        }
        if self.greenroom is not None:
            config["GreenroomApp"] = self.greenroom
            notebook = nbformat.v4.new_notebook()
            notebook.cells.append(nbformat.v4.new_code_cell(SERVER_NOTEBOOK))
            nbformat.write(notebook, str(self.root / "bench.server.ipynb"))
        config_file = self.directory / "jupyter_server_config.json"
        config_file.write_text(json.dumps(config, indent=1), encoding="utf-8")
        return config_file

    def start(self) -> None:
        config_file = self._write_files()
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--config={config_file}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--allow-root",
            "--no-browser",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
        ]
        env = {key: value for key, value in os.environ.items() if not key.startswith("GREENROOM_")}
        # Runtime files (kernel-*.json, greenroom-*.json) in our own folder; no user config.
        env.update(JUPYTER_RUNTIME_DIR=str(self.runtime_dir), JUPYTER_CONFIG_DIR=str(self.directory / "config"))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        progress(f"{self.name}: jupyter server pid {self.process.pid} on port {self.port}")
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        path = "greenroom/api/status" if self.greenroom is not None else "api/status"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BenchmarkError(
                    f"{self.name}: jupyter server exited with code {self.process.returncode}\n{self.logtail()}"
                )
            try:
                status = self.api("GET", path, timeout=2.0)
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.2)
                continue
            if self.greenroom is None:
                return
            rejected = status.get("rejected_reload_errors") or (status.get("serving") or {}).get("load_errors")
            if rejected:
                raise BenchmarkError(
                    f"{self.name}: the server notebook did not load (is pandas installed? pip install '.[bench]'): "
                    f"{json.dumps(rejected)}"
                )
            if status.get("serving"):
                return
            time.sleep(0.2)
        raise BenchmarkError(f"{self.name}: not serving after {SERVER_READY_TIMEOUT:.0f} s\n{self.logtail()}")

    def api(self, method: str, path: str, body: Any = None, timeout: float = HTTP_TIMEOUT) -> Any:
        """A JSON request to the server, authenticated with its token."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        with opener.open(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def calls_done(self) -> int:
        serving = self.api("GET", "greenroom/api/status").get("serving") or {}
        return int(serving.get("calls_done", 0))

    def runtime_file(self) -> Path:
        """The runtime file greenroom wrote for this server (it names the local call socket)."""
        found = sorted(self.runtime_dir.glob("greenroom-*.json"))
        if not found:
            raise BenchmarkError(f"{self.name}: greenroom wrote no runtime file")
        return found[0]

    def template_pid(self) -> int | None:
        serving = self.api("GET", "greenroom/api/status").get("serving") or {}
        return serving.get("pid")

    def start_kernel(self) -> Kernel:
        kernel_id = self.api("POST", "api/kernels", {"name": "python3"}, timeout=KERNEL_READY_TIMEOUT)["id"]
        kernel = Kernel(self, kernel_id, self.runtime_dir / f"kernel-{kernel_id}.json")
        self.kernels.append(kernel)
        kernel.connect()
        return kernel

    def logtail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines, titled=True)

    def stop(self) -> None:
        for kernel in self.kernels:
            kernel.shutdown()
        self.kernels.clear()
        if self.process is not None:
            end_process(self.process)


class Kernel:
    """A kernel the server launched, reached through its connection file."""

    def __init__(self, server: JupyterServer, kernel_id: str, connection_file: Path) -> None:
        self.server = server
        self.kernel_id = kernel_id
        self.connection_file = connection_file
        self.client: BlockingKernelClient | None = None

    def connect(self) -> None:
        deadline = time.monotonic() + KERNEL_READY_TIMEOUT
        while not self.connection_file.exists():
            if time.monotonic() > deadline:
                raise BenchmarkError(f"kernel {self.kernel_id}: no connection file {self.connection_file}")
            time.sleep(0.1)
        client = BlockingKernelClient(connection_file=str(self.connection_file))
        client.load_connection_file()
        client.start_channels()
        self.client = client
        try:
            client.wait_for_ready(timeout=KERNEL_READY_TIMEOUT)
        except RuntimeError as error:
            raise BenchmarkError(f"kernel {self.kernel_id} did not become ready: {error}") from None

    def run(self, code: str, timeout: float) -> str:
        """Execute ``code``; its stdout, or :class:`BenchmarkError` with the kernel's traceback."""
        assert self.client is not None
        output: list[str] = []
        errors: list[str] = []

        def hook(message: dict[str, Any]) -> None:
            content = message["content"]
            if message["msg_type"] == "stream" and content.get("name") == "stdout":
                output.append(content["text"])
            elif message["msg_type"] == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")

        try:
            reply = self.client.execute_interactive(
                code, output_hook=hook, timeout=timeout, allow_stdin=False, store_history=False
            )
        except TimeoutError:
            raise BenchmarkError(f"kernel {self.kernel_id}: code did not finish within {timeout:.0f} s") from None
        if errors or reply["content"]["status"] != "ok":
            raise BenchmarkError(f"kernel {self.kernel_id} raised: {'; '.join(errors) or reply['content']}")
        return "".join(output)

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        try:
            self.server.api("DELETE", f"api/kernels/{self.kernel_id}")
        except (urllib.error.URLError, OSError):
            pass  # the server shuts its kernels down when it stops anyway


@contextmanager
def running(server: JupyterServer) -> Iterator[JupyterServer]:
    try:
        server.start()
        yield server
    except BenchmarkError:
        raise
    except Exception as error:
        raise BenchmarkError(f"{server.name}: {type(error).__name__}: {error}\n{server.logtail()}") from error
    finally:
        server.stop()


def run_clients(
    server: JupyterServer,
    count: int,
    arguments: Sequence[str],
    timeout: float,
    on_tick: Callable[[], None] | None = None,
    tokens: Sequence[str] | None = None,
    local: bool = False,
) -> list[dict[str, Any]]:
    """Start ``count`` client.py processes, let them warm up, start them together, collect their results.
    ``tokens``: one per client (a hub's students), else the server's own token for all."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GREENROOM_", "JUPYTERHUB_"))}
    processes: list[subprocess.Popen[bytes]] = []
    outputs = [server.directory / f"client-{secrets.token_hex(4)}.json" for _ in range(count)]
    logs = [output.with_suffix(".log") for output in outputs]
    client_tokens = list(tokens) if tokens is not None else [server.token] * count
    local_file = ["--runtime-file", str(server.runtime_file())] if local else []
    try:
        for output, log_path, token in zip(outputs, logs, client_tokens, strict=True):
            env[TOKEN_VARIABLE] = token
            with open(log_path, "wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, str(CLIENT_SCRIPT), server.url, "--out", str(output), *local_file, *arguments],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        env=env,
                    )
                )
        wait_until_ready(processes, logs, time.monotonic() + CLIENT_READY_TIMEOUT)
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
        deadline = time.monotonic() + timeout
        while any(process.poll() is None for process in processes):
            if time.monotonic() > deadline:
                raise BenchmarkError(f"clients did not finish within {timeout:.0f} s")
            if on_tick is not None:
                on_tick()
            time.sleep(RSS_SAMPLE_INTERVAL if on_tick is not None else 0.05)
        results = []
        for process, output, log_path in zip(processes, outputs, logs):
            if process.returncode != 0 or not output.exists():
                raise BenchmarkError(f"a client exited with code {process.returncode}:\n{tail(log_path)}")
            results.append(json.loads(output.read_text(encoding="utf-8")))
        return results
    finally:
        for process in processes:
            end_process(process, grace=5.0)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()


class CpuMeter:
    """CPU per call spent by the host (the Jupyter server process) and the runtime during a ``with`` block.

    Resolution is one clock tick (10 ms), so it needs a few hundred calls to mean something.
    """

    def __init__(self, server: JupyterServer) -> None:
        self.server = server
        self.template = server.template_pid()
        self.start: tuple[int, float, float] = (0, 0.0, 0.0)
        self.end: tuple[int, float, float] = (0, 0.0, 0.0)

    def _snapshot(self) -> tuple[int, float, float]:
        runtime = tree_cpu_seconds(self.template) if self.template else 0.0
        return self.server.calls_done(), cpu_seconds(self.server.pid)[0], runtime

    def __enter__(self) -> Self:
        self.start = self._snapshot()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.end = self._snapshot()

    def note(self) -> str:
        calls = self.end[0] - self.start[0]
        if calls <= 0:
            return "no calls counted"
        host, runtime = ((self.end[i] - self.start[i]) / calls * 1e3 for i in (1, 2))
        return f"CPU/call: host {host:.2f} ms, runtime {runtime:.2f} ms"
