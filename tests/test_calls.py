"""Calls through a real Jupyter server with the extension: values, errors, limits."""

from __future__ import annotations

import datetime
import traceback

import pytest

from greenroom import BlobMedia
from greenroom.errors import (
    ExecutionTerminatedError,
    NoServerFunctionError,
    RemoteError,
    SerializationError,
    TimeoutError,
)
from helpers import BOTH_RUNTIMES


async def test_call_returns_result(client):
    assert await client.call("add", 1, 2) == 3
    assert await client.call("custom_name") == "renamed"


@BOTH_RUNTIMES
async def test_values_round_trip(client):
    aware = datetime.datetime(2026, 5, 17, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    naive = datetime.datetime(2026, 5, 17, 9, 30, 15, 123)
    day = datetime.date(2026, 1, 31)
    values = [None, True, 7, 2**80, 1.5, float("inf"), "é ✓", [1, [2]], {"a": {"$t": 1}}, {"$x": 1}, aware, naive, day]
    args, kwargs = await client.call("echo", *values, media=BlobMedia("image/png", b"\x89PNG" + bytes(range(256))))
    assert args == values
    assert args[10].utcoffset() == datetime.timedelta(hours=5, minutes=30)
    assert args[11].tzinfo is None
    assert type(args[12]) is datetime.date
    assert kwargs["media"].get_bytes() == b"\x89PNG" + bytes(range(256))
    assert kwargs["media"].content_type == "image/png"


async def test_tuple_arrives_as_list(client):
    args, _ = await client.call("echo", (1, (2, 3)))
    assert args == [[1, [2, 3]]]


async def test_unknown_function_names_it(client):
    with pytest.raises(NoServerFunctionError, match="'nope'"):
        await client.call("nope")


@BOTH_RUNTIMES
async def test_builtin_exception_kept_with_frames_without_source(client):
    with pytest.raises(ZeroDivisionError) as caught:
        await client.call("divide", 1, 0)
    frames = caught.value.remote_frames
    assert [(f.notebook, f.cell, f.function) for f in frames] == [("calc.server.ipynb", 1, "divide")]
    assert frames[0].line == 22
    shown = "".join(traceback.format_exception(caught.value))
    assert "return a / b" not in shown and 'File "<server notebook calc.server.ipynb, cell 1>", line 22' in shown


@BOTH_RUNTIMES
async def test_unknown_exception_type_becomes_remote_error(client):
    with pytest.raises(RemoteError) as caught:
        await client.call("hidden_error")
    assert caught.value.type_name.endswith("HiddenError")
    assert caught.value.remote_message == "went wrong"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (({1, 2},), {}, r"args\[0\]: set"),
        (({"tags": {3}},), {}, r"args\[0\]\['tags'\]: set"),
        (({1: "x"},), {}, r"args\[0\]: dict key 1 is a int"),
        ((), {"when": object()}, r"kwargs\['when'\]: object"),
    ],
)
async def test_serialization_error_names_the_path(client, args, kwargs, message):
    with pytest.raises(SerializationError, match=message):
        await client.call("echo", *args, **kwargs)


async def test_cycle_is_refused(client):
    loop = []
    loop.append(loop)
    with pytest.raises(SerializationError, match=r"args\[0\]\[0\]: a cycle"):
        await client.call("echo", loop)


@BOTH_RUNTIMES
async def test_bad_return_value(client):
    with pytest.raises(SerializationError, match="return value: set"):
        await client.call("bad_return")


@BOTH_RUNTIMES
async def test_timeout_stops_the_call_and_next_call_works(client, host):
    with pytest.raises(TimeoutError, match="short_fuse"):
        await client.call("short_fuse")
    assert await client.call("add", 2, 2) == 4


@pytest.mark.parametrize("greenroom_config", [{"call_timeout": 0.5}])
async def test_global_timeout(client, host):
    with pytest.raises(TimeoutError):
        await client.call("slow", 10)
    assert await client.call("slow", 0) == 0


@BOTH_RUNTIMES
async def test_worker_exit_then_next_call_works(client, jp_fetch):
    with pytest.raises(ExecutionTerminatedError):
        await client.call("crash")
    assert await client.call("add", 1, 1) == 2
    response = await jp_fetch("api", "status")
    assert response.code == 200


@BOTH_RUNTIMES
async def test_server_to_server_call(client):
    assert await client.call("nested", 2, 3) == 50


@BOTH_RUNTIMES
async def test_context_names_the_caller(client):
    assert await client.call("whoami") == ["user", "whoami"]


@BOTH_RUNTIMES
async def test_async_server_function(client):
    assert await client.call("later", 21) == 42


async def test_chatty_output_is_bounded_and_not_sent(client, host):
    assert await client.call("chatty") == "done"


async def test_bad_names_rejected_before_sending(client):
    with pytest.raises(TypeError):
        await client.call(42)
    with pytest.raises(ValueError):
        await client.call("x" * 1000)


@BOTH_RUNTIMES
async def test_concurrent_calls_are_not_mixed_up(client):
    import asyncio

    results = await asyncio.gather(*(client.call("add", i, 1000) for i in range(30)))
    assert results == [i + 1000 for i in range(30)]


@BOTH_RUNTIMES
async def test_timeout_also_stops_the_server_to_server_calls_it_made(client, host):
    from helpers import wait_until

    with pytest.raises(TimeoutError, match="impatient"):
        await client.call("impatient")
    await wait_until(lambda: host.reloader.serving.busy == 0, timeout=5)  # the nested slow(30) was stopped too


async def test_syntax_error_sends_no_source_line_or_host_path(client):
    with pytest.raises(SyntaxError) as caught:
        await client.call("broken_source")
    assert caught.value.text is None and caught.value.filename is None
    assert "SECRET" not in repr(caught.value.args) and "/srv/secret" not in repr(caught.value.args)


async def test_concurrent_reloads_share_one_template(client, host):
    import asyncio

    first = host.reloader.next_number
    await asyncio.gather(*(client.request("reload") for _ in range(10)))
    assert host.reloader.next_number - first <= 2


async def test_closing_the_connection_fails_calls_in_flight(client, host):
    import asyncio

    from greenroom.errors import ConnectionError
    from helpers import wait_until

    call = asyncio.ensure_future(client.call("slow", 30))
    await wait_until(lambda: host.reloader.serving.busy == 1)
    await asyncio.to_thread(client.connection.close)
    with pytest.raises(ConnectionError, match="was closed"):
        await asyncio.wait_for(call, 5)
