"""Concurrent calls of one session never lose each other's changes to ``server.session``: calls serialise
from their first use of it, calls that never touch it stay concurrent, a nested call shares its caller's view."""

from __future__ import annotations

import asyncio

import pytest

from helpers import BOTH_RUNTIMES, wait_until, write_notebook

SOURCE = """
import time
from greenroom import server

@server.callable
def attempt(answer):
    tries = server.session.get("tries", 0)   # read ...
    time.sleep(0.05)                          # ... think ...
    server.session["tries"] = tries + 1       # ... and write: concurrent calls used to lose updates
    return tries + 1

@server.callable
def tries():
    return server.session.get("tries", 0)

@server.callable
def hold_session(seconds):
    server.session["held"] = True
    time.sleep(seconds)
    return "held"

@server.callable
def add(a, b):
    return a + b

@server.callable
def put(key, value):
    server.session[key] = value

@server.callable
def outer():
    server.session["outer"] = 1
    server.call("put", "inner", 2)      # a nested call sees and changes the caller's session
    return dict(server.session)
"""


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "sessions.server.ipynb", SOURCE)
    return jp_root_dir


@BOTH_RUNTIMES
@pytest.mark.parametrize("greenroom_config", [{}, {"persistent": True, "workers": 4}], ids=["fresh", "persistent"])
async def test_concurrent_calls_of_one_session_lose_no_changes(client, host, greenroom_config):
    counts = await asyncio.gather(*(client.call("attempt", n) for n in range(12)))
    assert sorted(counts) == list(range(1, 13))
    assert await client.call("tries") == 12


@BOTH_RUNTIMES
async def test_calls_that_never_touch_the_session_do_not_wait_for_one_that_does(client, host):
    finished: list[str] = []

    async def hold() -> None:
        await client.call("hold_session", 2)
        finished.append("hold")

    async def adds() -> None:
        for _ in range(3):
            await client.call("add", 1, 2)
        finished.append("adds")

    held = asyncio.ensure_future(hold())
    await wait_until(lambda: host.sessions.held() == 1)  # the slow call holds the session now
    await asyncio.gather(adds(), held)
    assert finished == ["adds", "hold"]


@BOTH_RUNTIMES
async def test_a_nested_call_shares_its_callers_view_of_the_session(client, host):
    assert await client.call("outer") == {"outer": 1, "inner": 2}
    await client.call("put", "later", 3)
    assert await client.call("outer") == {"outer": 1, "inner": 2, "later": 3}
