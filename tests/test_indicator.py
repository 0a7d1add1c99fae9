"""The loading indicator in real kernels seen through the real server's WebSocket, rate limit included:
its cost per call does not grow with the Forms ever made, and it never stays on after the last call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from traitlets.config import Config

from helpers import KernelSocket

RATE_EXCEEDED = "IOPub message rate exceeded"


@pytest.fixture
def iopub_limits() -> dict[str, Any]:
    """The server's IOPub rate limit options (its defaults unless a test says otherwise)."""
    return {}


@pytest.fixture
def jp_server_config(jp_server_config: Config, iopub_limits: dict[str, Any]) -> Config:
    jp_server_config.ZMQChannelsWebsocketConnection = Config(iopub_limits)
    return jp_server_config


@pytest.fixture
def kernel_socket(start_kernel: Any, base_url: str, jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    async def open_socket() -> KernelSocket:
        kernel = await start_kernel()
        socket = await KernelSocket.open(base_url, jp_serverapp.identity_provider.token, kernel.kernel_id)
        await socket.execute(
            "from IPython.display import display\nfrom greenroom import server\nimport greenroom.widgets as gw"
        )
        return socket

    socket = jp_asyncio_loop.run_until_complete(open_socket())
    yield socket
    socket.close()


def updates_of(model_id: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The state updates the kernel sent to the frontend's copy of widget ``model_id``."""
    return [
        message["content"]["data"]["state"]
        for message in messages
        if message["msg_type"] == "comm_msg"
        and message["content"]["comm_id"] == model_id
        and message["content"]["data"].get("method") == "update"
    ]


def last_visibility(model_id: str, messages: list[dict[str, Any]]) -> str | None:
    seen = [state["visibility"] for state in updates_of(model_id, messages) if "visibility" in state]
    return seen[-1] if seen else None


def rate_exceeded(messages: list[dict[str, Any]]) -> bool:
    return any(message["msg_type"] == "stream" and RATE_EXCEEDED in message["content"]["text"] for message in messages)


async def indicator_layout(socket: KernelSocket) -> str:
    msg_id = await socket.execute("print(gw.loading.indicator.widget().layout.model_id)")
    return socket.output(msg_id).strip()


async def test_a_form_cell_run_30_times_then_100_calls_do_not_flood_and_leave_the_spinner_off(kernel_socket):
    for _ in range(30):  # the user re-runs the Form's cell
        await kernel_socket.execute("form = gw.Form(children=[gw.Link('next')])\ndisplay(form)")
    layout = await indicator_layout(kernel_socket)
    start = len(kernel_socket.messages)
    loop = await kernel_socket.execute("for i in range(100):\n    assert server.call('add', i, 1) == i + 1")
    await kernel_socket.until(lambda messages: last_visibility(layout, messages[start:]) == "hidden", timeout=20)
    during = [m for m in kernel_socket.messages[start:] if m["parent_header"].get("msg_id") == loop]
    assert not rate_exceeded(kernel_socket.messages)
    widget_updates = [m for m in during if m["msg_type"] == "comm_msg"]
    # One show and one hide for the whole loop, not two per call per Form ever displayed (6,000 before).
    assert len(widget_updates) <= 3, json.dumps(widget_updates)[:2000]
    msg_id = await kernel_socket.execute(
        "print(gw.loading.indicator.widget().shown, server_listeners := __import__('greenroom').loading.loading.listener_count)"
    )
    assert kernel_socket.output(msg_id).split() == ["False", "1"]


@pytest.mark.timeout(300)  # 1,000 pages make about 20,000 widget messages: ten seconds here, more on a busy machine
async def test_a_thousand_page_navigations_keep_one_listener_and_the_same_cost_per_call(kernel_socket):
    code = (
        "class Page(gw.Form):\n"
        "    def __init__(self, n):\n"
        "        super().__init__()\n"
        "        self.children = [gw.Link(f'page {n + 1}', to=lambda: Page(n + 1))]\n"
        "app = gw.open_form(Page(0))\n"
        "display(app)"
    )
    await kernel_socket.execute(code)
    # One cell per 10 clicks: a person's clicks come one request at a time.  A page is about a dozen widget
    # messages, and IOPub is lossy: past ZeroMQ's high-water mark (1,000 messages, and often fewer) a burst
    # that the server reads slowly loses its newest messages, the cell's idle among them (50 clicks a cell
    # lost one, one run in 25).
    for _ in range(100):
        await kernel_socket.execute("for _ in range(10):\n    gw.get_open_form().children[0].click()", timeout=60)
    msg_id = await kernel_socket.execute(
        "import greenroom\nprint(greenroom.loading.loading.listener_count, gw.get_open_form().children[0].description)"
    )
    assert kernel_socket.output(msg_id).split() == ["1", "page", "1001"]
    layout = await indicator_layout(kernel_socket)
    start = len(kernel_socket.messages)
    call = await kernel_socket.execute("server.call('add', 1, 2)")
    await kernel_socket.until(lambda messages: last_visibility(layout, messages[start:]) == "hidden", timeout=20)
    sent = [m for m in kernel_socket.messages[start:] if m["msg_type"] == "comm_msg"]
    assert len(sent) == 2 and {m["content"]["comm_id"] for m in sent} == {layout}, call


@pytest.mark.parametrize("iopub_limits", [{"iopub_msg_rate_limit": 40.0, "rate_limit_window": 1.0}])
async def test_a_hide_dropped_by_the_iopub_rate_limit_is_sent_again(kernel_socket):
    await kernel_socket.execute("display(gw.Form())")
    layout = await indicator_layout(kernel_socket)
    code = (
        "import threading, time\n"
        "spinner = gw.loading.indicator.widget()\n"
        "caller = threading.Thread(target=server.call, args=('slow', 0.5))\n"
        "caller.start()\n"
        "while not spinner.shown:\n"  # the show went out before the flood
        "    pass\n"
        "while caller.is_alive():\n"
        "    print('output', flush=True)\n"
        "end = time.monotonic() + 0.5\n"  # the hide is sent while the flood goes on
        "while time.monotonic() < end:\n"
        "    print('output', flush=True)\n"
    )
    start = len(kernel_socket.messages)
    await kernel_socket.execute(code)
    assert rate_exceeded(kernel_socket.messages[start:])
    assert last_visibility(layout, kernel_socket.messages[start:]) == "visible"  # the hide was dropped
    await kernel_socket.until(lambda messages: last_visibility(layout, messages[start:]) == "hidden", timeout=20)
