"""A Dask cluster that speaks only TLS, with its workers under a nanny (as dask-gateway and dask-kubernetes
run them): the host reaches it with Dask's own TLS settings, and without them gets a clear error."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from processes import start_dask_cluster, stop_dask_cluster

from greenroom.errors import ConnectionError as GreenroomConnectionError
from helpers import write_notebook

pytest.importorskip("distributed", reason="the Dask runtime needs greenroom[dask]")
pytestmark = pytest.mark.dask

SOURCE = """
import os, time
from greenroom import server

@server.callable
def where():
    return os.environ.get("TEST_DASK_WORKER", "host")

@server.background_task
def tally(n):
    for i in range(1, n + 1):
        server.task_state["progress"] = i / n
    return [os.environ.get("TEST_DASK_WORKER", "host"), n]

@server.callable
def launch(n):
    return server.launch_background_task("tally", n)
"""


def openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A private CA and one certificate it signed for 127.0.0.1 (used by the scheduler, workers and host)."""
    folder = tmp_path_factory.mktemp("tls")
    ca, key, request, cert = (str(folder / name) for name in ("ca.pem", "key.pem", "request.csr", "cert.pem"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=greenroom test CA",
            "-keyout", str(folder / "ca-key.pem"), "-out", ca)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", request)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", request, "-CA", ca, "-CAkey", str(folder / "ca-key.pem"), "-CAcreateserial",
            "-days", "1", "-extfile", str(folder / "san.ext"), "-out", cert)  # fmt: skip
    return {"ca": ca, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, certificates):
    running = start_dask_cluster(tmp_path_factory.mktemp("dask-tls"), workers=1, tls=certificates, nanny=True)
    yield running
    stop_dask_cluster(running)


@pytest.fixture
def greenroom_config(cluster):
    return {"dask_scheduler": cluster["address"], "call_timeout": 20}


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "tls.server.ipynb", SOURCE)
    return jp_root_dir


async def test_calls_and_tasks_reach_a_tls_cluster_with_dasks_own_settings(client, host, certificates):
    import dask

    settings = {
        "distributed.comm.tls.ca-file": certificates["ca"],
        "distributed.comm.tls.client.cert": certificates["cert"],
        "distributed.comm.tls.client.key": certificates["key"],
    }
    with dask.config.set(settings):  # what DASK_DISTRIBUTED__COMM__TLS__... or a Dask config file would set
        assert await client.call("where") == "w0"  # a worker under a nanny
        task = await client.call("launch", 5)
        assert await asyncio.to_thread(task.wait, 60) == ["w0", 5]


async def test_a_tls_cluster_without_a_certificate_gives_a_clear_error(client, host):
    with pytest.raises(GreenroomConnectionError, match="speaks TLS, and this host has no Dask TLS settings"):
        await client.call("where")
