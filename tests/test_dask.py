"""Calls on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on loopback, with the
host in front (``GreenroomApp.dask_scheduler``)."""

from __future__ import annotations

import asyncio
import os

import pytest
from processes import start_dask_cluster, start_dask_worker, stop_dask_cluster

from greenroom import BlobMedia
from greenroom.errors import ConnectionError as GreenroomConnectionError
from greenroom.errors import ExecutionTerminatedError
from greenroom.errors import TimeoutError as GreenroomTimeoutError
from helpers import write_notebook

pytest.importorskip("distributed", reason="the Dask runtime needs greenroom[dask]")
pytestmark = pytest.mark.dask

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

@server.background_task
def tally(n):
    for i in range(1, n + 1):
        server.task_state["progress"] = i / n
        time.sleep(0.01)
    return [os.environ.get("TEST_DASK_WORKER", "host"), server.call("echo", "nested")]

@server.background_task
def stay(marker):
    with open(marker, "w") as handle:
        handle.write(os.environ.get("TEST_DASK_WORKER", "host"))
    time.sleep(600)

@server.callable
def launch(name, *args):
    return server.launch_background_task(name, *args)

@server.callable(timeout=60)
def hold(marker):
    with open(marker, "w") as handle:
        handle.write(os.environ.get("TEST_DASK_WORKER", "host"))
    time.sleep(60)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = start_dask_cluster(tmp_path_factory.mktemp("dask"))
    yield running
    stop_dask_cluster(running)


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


async def test_background_tasks_run_on_the_dask_workers_with_progress_pushed_to_the_holder(client, host, tmp_path):
    task = await client.call("launch", "tally", 20)  # launched by server code that itself ran on Dask
    seen = []
    task.on_change(lambda changed: seen.append(changed.get_state().get("progress")))
    worker, nested = await asyncio.to_thread(task.wait, 60)
    assert worker in {"w0", "w1"} and nested == "nested"  # its nested call went through the host
    progress = [value for value in seen if value is not None]  # None: pushed before its first state
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)  # in order, ending on the last
    status = await client.request("status")
    assert status["tasks_running"] == 0


async def test_a_dask_worker_killed_under_a_task_ends_it_failed_and_tasks_run_on(client, host, cluster, tmp_path):
    marker = tmp_path / "staying"
    task = await client.call("launch", "stay", str(marker))
    deadline = asyncio.get_running_loop().time() + 60
    while not (marker.exists() and marker.read_text()):
        assert asyncio.get_running_loop().time() < deadline, "the task never started"
        await asyncio.sleep(0.05)
    worker = cluster["workers"][int(marker.read_text()[1:])]
    assert worker.pid > 1 and worker.poll() is None
    worker.kill()  # our own child: the Dask worker running the task
    with pytest.raises(ExecutionTerminatedError, match="was lost|ended before it finished"):
        await asyncio.to_thread(task.wait, 60)
    assert task.get_termination_status() == "failed"
    survivor = await client.call("launch", "tally", 2)
    assert (await asyncio.to_thread(survivor.wait, 60))[0] in {"w0", "w1"} - {marker.read_text()}
    await asyncio.to_thread(start_dask_worker, cluster, int(marker.read_text()[1:]))  # for the next tests


async def test_a_dask_worker_killed_mid_call_gives_execution_terminated_and_the_next_call_works(
    client, host, cluster, tmp_path
):
    """Last but one in this module: it leaves the cluster one worker short."""
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
    stop_dask_cluster(cluster)
    started = asyncio.get_running_loop().time()
    with pytest.raises((ExecutionTerminatedError, GreenroomConnectionError), match="Dask"):
        await client.call("where")
    assert asyncio.get_running_loop().time() - started < 30  # within the call timeout
    cluster.update(start_dask_cluster(tmp_path / "again", port=cluster["port"]))
    deadline = asyncio.get_running_loop().time() + 60
    while True:  # the host finds the cluster again by itself; calls meanwhile get clear errors
        try:
            assert (await client.call("where"))[0] in {"w0", "w1"}
            break
        except (ExecutionTerminatedError, GreenroomConnectionError):
            assert asyncio.get_running_loop().time() < deadline, "the host never found the cluster again"
