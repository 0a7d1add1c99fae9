"""Test helpers: writing server notebooks, a client, a real kernel runner, a kernel seen through the server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import json
import os
import re
import time
import uuid
from typing import Any

import nbformat
import pytest

from greenroom import BlobMedia, URLMedia
from greenroom.api import Server
from greenroom.connection import Connection, Endpoint

SECRET = "s3cr3t-answer-key-7f3a9c"

#: Runs a test on the local runtime and again on a real Dask cluster (the ``runtime`` fixture).
BOTH_RUNTIMES = pytest.mark.parametrize("runtime", ["local", pytest.param("dask", marks=pytest.mark.dask)])

CALC_SOURCE = f'''
import asyncio, os, time
from greenroom import server

SECRET = "{SECRET}"   # must never reach a client
COUNT = 0

@server.callable
def add(a, b):
    """Add two numbers."""
    return a + b

@server.callable
def echo(*args, **kwargs):
    return [args, kwargs]

@server.callable("custom_name")
def renamed():
    return "renamed"

@server.callable
def divide(a, b):
    return a / b

class HiddenError(Exception):
    pass

@server.callable
def hidden_error():
    raise HiddenError("went wrong")

@server.callable
def check(guess, key=SECRET):
    return guess == key

@server.callable
def bad_return():
    return {{1, 2}}

@server.callable
def slow(seconds):
    time.sleep(seconds)
    return seconds

@server.callable(timeout=0.5)
def short_fuse():
    time.sleep(30)

@server.callable
def crash():
    os._exit(3)

@server.callable
def bump():
    global COUNT
    COUNT += 1
    return COUNT

@server.callable
def session_put(key, value):
    server.session[key] = value

@server.callable
def session_get(key):
    return server.session.get(key)

@server.callable
def session_poison():
    server.session["bad"] = {{1}}
    return "ok"

@server.callable
def nested(a, b):
    return server.call("add", a, b) * 10

@server.callable(timeout=0.5)
def impatient():
    return server.call("slow", 30)

@server.callable
def broken_source():
    compile("if SECRET ==:", "/srv/secret/grading.py", "exec")

@server.callable
def whoami():
    return [server.context.client_type, server.context.function]

@server.callable
def user_name():
    user = server.context.user
    return None if user is None else user.name

@server.callable
def chatty():
    for _ in range(100000):
        print(SECRET)
    return "done"

@server.callable
async def later(x):
    await asyncio.sleep(0.01)
    return x * 2
'''


def normal_form(value: Any) -> Any:
    """A comparable form of a decoded value: exact types, float bits (nan, -0.0), datetime offsets,
    dict order, tuples as lists; any other object by its type name and attributes (slots included)."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return (kind.__name__, value)
    if kind is float:
        return ("float", repr(value))
    if kind in (list, tuple):
        return ("list", [normal_form(item) for item in value])
    if kind is dict:
        return ("dict", [(key, normal_form(item)) for key, item in value.items()])
    if kind is datetime.datetime:
        return ("datetime", value.replace(tzinfo=None), value.utcoffset())
    if kind is datetime.date:
        return ("date", value)
    if kind is BlobMedia:
        return ("blob", value.content_type, value.name, value.get_bytes())
    if kind is URLMedia:
        return ("url", value.url, value.content_type, value.name)
    attributes = dict(getattr(value, "__dict__", {}))
    for cls in kind.__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(value, slot):
                attributes[slot] = getattr(value, slot)
    attributes = {k: v for k, v in attributes.items() if not k.startswith("remote_frames")}
    if isinstance(value, BaseException):
        return (kind.__qualname__, normal_form(list(value.args)), normal_form(attributes))
    return (kind.__qualname__, normal_form(attributes))


def write_notebook(path: str | os.PathLike[str], *cells: str | tuple[str, list[str]]) -> None:
    """Write a notebook whose code cells are ``cells`` (a tuple adds tags)."""
    document = nbformat.v4.new_notebook()
    document.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for cell in cells:
        source, tags = (cell, []) if isinstance(cell, str) else cell
        document.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    nbformat.write(document, str(path))


class Client:
    """A process-local greenroom client whose calls run off the server's event loop."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.server = Server()
        self.connection = Connection(Endpoint(url, headers, "tests"))
        self.server.set_transport(self.connection)
        # Its own threads: blocked callers must not starve the server's default executor (same process).
        self.threads = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="test-client")

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(self.server.call, name, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.threads, call)

    async def request(self, kind: str) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.threads, self.server.request, kind)

    def close(self) -> None:
        self.connection.close()
        self.threads.shutdown(wait=False, cancel_futures=True)


async def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    """Poll ``predicate`` on the event loop (the server keeps running) until true or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def without_colours(text: str) -> str:
    """A traceback as a notebook shows it, without the terminal's colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


async def failure_shown(kernel: KernelRunner, code: str) -> str:
    """Run ``code``, which must fail, and return its traceback as the notebook shows it (without colours)."""
    try:
        await kernel.run(code)
    except KernelError as error:
        return without_colours(str(error))
    raise AssertionError(f"the code did not fail: {code!r}")


class KernelRunner:
    """Runs code in a real kernel started by the Jupyter server."""

    def __init__(self, client: Any, kernel_id: str) -> None:
        self.client = client
        self.kernel_id = kernel_id

    async def run(self, code: str, timeout: float = 60, mime: str = "text/plain") -> str:
        """Execute ``code``; return its stdout and the ``mime`` form of what it displayed; raise AssertionError
        with the traceback on error."""
        outputs: list[str] = []
        errors: list[str] = []

        def hook(message: dict[str, Any]) -> None:
            content = message["content"]
            kind = message["msg_type"]
            if kind == "stream":
                outputs.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"]))
            elif kind in ("execute_result", "display_data"):
                outputs.append(content["data"].get(mime, "") + "\n")

        reply = await self.client.execute_interactive(code, output_hook=hook, timeout=timeout, allow_stdin=False)
        if errors or reply["content"]["status"] != "ok":
            content = reply["content"]
            raise KernelError("\n".join(errors) or f"{content.get('ename')}: {content.get('evalue')}")
        return "".join(outputs)


class KernelError(AssertionError):
    """Code run in a test kernel raised."""


class KernelSocket:
    """A kernel seen as a browser sees it: through the Jupyter server's WebSocket (its IOPub rate limit
    included).  Every message received is kept in :attr:`messages`, in order."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.messages: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, base_url: str, token: str, kernel_id: str) -> KernelSocket:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = base_url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
        request = HTTPRequest(url, headers={"Authorization": f"token {token}"})
        return cls(await websocket_connect(request))

    async def receive(self, timeout: float) -> dict[str, Any]:
        """The next JSON message (binary ones are skipped); AssertionError when ``timeout`` passes first."""
        while True:
            raw = await asyncio.wait_for(self.connection.read_message(), timeout)
            if raw is None:
                raise AssertionError("the kernel's WebSocket closed")
            if isinstance(raw, str):
                message = json.loads(raw)
                self.messages.append(message)
                return message

    async def execute(self, code: str, timeout: float = 60) -> str:
        """Run ``code``; wait for its reply and the kernel's idle; return the message id."""
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": "s", "version": "5.3"}
        content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False}
        request = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
        await self.connection.write_message(json.dumps(request))
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            message = await self.receive(max(0.1, deadline - time.monotonic()))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "error":
                raise KernelError("\n".join(message["content"]["traceback"]))
            replied = replied or kind == "execute_reply"
            idle = idle or (kind == "status" and message["content"]["execution_state"] == "idle")
        return msg_id

    def output(self, msg_id: str) -> str:
        """What the execution ``msg_id`` printed and displayed (as plain text)."""
        shown = []
        for message in self.messages:
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                shown.append(message["content"]["text"])
            elif message["msg_type"] in ("display_data", "execute_result"):
                shown.append(message["content"]["data"].get("text/plain", "") + "\n")
        return "".join(shown)

    async def until(self, predicate: Any, timeout: float) -> None:
        """Receive messages until ``predicate(messages)`` holds; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not seen within {timeout} s")
            try:
                await self.receive(remaining)
            except TimeoutError:
                raise AssertionError(f"not seen within {timeout} s") from None

    def close(self) -> None:
        self.connection.close()
