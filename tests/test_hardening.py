"""Weaknesses an attack on a running host found, each reproduced here: URLMedia that reads the server's
files, forced reloads by anyone, messages one part too long for the worker, tokens of dead kernels."""

from __future__ import annotations

import asyncio
import json

import pytest

from greenroom import BlobMedia, URLMedia
from greenroom.codec import MAX_BUFFERS, count_values, decode_arguments
from greenroom.errors import GreenroomError, SerializationError
from greenroom.server_ext.identity import Caller
from greenroom.wire import pack, route_bytes, unpack
from helpers import SECRET, Client, wait_until, write_notebook

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

@server.callable
def slow(seconds):
    import time
    time.sleep(seconds)

@server.callable
def hold(media):
    import time
    time.sleep(1)
    return len(media.get_bytes())
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


def test_a_payload_of_millions_of_values_is_refused_before_decoding():
    flood = b"[[" + b"[]," * 2_000_000 + b"[]],{}]"  # about 6 MiB: 2 million empty lists
    with pytest.raises(SerializationError, match="values, more than the 1,000,000"):
        decode_arguments(flood, [], max_values=1_000_000)
    text = json.dumps([[",[{" * 400_000], {}]).encode()  # brackets and commas inside a string are one value
    assert decode_arguments(text, [], max_values=10) == ([",[{" * 400_000], {})
    assert count_values(b'[1, "a,b", {"k": [2, 3]}]') == 6  # 3 containers, 3 commas outside the string


@pytest.mark.parametrize("greenroom_config", [{"persistent": True, "workers": 4, "max_workers": 4}])
async def test_one_session_holds_at_most_its_share_of_the_workers(host, base_url, jp_serverapp):
    """An attacker's slow calls take half the workers; ten other clients' calls all finish before any of them."""
    headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    attacker, honest = Client(base_url, headers), [Client(base_url, headers) for _ in range(10)]
    finished: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()

    async def attack() -> None:
        await attacker.call("slow", 2)
        finished.append(("attacker", loop.time()))

    async def call_honestly(client: Client) -> None:
        for _ in range(20):
            assert await client.call("bump") >= 1
        finished.append(("honest", loop.time()))

    try:
        attacks = [asyncio.ensure_future(attack()) for _ in range(4)]
        await wait_until(lambda: host.reloader.serving.busy == 2)  # its share: 2 of 4, the rest of its calls wait
        await asyncio.gather(*(call_honestly(client) for client in honest))
        await asyncio.gather(*attacks)
    finally:
        for client in (attacker, *honest):
            client.close()
    order = [who for who, _ in sorted(finished, key=lambda entry: entry[1])]
    assert order == ["honest"] * 10 + ["attacker"] * 4


async def test_heavy_payloads_are_refused_without_taking_workers_for_long(client, host, base_url, jp_serverapp):
    from test_hostile import open_socket

    flood = b"[[[" + b"[]," * 3_000_000 + b"[]]],{}]"  # about 9 MiB of JSON: 3 million values
    ws = await open_socket(base_url, jp_serverapp.identity_provider.token)
    for call_id in range(8):  # as many at once as there are workers
        await ws.write_message(
            pack([route_bytes({"kind": "call", "id": call_id, "name": "count"}), flood]), binary=True
        )
    for _ in range(8):
        parts = unpack(await ws.read_message(), 1 << 30)
        assert json.loads(bytes(parts[0]))["ok"] is False
        assert "values, more than the 1,000,000" in json.loads(bytes(parts[1]))["message"]
    ws.close()
    with pytest.raises(SerializationError, match="max_payload_size"):
        await client.call("count", "x" * (17 * 1024 * 1024))
    assert await client.call("bump") == 1


@pytest.mark.parametrize("greenroom_config", [{"max_session_bytes": 1_000_000}])
async def test_the_bytes_a_session_has_in_flight_are_capped(client, host):
    blob = BlobMedia("application/octet-stream", b"x" * 400_000)
    calls = [asyncio.ensure_future(client.call("hold", blob)) for _ in range(2)]
    await wait_until(lambda: sum(host.in_flight_bytes.values()) >= 800_000)
    with pytest.raises(GreenroomError, match="max_session_bytes"):
        await client.call("hold", blob)
    assert await asyncio.gather(*calls) == [400_000, 400_000]
