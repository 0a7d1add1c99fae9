"""Jupyter's Authorizer decides which of the server's users may call (``execute``) and read status (``read``)."""

from __future__ import annotations

import getpass
import json

import pytest
from jupyter_server.auth.authorizer import AllowAllAuthorizer, Authorizer
from tornado.httpclient import HTTPClientError

from greenroom.errors import ConnectionError as GreenroomConnectionError
from greenroom.server_ext.identity import server_user
from helpers import Client


class ReadOnlyAuthorizer(Authorizer):
    """A deployment's read-only users: they may look, never execute."""

    def is_authorized(self, handler, user, action, resource):  # type: ignore[no-untyped-def]
        return action == "read"


class NoGreenroomAuthorizer(Authorizer):
    """Everything but greenroom."""

    def is_authorized(self, handler, user, action, resource):  # type: ignore[no-untyped-def]
        return resource != "greenroom"


@pytest.fixture
def authorizer_class() -> type[Authorizer]:
    return ReadOnlyAuthorizer


@pytest.fixture
def jp_server_config(jp_server_config, authorizer_class):
    jp_server_config.ServerApp.authorizer_class = authorizer_class
    return jp_server_config


async def test_a_read_only_user_cannot_call_but_can_read_status(host, base_url, jp_serverapp, jp_fetch):
    client = Client(base_url, {"Authorization": f"token {jp_serverapp.identity_provider.token}"})
    try:
        with pytest.raises(GreenroomConnectionError, match="HTTP 403 .*: greenroom: user .* may not call"):
            await client.call("add", 1, 2)
    finally:
        client.close()
    status = json.loads((await jp_fetch("greenroom", "api", "status")).body)
    assert status["serving"]["functions"]  # read is allowed


@pytest.mark.parametrize("authorizer_class", [NoGreenroomAuthorizer])
async def test_a_user_denied_greenroom_cannot_read_status(host, jp_fetch):
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("greenroom", "api", "status")
    assert refused.value.code == 403


async def test_kernels_keep_their_own_credentials_whatever_the_authorizer(start_kernel):
    """Kernels the server started call with their greenroom tokens: the Authorizer judged whoever started them."""
    kernel = await start_kernel()
    assert (await kernel.run("from greenroom import server\nprint(server.call('add', 1, 2))")).strip() == "3"


@pytest.mark.parametrize("authorizer_class", [AllowAllAuthorizer])
async def test_the_server_user_and_its_kernels_call_as_that_user(host, base_url, jp_serverapp, start_kernel):
    kernel = await start_kernel()
    shown = await kernel.run("from greenroom import server\nprint(server.call('user_name'))")
    assert shown.strip() == getpass.getuser()  # the account the server runs as
    client = Client(base_url, {"Authorization": f"token {jp_serverapp.identity_provider.token}"})
    try:
        assert await client.call("user_name")  # the user the server's identity provider names
    finally:
        client.close()


def test_a_hub_single_user_servers_kernels_are_its_hub_user():
    assert server_user({"JUPYTERHUB_USER": "alice"}).name == "alice"
    assert server_user({}).name == getpass.getuser()
