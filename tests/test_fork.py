"""Processes forked from a connected one: a kernel's children open their own connection to the same host
(they never read their parent's replies, nor it theirs, nor drive its loading indicator), the parent's
connection objects refuse to work in a child, and a process a server function forks gets a clear error
instead of a share of its worker's channel, for calls and for the session alike."""

from __future__ import annotations

import json

import pytest

from helpers import CALC_SOURCE, write_notebook

FORKING_SOURCE = """
import os
from greenroom import server

@server.background_task
def quick():
    return "done"

@server.callable
def start_quick():
    return server.launch_background_task("quick")

@server.callable
def call_from_a_forked_child():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        messages = []
        for attempt in (lambda: server.call("add", 1, 2), lambda: server.session.get("x")):
            try:
                attempt()
                messages.append("it went through")
            except Exception as error:
                messages.append(f"{type(error).__name__}: {error}")
        os.write(write_end, "\\n".join(messages).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reading:
        messages = reading.read().split("\\n")
    os.waitpid(pid, 0)
    server.session["x"] = 1
    return [messages, server.call("add", 2, 3), server.session["x"]]
"""

KERNEL_FORKS_CODE = """
import json, os
from greenroom import server
from greenroom.loading import loading
server.call('add', 0, 0)
parents = server._transport
from greenroom.connection import Connection, find_endpoint
parents_websocket = Connection(find_endpoint()[0])  # as greenroom.connect() makes one
parents_websocket.request('functions')
task = server.call('start_quick')
task.wait(60)
loading.on_change(lambda active: None)  # a listener of the parent's (a Form's indicator)
children = []
for n in range(3):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            got = [server.call('echo', n, i) for i in range(60)]
            report = [got == [[[n, i], {}] for i in range(60)], type(server._transport).__name__, loading.listener_count]
            for use in (lambda: parents.request('functions'), lambda: parents_websocket.request('functions'), task.get_state):
                try:
                    use()
                    report.append('the parent connection answered')
                except server.ConnectionError as error:
                    report.append(str(error)[:40])
        except BaseException as error:
            report = [repr(error)]
        finally:
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)
    os.close(write_end)
    children.append((pid, read_end))
mine = [server.call('add', i, 1) for i in range(150)]
reports = []
for pid, read_end in children:
    with os.fdopen(read_end) as reading:
        reports.append(json.loads(reading.read()))
    os.waitpid(pid, 0)
print(json.dumps([mine == [i + 1 for i in range(150)], reports, server.call('add', 20, 22)]))
parents_websocket.close()
"""


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "calc.server.ipynb", CALC_SOURCE)
    write_notebook(jp_root_dir / "forks.server.ipynb", FORKING_SOURCE)
    return jp_root_dir


async def test_a_kernels_forked_children_call_over_their_own_connections(start_kernel):
    kernel = await start_kernel()
    out = await kernel.run(KERNEL_FORKS_CODE, timeout=120)
    child = [True, "LocalConnection", 0, *["this process was forked from one connect"] * 3]
    assert json.loads(out.strip().splitlines()[-1]) == [True, [child] * 3, 42]


async def test_a_process_forked_by_a_server_function_is_told_it_cannot_call(client):
    messages, after, session_value = await client.call("call_from_a_forked_child")
    assert len(messages) == 2, messages
    for message in messages:  # a call, and the session's first use
        assert message.startswith("ConnectionError: this process was forked from one connected"), message
    assert [after, session_value] == [5, 1]  # the worker's own channel was untouched
