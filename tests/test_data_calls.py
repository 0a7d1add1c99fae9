"""Arrays and tables through a real host and real workers: as arguments, results, session values and
exception arguments; a 100 MB DataFrame from a real kernel and back; hostile frames leave the host serving."""

from __future__ import annotations

import asyncio
import functools
import json

import numpy as np
import pandas as pd
import pytest

from greenroom.errors import SerializationError, WireError
from helpers import KernelRunner, write_notebook

SOURCE = """
import numpy as np
import pandas as pd
from greenroom import server

_HIDDEN_LABELS = np.random.default_rng(7).integers(0, 2, size=1000)   # never leaves the server

@server.callable
def score(predictions):
    if not isinstance(predictions, np.ndarray) or predictions.shape != _HIDDEN_LABELS.shape:
        raise ValueError(f"send {_HIDDEN_LABELS.size} predictions as a numpy array")
    return float((predictions == _HIDDEN_LABELS).mean())

@server.callable
def describe(value):
    return {"type": type(value).__name__, "dtype": str(getattr(value, "dtype", "")), "value": value}

@server.callable
def table(rows):
    return pd.DataFrame({"n": np.arange(rows), "square": np.arange(rows) ** 2,
                         "kind": pd.Categorical(["even", "odd"] * (rows // 2))})

@server.callable
def remember(name, value):
    server.session[name] = value

@server.callable
def recall(name):
    return server.session[name]

@server.callable
def refuse(limit):
    raise ValueError("too large", np.array([limit, limit * 2]))

@server.callable
def objects():
    return pd.DataFrame({"answer": ["secret-answer-key", object()]})

@server.callable
def add(a, b):
    return a + b
"""


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "data.server.ipynb", SOURCE)
    return jp_root_dir


async def test_a_predictions_array_is_scored_against_a_hidden_test_set(client):
    labels = np.random.default_rng(7).integers(0, 2, size=1000)
    assert await client.call("score", labels) == 1.0
    assert await client.call("score", 1 - labels) == 0.0
    with pytest.raises(ValueError, match="send 1000 predictions"):
        await client.call("score", labels[:10])


async def test_arrays_and_frames_cross_as_arguments_results_and_session_values(client):
    array = np.arange(12, dtype=np.int16).reshape(3, 4).T
    described = await client.call("describe", array)
    assert described["type"] == "ndarray" and described["dtype"] == "int16"
    np.testing.assert_array_equal(described["value"], array)
    frame = await client.call("table", 6)
    assert list(frame.columns) == ["n", "square", "kind"] and frame["square"].tolist() == [0, 1, 4, 9, 16, 25]
    assert isinstance(frame["kind"].dtype, pd.CategoricalDtype)
    await client.call("remember", "frame", frame)
    pd.testing.assert_frame_equal(await client.call("recall", "frame"), frame)
    assert (await client.call("describe", np.float32(2.5)))["value"] == 2.5


async def test_an_exception_keeps_its_array_arguments(client):
    with pytest.raises(ValueError) as raised:
        await client.call("refuse", 5)
    assert raised.value.args[0] == "too large" and raised.value.args[1].tolist() == [5, 10]


async def test_a_result_that_is_not_data_is_refused_without_quoting_it(client):
    with pytest.raises(SerializationError, match=r"return value\['answer'\]: object column") as refused:
        await client.call("objects")
    assert "secret-answer-key" not in str(refused.value)


async def test_a_hostile_array_frame_is_refused_and_the_host_keeps_serving(client):
    payload = json.dumps([[{"$nd": [0, "<f8", [2**40], False]}], {}]).encode()
    send = functools.partial(client.server._transport.request, "call", "describe", payload, [b"\0" * 8])
    reply = await asyncio.get_running_loop().run_in_executor(client.threads, send)
    with pytest.raises(WireError, match="needs"):
        reply.result()
    assert await client.call("add", 1, 2) == 3


async def test_a_100_mb_dataframe_goes_from_a_kernel_through_the_host_and_back(start_kernel):
    kernel: KernelRunner = await start_kernel()
    out = await kernel.run(
        "import numpy as np, pandas as pd, time\n"
        "from greenroom import server\n"
        "frame = pd.DataFrame({f'c{i}': np.random.default_rng(i).random(1_310_720) for i in range(10)})\n"
        "start = time.perf_counter()\n"
        "back = server.call('describe', frame)['value']\n"
        "elapsed = time.perf_counter() - start\n"
        "pd.testing.assert_frame_equal(back, frame)\n"
        "print(frame.memory_usage(index=False).sum() // 2**20, 'MiB', round(elapsed, 2), 's')",
        timeout=120,
    )
    assert out.split()[:2] == ["100", "MiB"], out
    print(f"100 MiB DataFrame through the host and back: {out.split()[2]} s")
