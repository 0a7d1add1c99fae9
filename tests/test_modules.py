"""Modules next to the app: importable from server notebooks and from client kernels alike."""

from __future__ import annotations

import pytest

from helpers import BOTH_RUNTIMES, KernelError, write_notebook

SHARED_PY = "GREETING = 'hello'\n\ndef shout(text):\n    return text.upper() + '!'\n"
HELPER_NB = "%config Application.log_level = 'WARN'\ndef double(x):\n    return 2 * x\n"
SERVER = (
    "from greenroom import server\nimport shared, nbhelper\n\n"
    "@server.callable\ndef greet(name):\n    return shared.shout(f'{shared.GREETING} {name}') + str(nbhelper.double(2))\n"
)


@pytest.fixture
def server_files(jp_root_dir):
    (jp_root_dir / "shared.py").write_text(SHARED_PY)
    write_notebook(jp_root_dir / "nbhelper.ipynb", HELPER_NB)
    write_notebook(jp_root_dir / "app.server.ipynb", SERVER)
    return jp_root_dir


@BOTH_RUNTIMES
async def test_server_notebook_imports_py_and_ipynb_modules(client):
    assert await client.call("greet", "ada") == "HELLO ADA!4"


async def test_client_imports_the_same_modules(start_kernel):
    kernel = await start_kernel()
    out = await kernel.run(
        "%load_ext greenroom\nimport shared, nbhelper\nprint(shared.shout('hi'), nbhelper.double(21))"
    )
    assert out.strip() == "HI! 42"
    with pytest.raises(KernelError, match="app.server.ipynb is a server notebook"):
        await kernel.run("import app")
