"""JupyterLab and Voilà inside `jupyter lab`: their kernels get credentials and Forms call the host."""

from __future__ import annotations

import json
import os
import sys

import pytest
from processes import free_port, start, stop, wait_for_http
from test_browser import APP_CODE, ARTIFACTS, SERVER_CODE, Browser

from helpers import SECRET, write_notebook

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("labroot")
    write_notebook(root / "game.server.ipynb", SERVER_CODE)
    write_notebook(root / "app.ipynb", APP_CODE)
    settings = tmp_path_factory.mktemp("labsettings")
    notification = settings / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port = free_port()
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path_factory.mktemp("workspaces")),
        JUPYTER_RUNTIME_DIR=str(tmp_path_factory.mktemp("runtime")),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.jpserver_extensions",
        "greenroom.server_ext=True",
    ]
    process = start(command, str(tmp_path_factory.mktemp("logs") / "lab.log"), env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/greenroom/api/status", process, timeout=90, any_status=False)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


async def click_and_check(page, name: str) -> None:
    spinner = page.locator(".greenroom-loading").first
    await page.locator(".guess-button").first.click()
    await spinner.wait_for(state="visible", timeout=10000)
    await page.wait_for_function(
        "[...document.querySelectorAll('.guess-answer')].some(e => e.innerText.includes('Too low'))", timeout=30000
    )
    await spinner.wait_for(state="hidden", timeout=10000)
    os.makedirs(ARTIFACTS, exist_ok=True)
    await page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"))
    assert SECRET not in await page.content()


async def test_jupyterlab_notebook_form(lab):
    async with Browser("jupyterlab") as page:
        await page.goto(lab + "/lab/tree/app.ipynb", wait_until="domcontentloaded")
        await page.wait_for_selector(".jp-NotebookPanel", timeout=60000)
        await page.wait_for_function(
            "document.querySelector('#jp-main-statusbar')?.innerText.includes('| Idle')", timeout=60000
        )
        await page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
        await page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        await page.wait_for_selector(".jp-OutputArea-output .guess-button", timeout=60000)
        await click_and_check(page, "jupyterlab-guess")


async def test_voila_inside_jupyter_server(lab):
    async with Browser("voila-in-server") as page:
        await page.goto(lab + "/voila/render/app.ipynb", wait_until="domcontentloaded")
        await page.wait_for_selector(".guess-button", timeout=60000)
        await click_and_check(page, "voila-in-server-guess")
