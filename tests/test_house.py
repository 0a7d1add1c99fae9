"""The host outside any application: built from a HostConfig, run on a bare event loop, its runtime socket
guarded, and its configuration in one frozen place that matches the GreenroomApp options."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from dataclasses import fields

import pytest

from greenroom.protocol import Kind, Reply, runtime_message_limit
from greenroom.server_ext.application import GreenroomApp
from greenroom.server_ext.config import HostConfig
from greenroom.server_ext.host import Host
from greenroom.server_ext.identity import Caller
from greenroom.wire import pack, route_bytes
from helpers import CALC_SOURCE, write_notebook


class Records(logging.Handler):
    """Keeps the messages logged to one logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def bare_host(tmp_path, jp_asyncio_loop):
    """A Host on the test's own loop: no Jupyter server, no kernels, no handlers."""
    write_notebook(tmp_path / "calc.server.ipynb", CALC_SOURCE)
    host = Host(HostConfig(prefork=1, reload_poll_interval=0.2), str(tmp_path), logging.getLogger("bare"))
    records = Records()
    host.log.addHandler(records)
    host.records = records  # type: ignore[attr-defined]
    jp_asyncio_loop.run_until_complete(asyncio.wait_for(host.start(), 60))
    yield host
    jp_asyncio_loop.run_until_complete(asyncio.wait_for(host.stop(), 30))
    host.log.removeHandler(records)


def runtime_alive(host: Host) -> list[int]:
    pids = []
    for generation in host.reloader.generations.values():
        process = generation.process
        if process is not None and process.returncode is None:
            pids.append(process.pid)
    return pids


async def test_a_host_needs_no_application(bare_host):
    caller = Caller("local", "test", "local:test")
    reply = await bare_host.call(caller, "add", b"[[2,3],{}]", [])
    assert isinstance(reply, Reply) and reply.result() == 5
    assert bare_host.log.name == "bare.greenroom"
    pids = runtime_alive(bare_host)
    assert pids
    await bare_host.stop()
    assert runtime_alive(bare_host) == [] and not os.path.exists(bare_host.socket_dir)


async def test_a_bad_hello_on_the_runtime_socket_is_refused_and_logged(bare_host):
    reader, writer = await asyncio.open_unix_connection(bare_host.listener.path)
    hello = {"kind": Kind.HELLO, "role": "worker", "pid": 4242, "generation": 1, "key": "not the key"}
    writer.write(pack([route_bytes(hello), b""]))
    assert await reader.read() == b""  # closed by the host
    writer.close()
    assert any(
        "worker" in message and "4242" in message and "bad hello" in message for message in bare_host.records.messages
    )
    assert (await bare_host.call(Caller("local", "t", "local:t"), "add", b"[[1,1],{}]", [])).result() == 2


async def test_an_oversized_message_from_a_runtime_process_drops_only_its_link_and_is_logged(bare_host):
    number = bare_host.reloader.serving.number
    reader, writer = await asyncio.open_unix_connection(bare_host.listener.path)
    hello = {
        "kind": Kind.HELLO,
        "role": "worker",
        "pid": 4343,
        "generation": number,
        "key": bare_host.reloader.place.key,
    }
    writer.write(pack([route_bytes(hello), b""]))
    too_large = runtime_message_limit(bare_host.config.max_message_size)  # with the header part: one too many
    writer.write(struct.pack("!IQQ", 2, 10, too_large))
    assert await reader.read() == b""
    writer.close()
    assert any("4343" in message and "larger than the limit" in message for message in bare_host.records.messages)
    assert (await bare_host.call(Caller("local", "t", "local:t"), "add", b"[[1,1],{}]", [])).result() == 2


def test_host_config_refuses_bad_values_and_normalises_worker_counts():
    with pytest.raises(ValueError, match="GreenroomApp.call_timeout"):
        HostConfig(call_timeout=0)
    with pytest.raises(ValueError, match="GreenroomApp.max_message_size"):
        HostConfig(max_message_size=0)
    config = HostConfig(prefork=0, workers=5, max_workers=2, server_notebooks=["a.ipynb"])  # type: ignore[arg-type]
    assert (config.prefork, config.workers, config.max_workers) == (1, 5, 5)
    assert config.server_notebooks == ("a.ipynb",) and config.python
    with pytest.raises(AttributeError):
        config.persistent = True  # type: ignore[misc]


def test_every_option_is_a_documented_trait_and_a_host_config_field():
    traits = GreenroomApp.class_own_traits(config=True)
    assert {field.name for field in fields(HostConfig)} == set(traits)
    assert all(trait.help for trait in traits.values())
    defaults = HostConfig.from_options(GreenroomApp())
    assert defaults == HostConfig()
