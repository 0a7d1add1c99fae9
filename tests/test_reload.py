"""Server notebooks change on disk: the next call runs the new code; broken saves keep the last good one."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from greenroom.errors import GreenroomError, NoServerFunctionError
from helpers import wait_until, write_notebook

V1 = "from greenroom import server\n@server.callable\ndef version():\n    return 1\n"
V2 = "from greenroom import server\n@server.callable\ndef version():\n    return 2\n"
BROKEN_SYNTAX = "from greenroom import server\n\n@server.callable\ndef version(:\n    return 3\n"
BROKEN_RUN = "from greenroom import server\nx = 1\nraise KeyError('boom at load')\n"


@pytest.fixture
def server_files(jp_root_dir):
    write_notebook(jp_root_dir / "app.server.ipynb", V1)
    return jp_root_dir


async def test_reload_on_save(client, host):
    assert await client.call("version") == 1
    write_notebook(host.root + "/app.server.ipynb", V2)
    assert await client.call("version") == 2


async def test_broken_save_keeps_last_good_version_and_reports_where(client, host):
    assert await client.call("version") == 1
    write_notebook(host.root + "/app.server.ipynb", "x = 1", BROKEN_SYNTAX)
    assert await client.call("version") == 1
    serving = (await client.request("status"))["serving"]
    (error,) = serving["load_errors"]
    assert (error["notebook"], error["cell"], error["line"], error["type"]) == ("app.server.ipynb", 2, 4, "SyntaxError")
    assert serving["older_versions"] == ["app.server.ipynb"]
    write_notebook(host.root + "/app.server.ipynb", BROKEN_RUN)
    assert await client.call("version") == 1
    serving = (await client.request("status"))["serving"]
    (error,) = serving["load_errors"]
    assert (error["cell"], error["line"], error["type"]) == (1, 3, "KeyError")
    write_notebook(host.root + "/app.server.ipynb", V2)
    assert await client.call("version") == 2
    serving = (await client.request("status"))["serving"]
    assert serving["load_errors"] == [] and serving["older_versions"] == []


async def test_invalid_json_keeps_last_good_version(client, host):
    assert await client.call("version") == 1
    await asyncio.to_thread(Path(host.root, "app.server.ipynb").write_text, "{ not json", encoding="utf-8")
    assert await client.call("version") == 1
    serving = (await client.request("status"))["serving"]
    assert serving["load_errors"][0]["notebook"] == "app.server.ipynb"
    assert serving["load_errors"][0]["message"].startswith("cannot read the notebook: "), serving["load_errors"]
    assert serving["older_versions"] == ["app.server.ipynb"]


async def test_a_notebook_nbformat_reads_but_whose_cells_are_odd_is_reported_while_the_last_good_serves(client, host):
    assert await client.call("version") == 1
    document = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [{"cell_type": "code", "metadata": {"tags": 5}, "source": V2, "outputs": [], "execution_count": None}],
    }
    path = Path(host.root, "app.server.ipynb")
    await asyncio.to_thread(path.write_text, json.dumps(document), encoding="utf-8")
    assert await client.call("version") == 1
    serving = (await client.request("status"))["serving"]
    assert serving["load_errors"][0]["message"].startswith("cannot read the notebook: "), serving["load_errors"]
    await asyncio.to_thread(write_notebook, path, V2)
    assert await client.call("version") == 2  # and the next good save loads


async def test_a_reload_that_fails_unexpectedly_is_tried_again(client, host, monkeypatch):
    import greenroom.server_ext.reloader as reloader_module

    assert await client.call("version") == 1
    read_notebooks, failures = reloader_module.read_notebooks, []

    def failing_once(root, notebooks):
        if not failures:
            failures.append(root)
            raise RuntimeError("the disk went away")
        return read_notebooks(root, notebooks)

    monkeypatch.setattr(reloader_module, "read_notebooks", failing_once)
    await asyncio.to_thread(write_notebook, Path(host.root, "app.server.ipynb"), V2)
    outcomes = []
    for _ in range(2):  # the first may fail (unless the file watcher met the failure first), never the next
        try:
            outcomes.append(await client.call("version"))
        except GreenroomError as error:
            outcomes.append(type(error).__name__)
    assert failures and outcomes[-1] == 2, outcomes


async def test_the_runtime_gets_code_cells_and_never_imports_nbformat(client, host):
    # The host parses the notebooks: nbformat's import costs a template a second and a fifth of its memory.
    source = "import sys\nfrom greenroom import server\n@server.callable\ndef loaded():\n    return 'nbformat' in sys.modules\n"
    await asyncio.to_thread(write_notebook, Path(host.root, "app.server.ipynb"), "# skipped", source)
    assert await client.call("loaded") is False


async def test_a_broken_notebook_holds_back_only_itself(client, host):
    assert await client.call("version") == 1
    write_notebook(host.root + "/app.server.ipynb", BROKEN_SYNTAX)
    assert await client.call("version") == 1  # its last good version serves
    write_notebook(host.root + "/slow.server.ipynb", V2.replace("def version", "def slow_version"))
    await wait_until(lambda: "slow.server.ipynb" in host.reloader.notebooks, timeout=10)
    assert await client.call("slow_version") == 2  # a new notebook loads while the other is broken
    write_notebook(host.root + "/slow.server.ipynb", V2.replace("def version", "def slow_version").replace("2", "3"))
    assert await client.call("slow_version") == 3  # and reloads
    assert await client.call("version") == 1


async def test_new_notebook_is_found(client, host):
    write_notebook(
        host.root + "/more.server.ipynb",
        "from greenroom import server\n@server.callable\ndef more():\n    return 'more'\n",
    )
    status = await client.request("reload")
    assert "more" in status["serving"]["functions"]
    assert await client.call("more") == "more"


async def test_load_error_at_start_is_reported_in_unknown_function_error(jp_root_dir, client, host):
    write_notebook(
        host.root + "/bad.server.ipynb",
        "from greenroom import server\n@server.callable\ndef hidden():\n    return 1\n",
        "1/0",
    )
    await client.request("reload")
    with pytest.raises(NoServerFunctionError, match=r"bad.server.ipynb: ZeroDivisionError in cell 2, line 1"):
        await client.call("hidden")
    assert await client.call("version") == 1


async def test_calls_in_flight_finish_on_old_code(client, host):
    import asyncio

    write_notebook(
        host.root + "/app.server.ipynb",
        V1 + "\nimport time\n@server.callable\ndef slow_version():\n    time.sleep(1)\n    return 1\n",
    )
    assert await client.call("version") == 1
    in_flight = asyncio.ensure_future(client.call("slow_version"))
    await wait_until(lambda: host.reloader.serving.busy == 1)
    write_notebook(host.root + "/app.server.ipynb", V2)
    assert await client.call("version") == 2
    assert await in_flight == 1
    json.dumps(await client.request("status"))


async def test_magics_say_which_notebooks_serve_an_older_version_and_why(start_kernel, host):
    kernel = await start_kernel()
    await kernel.run("%load_ext greenroom")
    assert "every one serves its saved version" in await kernel.run("%greenroom")
    write_notebook(host.root + "/app.server.ipynb", "x = 1", BROKEN_SYNTAX)
    assert (await kernel.run("from greenroom import server\nprint(server.call('version'))")).strip() == "1"
    expected = "app.server.ipynb serves its last good version; the saved version fails: SyntaxError in cell 2, line 4"
    assert expected in await kernel.run("%greenroom")
    assert expected in await kernel.run("%greenroom status")
    page = await kernel.run("%greenroom status", mime="text/html")  # what a notebook renders: a table
    page = re.sub(r' style="[^"]*"', "", page)
    assert "<td>app.server.ipynb</td><td>serves its last good version; the saved version fails</td>" in page
    assert '<td class="greenroom-problem">SyntaxError in cell 2, line 4' in page


async def test_a_near_miss_gets_a_suggestion(client, host):
    with pytest.raises(NoServerFunctionError, match=r"did you mean 'version'\?"):
        await client.call("versoin")
