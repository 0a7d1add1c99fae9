"""State between calls: fresh (default) vs persistent workers, and server.session."""

from __future__ import annotations

import pytest

from helpers import BOTH_RUNTIMES, Client


@BOTH_RUNTIMES
async def test_fresh_state_wipes_globals(client):
    assert [await client.call("bump") for _ in range(3)] == [1, 1, 1]


@BOTH_RUNTIMES
@pytest.mark.parametrize("greenroom_config", [{"persistent": True, "workers": 1}])
async def test_persistent_keeps_globals(client, greenroom_config):
    assert [await client.call("bump") for _ in range(3)] == [1, 2, 3]


@BOTH_RUNTIMES
@pytest.mark.parametrize("greenroom_config", [{}, {"persistent": True}], ids=["fresh", "persistent"])
async def test_session_kept_per_connection(client, host, base_url, jp_serverapp, greenroom_config):
    await client.call("session_put", "name", "ada")
    assert await client.call("session_get", "name") == "ada"
    other = Client(base_url, {"Authorization": f"token {jp_serverapp.identity_provider.token}"})
    try:
        assert await other.call("session_get", "name") is None
    finally:
        other.close()
    assert await client.call("session_get", "name") == "ada"


@BOTH_RUNTIMES
async def test_session_values_follow_the_argument_rules(client):
    await client.call("session_put", "name", "ada")
    with pytest.raises(client.server.SerializationError, match=r"session\['bad'\]: set"):
        await client.call("session_poison")
    assert await client.call("session_get", "name") == "ada"
    assert await client.call("session_get", "bad") is None
