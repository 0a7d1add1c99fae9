"""Background tasks: launched by server code in their own processes, watched live by the clients that hold
them (news pushed, never polled), stopped from outside, and ended with a status every time."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from greenroom import Media
from greenroom.errors import TimeoutError as GreenroomTimeoutError
from helpers import BOTH_RUNTIMES, SECRET, wait_until, write_notebook

TASKS_SOURCE = f'''
import os, time, threading
from greenroom import server, BlobMedia

KEY = "{SECRET}"

@server.background_task
def count_to(n, pause=0.0, gate=None):
    for i in range(1, n + 1):
        server.task_state["progress"] = i / n
        server.task_state["message"] = f"step {{i}} of {{n}}"
        if gate:
            while not os.path.exists(gate):   # the test opens the gate: no race with the first update
                time.sleep(0.005)
            gate = None
        time.sleep(pause)
    return {{"counted": n, "by": server.context.user.name if server.context.user else None}}

@server.background_task("picture")
def make_picture():
    return BlobMedia("image/png", b"\\x89PNG not really", name="plot.png")

@server.background_task
def fails():
    raise ValueError("the fit did not converge")

@server.background_task
def forever(marker):
    open(marker, "w").close()
    while True:
        time.sleep(0.05)

@server.background_task
def bad_value():
    return {{1, 2}}

@server.background_task
def bad_state():
    server.task_state["fine"] = 1
    server.task_state["set"] = {{1, 2}}

@server.background_task
def flood(n):
    for i in range(n):
        server.task_state["i"] = i
    return "flooded"

@server.background_task
def with_children(pid_file):
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(pid_file, "w") as handle:
        handle.write(str(child.pid))
    while True:
        time.sleep(0.05)

@server.callable
def start(name, *args, **kwargs):
    return server.launch_background_task(name, *args, **kwargs)

@server.callable
def state_of(task):
    return [task.get_task_name(), task.get_termination_status(), task.get_state()]

@server.callable
def wait_for(task, timeout=None):
    return task.wait(timeout)

@server.callable
def kill(task):
    task.kill()
    return task.wait(10) if False else "killed"

@server.callable
def found(task_id):
    return server.get_background_task(task_id).get_task_name()

@server.callable
def listed():
    return [task.get_id() for task in server.list_background_tasks()]

@server.background_task
def crashes():
    server.task_state["message"] = "about to crash"
    os._exit(3)

@server.callable
def add(a, b):
    return a + b
'''


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "tasks.server.ipynb", TASKS_SOURCE)
    return jp_root_dir


def news(task):
    """Every push the Task receives, in order (its ``on_change`` callback), and an event set at its end."""
    seen: list[tuple[str, dict]] = []
    ended = threading.Event()

    def on_change(changed):
        update = changed._news
        seen.append((update.status, changed.get_state()))
        if update.ended_status is not None:
            ended.set()

    task.on_change(on_change)
    return seen, ended


@BOTH_RUNTIMES
async def test_a_task_runs_in_the_background_and_its_progress_is_pushed_to_the_holder(client, host, tmp_path):
    gate = tmp_path / "gate"
    task = await client.call("start", "count_to", 5, 0.02, str(gate))
    seen, ended = news(task)
    gate.touch()
    result = await asyncio.to_thread(task.wait, 30)
    assert result["counted"] == 5 and result["by"]  # it ran as its launcher's caller: the server's user
    await asyncio.to_thread(ended.wait, 10)
    assert task.get_termination_status() == "completed" and task.is_completed() and not task.is_running()
    assert task.get_state() == {"progress": 1.0, "message": "step 5 of 5"}
    progress = [state.get("progress") for _, state in seen if state]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) >= 2  # live, in order
    assert task.get_task_name() == "count_to" and task.get_start_time() is not None
    assert await client.call("add", 1, 2) == 3  # calls are served meanwhile, by other workers


@BOTH_RUNTIMES
async def test_return_values_errors_and_bad_values_end_with_a_clear_status(client, host):
    picture = await client.call("start", "picture")
    value = await asyncio.to_thread(picture.wait, 30)
    assert isinstance(value, Media) and value.get_bytes() == b"\x89PNG not really" and value.name == "plot.png"
    failing = await client.call("start", "fails")
    with pytest.raises(ValueError, match="the fit did not converge") as raised:
        await asyncio.to_thread(failing.wait, 30)
    assert failing.get_termination_status() == "failed"
    assert [frame.function for frame in raised.value.remote_frames] == ["fails"]  # frames, never source
    bad = await client.call("start", "bad_value")
    with pytest.raises(TypeError, match="return value: set cannot be sent"):
        await asyncio.to_thread(bad.wait, 30)
    state = await client.call("start", "bad_state")
    with pytest.raises(TypeError, match=r"task_state\['set'\]: set cannot be sent"):
        await asyncio.to_thread(state.wait, 30)
    assert state.get_state() == {"fine": 1}  # what was written before the bad value still arrived
    assert SECRET not in repr(raised.value) + str(raised.value)


@BOTH_RUNTIMES
async def test_server_code_finds_waits_for_and_kills_tasks_and_clients_cannot(client, host, tmp_path):
    marker = tmp_path / "running"
    task = await client.call("start", "forever", str(marker))
    await wait_until(marker.exists, 30)
    assert await client.call("state_of", task) == ["forever", None, {}]
    with pytest.raises(GreenroomTimeoutError, match="did not end within 0.2 s"):
        await client.call("wait_for", task, 0.2)
    assert await client.call("found", task.get_id()) == "forever"
    assert task.get_id() in await client.call("listed")
    with pytest.raises(PermissionError, match="only server code may kill a task"):
        task.kill()
    assert await client.call("kill", task) == "killed"
    with pytest.raises(Exception, match="was killed"):
        await asyncio.to_thread(task.wait, 30)
    assert task.get_termination_status() == "killed"
    from greenroom import server

    with pytest.raises(PermissionError, match="is for server code"):
        server.launch_background_task("forever", "x")
    with pytest.raises(LookupError, match=r"no background task named 'nope' \(declared: .*count_to"):
        await client.call("start", "nope")
    with pytest.raises(Exception, match="did you mean|no server function named 'count_to'"):
        await client.call("count_to", 3)  # a task is not a callable: clients start it through one


@BOTH_RUNTIMES
@pytest.mark.parametrize("greenroom_config", [{"max_tasks": 1, "task_timeout": 2}])
async def test_max_tasks_queues_the_rest_and_task_timeout_kills_from_outside(client, host, tmp_path, greenroom_config):
    first_marker, second_marker = tmp_path / "first", tmp_path / "second"
    first = await client.call("start", "forever", str(first_marker))
    second = await client.call("start", "forever", str(second_marker))
    await wait_until(first_marker.exists, 30)
    assert (await asyncio.to_thread(second._latest)).status == "pending" and not second_marker.exists()
    with pytest.raises(GreenroomTimeoutError, match="task_timeout"):
        await asyncio.to_thread(first.wait, 30)
    assert first.get_termination_status() == "killed"
    await wait_until(second_marker.exists, 30)  # its turn came when the first ended
    with pytest.raises(GreenroomTimeoutError, match="task_timeout"):
        await asyncio.to_thread(second.wait, 30)


@BOTH_RUNTIMES
async def test_a_flood_of_state_updates_is_coalesced_and_the_host_keeps_serving(client, host):
    task = await client.call("start", "flood", 200_000)
    seen, ended = news(task)
    assert await asyncio.to_thread(task.wait, 60) == "flooded"
    await asyncio.to_thread(ended.wait, 10)
    assert task.get_state() == {"i": 199_999}  # the last state always arrives
    assert len(seen) < 200  # coalesced: not one push per write
    assert await client.call("add", 2, 2) == 4


@BOTH_RUNTIMES
async def test_a_killed_task_takes_the_processes_it_forked_with_it(client, host, tmp_path):
    pid_file = tmp_path / "child.pid"
    task = await client.call("start", "with_children", str(pid_file))
    await wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 30)
    child = int(pid_file.read_text())
    assert child > 1
    await client.call("kill", task)
    with pytest.raises(Exception, match="was killed"):
        await asyncio.to_thread(task.wait, 30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}") and _state(child) != "Z":
        await asyncio.sleep(0.05)
    assert not os.path.exists(f"/proc/{child}") or _state(child) == "Z"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


async def test_a_kernel_follows_a_task_in_task_progress_and_stays_free(start_kernel, host, tmp_path):
    kernel = await start_kernel()
    gate = tmp_path / "gate"
    shown = await kernel.run(
        "from greenroom import server\nfrom greenroom.widgets import TaskProgress\n"
        f"task = server.call('start', 'count_to', 3, 0.01, {str(gate)!r})\n"
        "progress = TaskProgress(task)\nprint(type(task).__name__, server.call('add', 1, 1))"
    )
    assert shown.strip() == "Task 2"  # the kernel answers while the task waits at its gate
    gate.touch()
    shown = await kernel.run(
        "result = task.wait(30)\n"
        "print(result['counted'], progress.bar.value, progress.bar.bar_style, 'step 3 of 3' in progress.status.value)"
    )
    assert shown.strip() == "3 1.0 success True"
    listed = await kernel.run("%load_ext greenroom\n%greenroom tasks")
    assert "count_to: completed" in listed and task_id_of(listed)


def task_id_of(text: str) -> str:
    return text.rsplit("[", 1)[-1].split("]", 1)[0]


async def test_a_task_whose_process_or_template_dies_ends_failed_with_the_reason(client, host, tmp_path):
    crashed = await client.call("start", "crashes")
    with pytest.raises(Exception, match="ended before it finished"):
        await asyncio.to_thread(crashed.wait, 30)
    assert crashed.get_termination_status() == "failed"
    marker = tmp_path / "running"
    task = await client.call("start", "forever", str(marker))
    await wait_until(marker.exists, 30)
    template = host.reloader.serving.process
    assert template.pid > 1 and template.returncode is None
    template.kill()  # our own child: the template, with every task it forked
    with pytest.raises(Exception, match="ended before it finished"):
        await asyncio.to_thread(task.wait, 30)
    assert task.get_termination_status() == "failed"
    await wait_until(
        lambda: host.reloader.serving is not None and host.reloader.serving.process.pid != template.pid, 60
    )
    again = await client.call("start", "picture")  # a new generation runs tasks again
    assert (await asyncio.to_thread(again.wait, 30)).name == "plot.png"
