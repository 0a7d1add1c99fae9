"""Faults: killed runtime processes, memory limits, shutdown with calls in flight; no orphans."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from greenroom.errors import ExecutionTerminatedError
from helpers import wait_until


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return not any(line.startswith("State:") and "Z" in line for line in status)
    except FileNotFoundError:
        return False


def runtime_pids(host) -> list[int]:
    pids = []
    for generation in host.reloader.generations.values():
        if generation.process is not None:
            pids.append(generation.process.pid)
        pids.extend(link.pid for link in generation.queue.idle)
    return pids


@pytest.mark.parametrize("greenroom_config", [{"worker_memory_limit": 200 * 1024 * 1024}])
async def test_memory_limit_fails_alone(client, host, greenroom_config):
    with pytest.raises(MemoryError):
        await client.call("hog")
    assert await client.call("add", 1, 2) == 3


@pytest.fixture
def server_files(server_files):
    from helpers import CALC_SOURCE, write_notebook

    write_notebook(
        server_files / "calc.server.ipynb",
        CALC_SOURCE + "\n@server.callable\ndef hog():\n    return len(bytearray(2 * 1024 ** 3))\n",
    )
    return server_files


async def test_killed_worker_mid_call(client, host):
    call = asyncio.ensure_future(client.call("slow", 30))
    generation = host.reloader.serving
    # A worker counts as busy once taken, and its link once the call is sent to it: wait for the link.
    await wait_until(lambda: len(generation.busy_links()) == 1)
    busy = generation.busy_links()
    assert len(busy) == 1 and busy[0].pid > 1
    os.kill(busy[0].pid, signal.SIGKILL)
    with pytest.raises(ExecutionTerminatedError):
        await call
    assert await client.call("add", 1, 2) == 3


@pytest.mark.parametrize("greenroom_config", [{}, {"persistent": True}], ids=["fresh", "persistent"])
async def test_killed_template_recovers(client, host, greenroom_config):
    assert await client.call("add", 1, 1) == 2
    old = host.reloader.serving
    call = asyncio.ensure_future(client.call("slow", 30))
    await wait_until(lambda: old.busy == 1)
    os.kill(old.process.pid, signal.SIGKILL)
    with pytest.raises(ExecutionTerminatedError):
        await call
    assert await client.call("add", 2, 2) == 4
    assert host.reloader.serving is not old
    await wait_until(lambda: not alive(old.process.pid))


async def test_deleted_notebook_drops_its_functions(client, host):
    os.remove(os.path.join(host.root, "calc.server.ipynb"))
    status = await client.request("reload")
    assert status["serving"]["functions"] == []
    with pytest.raises(client.server.NoServerFunctionError):
        await client.call("add", 1, 1)


async def test_stop_with_calls_in_flight_leaves_no_orphans(client, host):
    calls = [asyncio.ensure_future(client.call("slow", 30)) for _ in range(3)]
    await wait_until(lambda: host.reloader.serving.busy == 3)
    pids = runtime_pids(host) + [link.pid for link in host.reloader.serving.busy_links()]
    assert len(pids) >= 4
    await host.stop()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, Exception) for result in results)
    await wait_until(lambda: not any(alive(pid) for pid in pids))
    assert not os.path.exists(host.socket_dir)


@pytest.mark.parametrize("greenroom_config", [{"max_calls_per_session": 2}])
async def test_concurrent_calls_per_session_are_limited(client, host, greenroom_config):
    first = [asyncio.ensure_future(client.call("slow", 1)) for _ in range(2)]
    await wait_until(lambda: sum(host.in_flight.values()) == 2)
    with pytest.raises(client.server.GreenroomError, match="too many concurrent calls from this session"):
        await client.call("add", 1, 1)
    assert await asyncio.gather(*first) == [1, 1]
    assert await client.call("add", 1, 1) == 2


def test_output_of_a_call_is_bounded():
    from greenroom.server_ext.runtime.worker import BoundedOutput

    sink = BoundedOutput(limit=100)
    for _ in range(1000):
        sink.write("x" * 37)
    assert sink.size == 100 and sink.text().endswith("36900 more characters dropped")
