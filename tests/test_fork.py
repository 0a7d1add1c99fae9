"""Processes forked from a connected one: a kernel's children open their own connection to the same host
(they never read their parent's replies, nor it theirs), and a process a server function forks gets a
clear error instead of a share of its worker's channel."""

from __future__ import annotations

import json

import pytest

from helpers import CALC_SOURCE, write_notebook

FORKING_SOURCE = """
import os
from greenroom import server

@server.callable
def call_from_a_forked_child():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            server.call("add", 1, 2)
            message = "the call went through"
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reading:
        message = reading.read()
    os.waitpid(pid, 0)
    return [message, server.call("add", 2, 3)]
"""

KERNEL_FORKS_CODE = """
import json, os
from greenroom import server
server.call('add', 0, 0)
children = []
for n in range(3):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            got = [server.call('echo', n, i) for i in range(60)]
            report = [got == [[[n, i], {}] for i in range(60)], type(server._transport).__name__]
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
"""


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "calc.server.ipynb", CALC_SOURCE)
    write_notebook(jp_root_dir / "forks.server.ipynb", FORKING_SOURCE)
    return jp_root_dir


async def test_a_kernels_forked_children_call_over_their_own_connections(start_kernel):
    kernel = await start_kernel()
    out = await kernel.run(KERNEL_FORKS_CODE, timeout=120)
    assert json.loads(out.strip().splitlines()[-1]) == [True, [[True, "LocalConnection"]] * 3, 42]


async def test_a_process_forked_by_a_server_function_is_told_it_cannot_call(client):
    message, after = await client.call("call_from_a_forked_child")
    assert message.startswith("ConnectionError: this process was forked by a server function"), message
    assert after == 5  # the worker's own channel was untouched
