"""What a newcomer trips over first gets the most help."""

from __future__ import annotations

import pytest

from greenroom.errors import NoServerFunctionError


@pytest.fixture
def server_files(jp_root_dir):
    (jp_root_dir / "notes.ipynb").write_text("{}", encoding="utf-8")  # a client notebook, no server notebook
    return jp_root_dir


async def test_no_server_notebook_under_the_root_is_said_plainly(client, host):
    with pytest.raises(NoServerFunctionError) as missing:
        await client.call("guess", 5)
    message = str(missing.value)
    assert "no server notebook (*.server.ipynb) was found under the server's root folder" in message
    assert host.root not in message  # the server's folder on disk is not revealed
