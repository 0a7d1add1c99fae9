"""The JupyterHub rows: a student's ``add(1, 2)`` through the hub's proxy, and 20 students at once.

A real JupyterHub (dummy authentication, the Node ``configurable-http-proxy``) runs ``greenroom host`` as a
hub-managed service with the benchmark's server notebook.  Each student is a ``client.py`` process holding
that student's own hub token (minted through the hub's API with ``access:services!service=greenroom``),
which is what a student's kernel holds: the call path, proxy -> service -> worker, is the one a kernel uses.
DESIGN.md's targets: p50 <= 1.5 ms with the token cached, >= 1,500 calls/s from 20 students.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
from common import BenchmarkError, Plan, Report, Row, Sample, end_process, free_port, progress, tail
from servers import SERVER_NOTEBOOK, run_clients, running

__all__ = ["bench_hub"]

HUB_READY_TIMEOUT = 90.0
STUDENTS = 20


class JupyterHubService:
    """A JupyterHub subprocess with greenroom as its service; shaped like ``servers.JupyterServer`` for
    ``running`` and ``run_clients`` (``url`` is the service's URL through the proxy)."""

    def __init__(self, workdir: Path, persistent: bool) -> None:
        self.name = "hub"
        self.directory = workdir / "hub"
        self.root = self.directory / "service"
        self.log_path = self.directory / "hub.log"
        self.ports = {name: free_port() for name in ("hub", "api", "proxy", "service")}
        self.admin_token = secrets.token_hex(16)
        self.hub_url = f"http://127.0.0.1:{self.ports['hub']}"
        self.url = f"{self.hub_url}/services/greenroom/"
        self.token = ""  # each client is given its own student's token
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchmarkError("the hub is not running")
        return self.process.pid

    def _config(self) -> str:
        binaries = os.path.dirname(sys.executable)
        service = [
            os.path.join(binaries, "greenroom"),
            "host",
            str(self.root),
            "--GreenroomApp.max_calls_per_session=256",
        ]
        if self.persistent:
            service.append("--GreenroomApp.persistent=True")
        return textwrap.dedent(
            f"""
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {self.ports["hub"]}
            c.JupyterHub.hub_port = {self.ports["api"]}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.ports["proxy"]}"
            c.ConfigurableHTTPProxy.command = [{shutil.which("configurable-http-proxy")!r}]
            c.JupyterHub.authenticator_class = "dummy"
            c.JupyterHub.services = [
                {{"name": "greenroom", "url": "http://127.0.0.1:{self.ports["service"]}", "command": {service!r}}},
                {{"name": "bench", "api_token": {self.admin_token!r}}},
            ]
            c.JupyterHub.load_roles = [
                {{"name": "user", "scopes": ["self", "access:services!service=greenroom"]}},
                {{"name": "bench", "services": ["bench"], "scopes": ["admin:users", "tokens"]}},
            ]
            """
        )

    def start(self) -> None:
        if shutil.which("configurable-http-proxy") is None:
            raise BenchmarkError("configurable-http-proxy is missing: `make test` installs it")
        self.root.mkdir(parents=True)
        notebook = nbformat.v4.new_notebook()
        notebook.cells.append(nbformat.v4.new_code_cell(SERVER_NOTEBOOK))
        nbformat.write(notebook, str(self.root / "bench.server.ipynb"))
        (self.directory / "jupyterhub_config.py").write_text(self._config(), encoding="utf-8")
        env = {key: value for key, value in os.environ.items() if not key.startswith(("GREENROOM_", "JUPYTERHUB_"))}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "jupyterhub"), "-f", "jupyterhub_config.py"],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        progress(f"hub: jupyterhub pid {self.process.pid} on port {self.ports['hub']}")
        deadline = time.monotonic() + HUB_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchmarkError(f"the hub exited with code {self.process.returncode}\n{self.logtail()}")
            hub_ready = self._answers(f"{self.hub_url}/hub/api/", errors_count=False)
            if hub_ready and self._answers(f"http://127.0.0.1:{self.ports['service']}/", errors_count=True):
                return  # the hub's API (through its proxy) and the service both answer
            time.sleep(0.2)
        raise BenchmarkError(f"the greenroom service did not start within {HUB_READY_TIMEOUT:.0f} s\n{self.logtail()}")

    @staticmethod
    def _answers(url: str, errors_count: bool) -> bool:
        """True when ``url`` answers: with success, or (``errors_count``) with any status below 500."""
        try:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2).close()
        except urllib.error.HTTPError as error:
            return errors_count and error.code < 500  # the service answers 404 for its root
        except OSError:
            return False
        return True

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.hub_url}/hub/api/{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"token {self.admin_token}", "Content-Type": "application/json"},
        )
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def student_tokens(self, count: int) -> list[str]:
        names = [f"student{index:02d}" for index in range(count)]
        self.api("POST", "users", {"usernames": names})
        scopes = {"scopes": ["access:services!service=greenroom"]}
        return [self.api("POST", f"users/{name}/tokens", scopes)["token"] for name in names]

    def stop(self) -> None:
        if self.process is not None:
            end_process(self.process, grace=30.0, group=True)
        # A hub stopped while it was still starting leaves its proxy (in a session of its own) behind: ours,
        # recognised by the API port this run chose.
        marker = f"--api-port\x00{self.ports['proxy']}".encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) > 1:
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as handle:
                        command = handle.read()
                except OSError:
                    continue
                if b"configurable-http-proxy" in command and marker in command:
                    os.kill(int(entry), signal.SIGTERM)

    def logtail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines, titled=True)


def bench_hub(workdir: Path, plan: Plan, report: Report) -> None:
    """A student's call through the proxy (one client), then 20 students at once, in persistent mode."""
    with running(JupyterHubService(workdir, persistent=True)) as hub:  # type: ignore[arg-type]
        tokens = hub.student_tokens(STUDENTS)
        progress("hub: one student's add(1, 2) through the proxy")
        (result,) = run_clients(hub, 1, ["calls", "--count", str(plan.external_calls)], 120, tokens=tokens[:1])  # type: ignore[arg-type]
        sample = Sample.from_ns(result["latencies_ns"], result["calls"] / result["seconds"])
        report.add(
            Row.of(
                "hub: a student's add(1,2) through the proxy",
                sample,
                "p50<=1.5",
                sample.p50 <= 1.5,
                f"N={plan.external_calls}, token cached; persistent",
            ),
            plotted=sample,
        )
        progress(f"hub: {STUDENTS} students at once")
        results = run_clients(  # type: ignore[arg-type]
            hub, STUDENTS, ["calls", "--seconds", str(plan.client_seconds)], plan.client_seconds + 90, tokens=tokens
        )
        latencies = [value for one in results for value in one["latencies_ns"]]
        sample = Sample.from_ns(latencies, sum(one["calls"] / one["seconds"] for one in results))
        report.add(
            Row.of(
                f"hub: {STUDENTS} students at once",
                sample,
                ">=1500 calls/s",
                sample.calls_per_s >= 1500,
                f"{plan.client_seconds:g} s, each with its own hub token; latency under load",
            )
        )
