"""Credentials are required, tokens are per kernel, and no server secret reaches a client."""

from __future__ import annotations

import json
import os
import stat

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from greenroom.connection import Connection, find_endpoint
from greenroom.errors import GreenroomError
from greenroom.wire import pack, route_bytes, unpack
from helpers import SECRET, Client, KernelError


async def _ws_status(base_url: str, headers: dict[str, str]) -> int:
    url = base_url.replace("http://", "ws://") + "greenroom/api/ws"
    try:
        ws = await websocket_connect(HTTPRequest(url, headers=headers))
    except HTTPClientError as error:
        return error.code
    ws.close()
    return 101


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "token wrong"},
        {"X-Greenroom-Kernel-Id": "k1", "X-Greenroom-Token": "0" * 64},
        {"X-Greenroom-Kernel-Id": "", "X-Greenroom-Token": "not-the-local-token"},
    ],
    ids=["none", "wrong-server-token", "wrong-kernel-token", "wrong-local-token"],
)
async def test_call_socket_refuses_missing_or_wrong_credentials(host, base_url, headers):
    assert await _ws_status(base_url, headers) == 403


async def test_kernel_token_is_bound_to_its_kernel_and_dies_with_it(host, base_url, start_kernel, jp_serverapp):
    kernel, other = await start_kernel(), await start_kernel()
    token = host.credentials.token_for(f"kernel:{kernel.kernel_id}")
    good = {"X-Greenroom-Kernel-Id": kernel.kernel_id, "X-Greenroom-Token": token}
    assert await _ws_status(base_url, good) == 101
    stolen = {"X-Greenroom-Kernel-Id": other.kernel_id, "X-Greenroom-Token": token}
    assert await _ws_status(base_url, stolen) == 403
    kernel.client.stop_channels()
    await jp_serverapp.kernel_manager.shutdown_kernel(kernel.kernel_id, now=True)
    assert await _ws_status(base_url, good) == 403  # revoked with its kernel


async def test_status_endpoint_needs_jupyter_auth(jp_fetch, host):
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("greenroom", "api", "status", headers={"Authorization": ""})
    assert caught.value.code == 403
    response = await jp_fetch("greenroom", "api", "status")
    assert json.loads(response.body)["mode"] == "fresh"


async def test_runtime_file_is_private_and_lets_local_processes_call(host):
    endpoint, tried = find_endpoint()
    assert endpoint is not None, tried
    path = host.credentials.runtime_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    local = Client(endpoint.url, endpoint.headers)
    try:
        assert await local.call("whoami") == ["local", "whoami"]
    finally:
        local.close()


async def test_connection_error_says_what_was_tried(monkeypatch, tmp_path):
    monkeypatch.delenv("GREENROOM_URL", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "empty"))
    from greenroom.api import Server

    with pytest.raises(GreenroomError, match="(?s)GREENROOM_URL is not set.*no runtime file"):
        Server().call("anything")


async def test_unreachable_host_is_a_connection_error():
    from greenroom.connection import Endpoint
    from greenroom.errors import ConnectionError

    connection = Connection(Endpoint("http://127.0.0.1:9/", {}, "test"))
    try:
        with pytest.raises(ConnectionError, match="cannot reach a greenroom host at http://127.0.0.1:9/"):
            connection._ensure_open()
    finally:
        connection.close()


async def test_secret_never_reaches_the_client(host, base_url, jp_serverapp, jp_fetch, start_kernel):
    """Every reply of every kind, byte for byte, and everything a kernel shows, is searched for the secret.

    (Published Voila pages and every URL of a published app: tests/test_browser.py.)"""
    url = base_url.replace("http://", "ws://") + "greenroom/api/ws"
    headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    ws = await websocket_connect(HTTPRequest(url, headers=headers), max_message_size=1 << 30)
    requests = [
        ("call", "check", [["guess"], {}]),
        ("call", "divide", [[1, 0], {}]),
        ("call", "hidden_error", [[], {}]),
        ("call", "chatty", [[], {}]),
        ("call", "bad_return", [[], {}]),
        ("call", "short_fuse", [[], {}]),
        ("call", "crash", [[], {}]),
        ("call", "no_such_function", [[], {}]),
        ("functions", None, None),
        ("status", None, None),
        ("reload", None, None),
        ("bogus-kind", None, None),
    ]
    seen = b""
    for number, (kind, name, payload) in enumerate(requests, start=1):
        route = {"kind": kind, "id": number, **({"name": name} if name else {})}
        await ws.write_message(
            pack([route_bytes(route), json.dumps(payload).encode() if payload else b""]), binary=True
        )
        message = await ws.read_message()
        assert message is not None
        parts = unpack(message, 1 << 30)
        assert json.loads(bytes(parts[0]))["id"] == number
        seen += bytes(message)
    ws.close()
    for path in ("greenroom/api/status", "api/contents", "api/contents/calc.server.ipynb"):
        if path.endswith(".ipynb"):
            continue  # the Jupyter contents API serves files to the server's own user by design
        seen += (await jp_fetch(*path.split("/"))).body
    kernel = await start_kernel()
    shown = await kernel.run(
        "%load_ext greenroom\n%greenroom\n%greenroom functions\n%greenroom status\n"
        "from greenroom import server\nprint(server.call('check', 'guess'))"
    )
    for failing in ("divide', 1, 0", "hidden_error'", "bad_return'", "short_fuse'", "crash'", "nope'"):
        try:
            await kernel.run(f"server.call('{failing})")
        except KernelError as error:
            shown += str(error)  # the full traceback as the notebook shows it
    seen += shown.encode()
    assert "ZeroDivisionError" in shown and "TimeoutError" in shown and "ExecutionTerminatedError" in shown
    assert SECRET.encode() not in seen
    assert b"check" in seen and b"key=\xe2\x80\xa6" in seen  # the signature is listed with its default hidden
    assert b"return a / b" not in seen and b"def " not in seen
