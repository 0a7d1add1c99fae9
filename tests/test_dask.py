"""Calls on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on loopback, with the
host in front (``GreenroomApp.dask_scheduler``)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from processes import free_port, start, stop

from greenroom import BlobMedia
from greenroom.errors import ConnectionError as GreenroomConnectionError
from greenroom.errors import ExecutionTerminatedError
from greenroom.errors import TimeoutError as GreenroomTimeoutError
from helpers import write_notebook

pytest.importorskip("distributed", reason="the Dask runtime needs greenroom[dask]")
pytestmark = pytest.mark.dask

BIN = os.path.dirname(sys.executable)

SOURCE = """
import os, time
from greenroom import server
import shared_helpers

counter = 0

@server.callable
def where():
    return [os.environ.get("TEST_DASK_WORKER", "host"), os.getpid()]

@server.callable
def bump():
    global counter
    counter += 1
    return counter

@server.callable
def remember(value):
    server.session["value"] = value
    return server.call("recall")  # a nested call shares the session its caller just wrote

@server.callable
def recall():
    return [server.session.get("value"), server.context.client_type]

@server.callable
def helper_answer():
    return shared_helpers.ANSWER

@server.callable(timeout=1)
def sleepy(seconds):
    time.sleep(seconds)
    return "woke"

@server.callable
def echo(value):
    return value

@server.callable
def version():
    return "v1"

@server.callable(timeout=60)
def hold(marker):
    with open(marker, "w") as handle:
        handle.write(os.environ.get("TEST_DASK_WORKER", "host"))
    time.sleep(60)
"""


def start_cluster(directory: Path, workers: int = 2, port: int = 0) -> dict:
    """A scheduler (on ``port``, else a free one) and ``workers`` workers (no nanny: the worker's pid is its
    process), every port on 127.0.0.1; a lost worker's calls are not retried elsewhere (allowed-failures 0)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    scheduler_log = directory / "scheduler.log"
    scheduler = start(
        [
            os.path.join(BIN, "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
        ],
        str(scheduler_log),
        env=env,
    )
    processes = [scheduler]
    logs = []
    for index in range(workers):
        log = directory / f"worker{index}.log"
        logs.append(log)
        processes.append(
            start(
                [
                    os.path.join(BIN, "dask"),
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "2",
                    "--no-nanny",
                    "--memory-limit",
                    "0",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--local-directory",
                    str(directory / f"worker{index}"),
                    "--name",
                    f"w{index}",
                ],
                str(log),
                env=dict(env, TEST_DASK_WORKER=f"w{index}"),
            )
        )
    deadline = time.monotonic() + 60
    while not all("Registered to" in log.read_text() for log in logs):
        if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
            for process in processes:
                stop(process)
            raise AssertionError("the Dask cluster did not start:\n" + "\n".join(log.read_text() for log in logs))
        time.sleep(0.1)
    return {"address": address, "port": port, "scheduler": scheduler, "workers": processes[1:]}


def stop_cluster(cluster: dict) -> None:
    for process in [*cluster["workers"], cluster["scheduler"]]:
        stop(process, grace=15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = start_cluster(tmp_path_factory.mktemp("dask"))
    yield running
    stop_cluster(running)


@pytest.fixture
def dask_options():
    """More GreenroomApp options for a test (parametrize to change)."""
    return {}


@pytest.fixture
def greenroom_config(cluster, dask_options):
    return {"dask_scheduler": cluster["address"], **dask_options}


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "dask.server.ipynb", SOURCE)
    (jp_root_dir / "shared_helpers.py").write_text("ANSWER = 42\n")
    return jp_root_dir


async def test_calls_run_on_the_dask_workers_in_fresh_state_with_their_modules(client, host):
    seen = {tuple(await client.call("where")) for _ in range(12)}
    names = {name for name, _ in seen}
    assert names <= {"w0", "w1"} and "host" not in names and names  # every call ran on a Dask worker
    assert all(pid != os.getpid() for _, pid in seen)
    assert [await client.call("bump") for _ in range(3)] == [1, 1, 1]  # fresh state: no call sees another's globals
    assert await client.call("helper_answer") == 42  # the .py module beside the notebook travelled with it
    status = await client.request("status")
    addresses = {worker["address"] for worker in status["dask"]["workers"]}
    assert addresses and all(address.startswith("tcp://127.0.0.1:") for address in addresses)
    from greenroom.report import workers_section

    shown = "\n".join(workers_section(status).text)  # what %greenroom status says
    assert f"calls run on the Dask cluster at {status['dask']['scheduler']}" in shown
    assert all(address in shown for address in addresses)


@pytest.mark.parametrize("dask_options", [{"persistent": True}])
async def test_persistent_state_and_media_hold_on_dask(client, host, dask_options):
    counts = [await client.call("bump") for _ in range(8)]
    assert max(counts) > 1  # persistent workers keep their globals (calls spread over the Dask workers)
    picture = BlobMedia("image/png", os.urandom(1 << 20), name="big.png")
    echoed = await client.call("echo", picture)
    assert echoed.get_bytes() == picture.get_bytes() and echoed.name == "big.png"


async def test_sessions_context_and_nested_calls_hold_on_dask(client, host):
    assert await client.call("remember", "kept") == ["kept", "user"]  # a nested call runs as its caller
    assert await client.call("recall") == ["kept", "user"]


async def test_a_timeout_stops_the_call_on_its_worker_and_the_next_call_works(client, host):
    with pytest.raises(GreenroomTimeoutError, match="did not finish within 1 s"):
        await client.call("sleepy", 30)
    assert await client.call("sleepy", 0) == "woke"


async def test_a_changed_notebook_reaches_the_workers(client, host, jp_root_dir):
    assert await client.call("version") == "v1"
    write_notebook(jp_root_dir / "dask.server.ipynb", SOURCE.replace('return "v1"', 'return "v2"'))
    deadline = asyncio.get_running_loop().time() + 60
    while await client.call("version") != "v2":
        assert asyncio.get_running_loop().time() < deadline, "the new version never reached the workers"
    assert {(await client.call("where"))[0] for _ in range(6)} <= {"w0", "w1"}


async def test_a_dask_worker_killed_mid_call_gives_execution_terminated_and_the_next_call_works(
    client, host, cluster, tmp_path
):
    """Last in this module: it leaves the cluster one worker short."""
    marker = tmp_path / "holding"
    held = asyncio.ensure_future(client.call("hold", str(marker)))
    deadline = asyncio.get_running_loop().time() + 60
    while not (marker.exists() and marker.read_text()):
        assert asyncio.get_running_loop().time() < deadline and not held.done(), "the call never started"
        await asyncio.sleep(0.05)
    worker = cluster["workers"][int(marker.read_text()[1:])]
    assert worker.pid > 1 and worker.poll() is None
    worker.kill()  # our own child: the Dask worker running the call, with its runtime
    with pytest.raises(ExecutionTerminatedError, match="was lost|ended before it answered"):
        await asyncio.wait_for(held, 60)
    survivors = {(await client.call("where"))[0] for _ in range(4)}
    assert survivors and survivors <= {"w0", "w1"} - {marker.read_text()}


async def test_a_scheduler_that_goes_away_gives_a_clear_error_and_the_host_recovers_when_it_returns(
    client, host, cluster, tmp_path
):
    """Last in this module: it replaces the cluster (a new scheduler on the same port, new workers)."""
    assert (await client.call("where"))[0] in {"w0", "w1"}
    stop_cluster(cluster)
    started = asyncio.get_running_loop().time()
    with pytest.raises((ExecutionTerminatedError, GreenroomConnectionError), match="Dask"):
        await client.call("where")
    assert asyncio.get_running_loop().time() - started < 30  # within the call timeout
    cluster.update(start_cluster(tmp_path / "again", port=cluster["port"]))
    deadline = asyncio.get_running_loop().time() + 60
    while True:  # the host finds the cluster again by itself; calls meanwhile get clear errors
        try:
            assert (await client.call("where"))[0] in {"w0", "w1"}
            break
        except (ExecutionTerminatedError, GreenroomConnectionError):
            assert asyncio.get_running_loop().time() < deadline, "the host never found the cluster again"
