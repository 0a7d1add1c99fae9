"""Weaknesses an attack on a running host found, each reproduced here: URLMedia that reads the server's
files, forced reloads by anyone, messages one part too long for the worker, tokens of dead kernels."""

from __future__ import annotations

import asyncio

import pytest

from greenroom import BlobMedia, URLMedia
from greenroom.codec import MAX_BUFFERS
from greenroom.errors import GreenroomError, SerializationError
from greenroom.server_ext.identity import Caller
from greenroom.wire import pack, route_bytes
from helpers import SECRET, write_notebook

SOURCE = f'''
from greenroom import server
SECRET = "{SECRET}"
COUNT = 0

@server.callable
def shout(doc):
    return doc.get_bytes().upper().decode()

@server.callable
def fetch(doc):
    return doc.fetch().decode()

@server.callable
def kind_of(doc):
    return [type(doc).__name__, doc.from_client]

@server.callable
def bump():
    global COUNT
    COUNT += 1
    return COUNT

@server.callable
def count(*media):
    return len(media)

@server.callable
def keep(media):
    server.session["kept"] = media
'''


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "hard.server.ipynb", SOURCE)
    return jp_root_dir


@pytest.mark.parametrize("url", ["file://{root}/hard.server.ipynb", "file:///proc/self/environ"])
async def test_a_url_a_client_sent_is_not_fetched_by_the_server(client, host, url):
    media = URLMedia(url.format(root=host.root))
    with pytest.raises(PermissionError, match="came from a client") as refused:
        await client.call("shout", media)
    assert SECRET not in str(refused.value) and "GREENROOM_RUNTIME_KEY" not in str(refused.value)
    with pytest.raises(PermissionError, match="http and https URLs only"):
        await client.call("fetch", media)  # asked for explicitly: still never a local file
    assert await client.call("kind_of", media) == ["URLMedia", True]


async def test_a_server_function_may_fetch_a_client_url_over_http_when_it_asks(client, base_url):
    fetched = await client.call("fetch", URLMedia(f"{base_url}api"))
    assert '"version"' in fetched


def test_url_media_made_by_server_code_fetches_http_only():
    with pytest.raises(PermissionError, match="http and https URLs only"):
        URLMedia("file:///etc/hostname").get_bytes()
    with pytest.raises(PermissionError, match="http and https URLs only"):
        URLMedia("ftp://127.0.0.1/x").fetch()
    assert URLMedia("https://example.org/a") != BlobMedia("text/plain", b"a")  # comparing never fetches


async def test_a_forced_reload_is_for_the_owner_and_rate_limited(client, host):
    visitor = Caller("kernel", "visitor", "kernel:visitor", owner=False)
    with pytest.raises(PermissionError, match="owner"):
        (await host.reload(visitor)).result()
    await client.request("reload")  # the Jupyter token's holder is the owner
    with pytest.raises(GreenroomError, match="try again in"):
        await client.request("reload")
    shared = await asyncio.gather(*(host.reload(Caller("local", "x", "local:x", owner=True)) for _ in range(3)))
    assert sum(reply.ok for reply in shared) in (0, 3)  # refused together (too soon) or one reload shared by all


@pytest.mark.parametrize("greenroom_config", [{"persistent": True, "workers": 1, "max_workers": 1}])
async def test_the_most_parts_a_client_may_send_leave_room_for_the_session(client, base_url, jp_serverapp):
    assert await client.call("bump") == 1
    await client.call("keep", BlobMedia("text/plain", b"in the session"))
    assert await client.call("count", *[BlobMedia("a/b", b"x")] * MAX_BUFFERS) == MAX_BUFFERS
    with pytest.raises(SerializationError, match=f"at most {MAX_BUFFERS}"):
        await client.call("count", *[BlobMedia("a/b", b"x")] * (MAX_BUFFERS + 1))
    assert await client.call("bump") == 2  # the same worker, its state intact


@pytest.mark.parametrize("greenroom_config", [{"persistent": True, "workers": 1, "max_workers": 1}])
async def test_a_raw_message_of_the_most_parts_does_not_kill_the_worker(client, host, base_url, jp_serverapp):
    from test_hostile import open_socket, reply_to

    assert await client.call("bump") == 1
    await client.call("keep", BlobMedia("text/plain", b"in the session"))
    ws = await open_socket(base_url, jp_serverapp.identity_provider.token)
    buffers = [b"x"] * 1022  # 1,024 parts with the route and the payload: the most the host accepts
    payload = b"[[" + b",".join(b'{"$media":[%d,"a/b",null]}' % i for i in range(1022)) + b"],{}]"
    route = await reply_to(ws, pack([route_bytes({"kind": "call", "id": 1, "name": "count"}), payload, *buffers]))
    ws.close()
    assert route is not None and route["ok"], route
    assert await client.call("bump") == 2
