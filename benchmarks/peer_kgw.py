"""Peer: Jupyter Kernel Gateway in notebook-http mode, serving ``POST /add`` from a seed notebook.

The gateway runs the seed notebook in a kernel it starts, and turns the cell commented
``# POST /add`` into an endpoint: each request runs that cell in the kernel with the
request in ``REQUEST`` (a JSON string) and answers with what the cell prints.  It has
one kernel by default (``KernelGatewayApp.prespawn_count`` unset), which every request
goes through.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from common import BenchmarkError, clean_environment, end_process, free_port, progress, tail

READY_TIMEOUT = 90.0
STOP_GRACE = 10.0

SETUP_CELL = "import json\nimport pandas  # the same template as greenroom's server notebook"
ADD_CELL = "# POST /add\nbody = json.loads(REQUEST)['body']\nprint(body['a'] + body['b'])"


def available() -> str | None:
    """Why this peer cannot run here, or None."""
    if importlib.util.find_spec("kernel_gateway") is None:
        return "jupyter_kernel_gateway is not installed (pip install '.[bench]')"
    return None


class KernelGateway:
    """A ``jupyter kernelgateway`` subprocess on a free loopback port, in a session of its own."""

    def __init__(self, workdir: Path) -> None:
        self.directory = workdir / "kernel-gateway"
        self.log_path = self.directory / "gateway.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def _write_notebook(self) -> Path:
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        notebook.cells = [nbformat.v4.new_code_cell(SETUP_CELL), nbformat.v4.new_code_cell(ADD_CELL)]
        path = self.directory / "add.ipynb"
        nbformat.write(notebook, str(path))
        return path

    def start(self) -> None:
        for name in ("runtime", "config", "data"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.api=kernel_gateway.notebook_http",
            f"--KernelGatewayApp.seed_uri={self._write_notebook()}",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={self.port}",
            "--KernelGatewayApp.port_retries=0",
        ]
        env = clean_environment()
        env.update(
            JUPYTER_RUNTIME_DIR=str(self.directory / "runtime"),
            JUPYTER_CONFIG_DIR=str(self.directory / "config"),
            JUPYTER_DATA_DIR=str(self.directory / "data"),
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.directory,
                start_new_session=True,
            )
        progress(f"kernel gateway: pid {self.process.pid} on port {self.port}")
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until ``POST /add`` answers 3 (the seed notebook has run in the kernel)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BenchmarkError(
                    f"the kernel gateway exited with code {self.process.returncode}\n{tail(self.log_path)}"
                )
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5.0)
            try:
                connection.request("POST", "/add", json.dumps({"a": 1, "b": 2}), {"Content-Type": "application/json"})
                response = connection.getresponse()
                if response.status == 200 and response.read().strip() == b"3":
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.2)
        raise BenchmarkError(
            f"the kernel gateway did not answer POST /add within {READY_TIMEOUT:.0f} s\n{tail(self.log_path)}"
        )

    def stop(self) -> None:
        """End the gateway, then whatever is left of its process group (its kernel)."""
        if self.process is not None:
            end_process(self.process, grace=STOP_GRACE, group=True)
