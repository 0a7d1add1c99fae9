"""Real kernels launched by the server: credentials, calls, sessions, magics, imports."""

from __future__ import annotations

import pytest

from helpers import SECRET, KernelError, failure_shown


async def test_kernel_gets_credentials_and_calls(start_kernel):
    kernel = await start_kernel()
    out = await kernel.run(
        "import os\nfrom greenroom import server\n"
        "print(sorted(k for k in os.environ if k.startswith('GREENROOM_')))\n"
        "print(server.call('add', 1, 2), server.call('whoami'))"
    )
    assert "['GREENROOM_KERNEL_ID', 'GREENROOM_SOCKET', 'GREENROOM_TOKEN', 'GREENROOM_URL']" in out
    assert "3 ['kernel', 'whoami']" in out


async def test_session_per_kernel(start_kernel):
    first, second = await start_kernel(), await start_kernel()
    await first.run("from greenroom import server\nserver.call('session_put', 'who', 'first')")
    await second.run("from greenroom import server\nserver.call('session_put', 'who', 'second')")
    assert "first" in await first.run("print(server.call('session_get', 'who'))")
    assert "second" in await second.run("print(server.call('session_get', 'who'))")


async def test_calls_from_threads_and_async_cells(start_kernel):
    kernel = await start_kernel()
    out = await kernel.run(
        "from concurrent.futures import ThreadPoolExecutor\nfrom greenroom import server\n"
        "with ThreadPoolExecutor(8) as pool:\n"
        "    results = list(pool.map(lambda i: server.call('add', i, i), range(40)))\n"
        "print(results == [2 * i for i in range(40)])"
    )
    assert out.strip() == "True"
    out = await kernel.run("print(await server.call_async('add', 20, 22), server.call('add', 1, 1))")
    assert out.strip() == "42 2"


async def test_errors_in_a_kernel(start_kernel):
    kernel = await start_kernel()
    with pytest.raises(KernelError, match="NoServerFunctionError: no server function named 'missing'"):
        await kernel.run("from greenroom import server\nserver.call('missing')")
    shown = await failure_shown(kernel, "server.call('divide', 1, 0)")
    assert "ZeroDivisionError" in shown and "<server notebook calc.server.ipynb, cell 1>:22, in divide()" in shown
    assert "(the source stays on the server)" in shown and "return a / b" not in shown


async def test_magics_show_functions_without_source(start_kernel):
    kernel = await start_kernel()
    out = await kernel.run("%load_ext greenroom\n%load_ext greenroom\n%greenroom")
    assert "connected to" in out or "not connected" in out
    assert "add(a, b)  - Add two numbers.  [calc.server.ipynb]" in out
    assert "check(guess, key=…)" in out
    assert "every one serves its saved version" in out
    assert SECRET not in out
    out = await kernel.run("%greenroom functions")
    assert "custom_name()" in out and "def " not in out
    out = await kernel.run("%greenroom status")
    assert "mode: fresh (every call starts" in out and "1 notebook(s)" in out and SECRET not in out
    assert "you are kernel " in out and "the server's owner" in out and "pid" not in out
    out = await kernel.run("%greenroom status --json")
    assert '"mode": "fresh"' in out and '"owner": true' in out and SECRET not in out
    out = await kernel.run("%greenroom reload")
    assert "every one serves its saved version" in out and "calls in flight" in out
    with pytest.raises(KernelError, match="UsageError: unknown %greenroom command 'frobnicate'"):
        await kernel.run("%greenroom frobnicate")
    await kernel.run("%unload_ext greenroom\n%unload_ext greenroom")
    with pytest.raises(KernelError, match="UsageError: Line magic function `%greenroom` not found"):
        await kernel.run("%greenroom")


async def test_importing_a_server_notebook_is_refused(start_kernel):
    kernel = await start_kernel()
    with pytest.raises(KernelError, match="calc.server.ipynb is a server notebook.*server.call"):
        await kernel.run("%load_ext greenroom\nimport calc")


async def test_session_of_a_shut_down_kernel_is_forgotten(start_kernel, host, jp_serverapp):
    from helpers import wait_until

    kernel = await start_kernel()
    await kernel.run("from greenroom import server\nserver.call('session_put', 'who', 'me')")
    key = f"kernel:{kernel.kernel_id}"
    assert key in host.sessions.kept
    await jp_serverapp.kernel_manager.shutdown_kernel(kernel.kernel_id, now=True)
    await wait_until(lambda: key not in host.sessions.kept)


async def test_form_guards_clicks_from_the_browser(start_kernel):
    """Two click messages sent while the first handler runs: it runs once; errors show in the Form."""
    kernel = await start_kernel()
    model_id = (
        await kernel.run(
            "import ipywidgets as w\nfrom greenroom import server\nfrom greenroom.widgets import Form\n"
            "runs = []\nform = Form()\nbutton = w.Button()\n"
            "def submit(_):\n    runs.append(server.call('slow', 0.5))\n"
            "button.on_click(submit)\nform.children = [w.HBox([button])]\nprint(button.model_id)"
        )
    ).strip()
    client = kernel.client
    for _ in range(3):  # the browser can click a disabled button: all three arrive while the first runs
        client.shell_channel.send(
            client.session.msg(
                "comm_msg", {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}}
            )
        )
    assert (await kernel.run("print(runs)")).strip() == "[0.5]"
    out = await kernel.run("button.click()\nbutton.click()\nprint(len(runs))")  # code, not the browser: both run
    assert out.strip() == "3"
    out = await kernel.run(
        "def broken(_):\n    server.call('divide', 1, 0)\n"
        "button.on_click(submit, remove=True)\nbutton.on_click(broken)\nbutton.click()\n"
        "print(form._error.value)\nprint(form._error.layout.display)"
    )
    assert "ZeroDivisionError: division by zero" in out and "None" in out


async def test_a_forms_buttons_show_it_is_busy_while_a_handler_runs(start_kernel):
    kernel = await start_kernel()
    code = (
        "import ipywidgets as w\nfrom greenroom import server\nfrom greenroom.widgets import Form\n"
        "form = Form()\ngo, other, off = w.Button(), w.Button(), w.Button(disabled=True)\n"
        "seen = []\n"
        "def submit(_):\n    seen.append([go.disabled, other.disabled, off.disabled])\n    server.call('add', 1, 2)\n"
        "def broken(_):\n    seen.append([go.disabled, other.disabled])\n    server.call('divide', 1, 0)\n"
        "go.on_click(submit)\nother.on_click(broken)\n"
        "form.children = [w.HBox([go, other]), off]\n"
        "go.click()\nprint(seen[-1], [go.disabled, other.disabled, off.disabled])\n"
        "other.click()\nprint(seen[-1], [go.disabled, other.disabled], 'ZeroDivisionError' in form._error.value)\n"
    )
    first, second = (await kernel.run(code)).strip().splitlines()
    assert first == "[True, True, True] [False, False, True]"  # busy while it runs; the app's own choice kept
    assert second == "[True, True] [False, False] True"  # restored after an error too
