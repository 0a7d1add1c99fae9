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


CHECKS_CODE = """
from greenroom import server

@server.callable
def strict(value):
    if not isinstance(value, int):
        raise ValueError("the answer must be a whole number between 1 and 100, written with digits; " * 3 + repr(value))
    return value
"""

POLISH_CELLS = (
    "%load_ext greenroom\n%greenroom status",
    APP_CODE.replace("%load_ext greenroom", "").replace("GuessForm()", "display(GuessForm())").strip()
    + "\n"
    + "class Failing(Form):\n"
    + "    def __init__(self):\n"
    + "        super().__init__()\n"
    + "        self.go = w.Button(description='Fail')\n"
    + "        self.go.add_class('fail-button')\n"
    + "        self.go.on_click(lambda _: server.call('strict', 'ten'))\n"
    + "        self.children = [self.go]\n"
    + "display(Failing())",
    "server.call('strict', 'ten')",
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("labroot")
    write_notebook(root / "game.server.ipynb", SERVER_CODE)
    write_notebook(root / "app.ipynb", APP_CODE)
    write_notebook(root / "polish.ipynb", *POLISH_CELLS)
    write_notebook(root / "checks.server.ipynb", CHECKS_CODE)
    settings = tmp_path_factory.mktemp("labsettings")
    notification = settings / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    # Render every cell: the default windowing skips cells outside the viewport, and the tests read them all.
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
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


async def form_height(page, selector: str) -> float:
    return await page.evaluate(f"document.querySelector('{selector}').closest('.greenroom-form').offsetHeight")


async def test_status_tables_a_steady_form_and_readable_errors_in_jupyterlab(lab):
    """What a person sees: `%greenroom status` as tables, a Form that does not jump when its spinner shows,
    and an error that wraps at a normal line height; the screenshots are kept as test artifacts."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    async with Browser("jupyterlab-polish") as page:
        await page.set_viewport_size({"width": 1100, "height": 1000})
        await page.goto(lab + "/lab/tree/polish.ipynb?reset", wait_until="domcontentloaded")  # only it open
        await page.wait_for_function(
            "document.querySelector('#jp-main-statusbar')?.innerText.includes('| Idle')", timeout=60000
        )
        await page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
        await page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        await page.wait_for_selector(".jp-OutputArea-output .fail-button", timeout=60000)
        await page.wait_for_selector('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]', timeout=60000)
        report = page.locator(".greenroom-report").first
        assert await report.locator("table").count() == 3
        assert "serves its saved version" in await report.inner_text()
        await report.screenshot(path=os.path.join(ARTIFACTS, "status-tables.png"))

        before = await form_height(page, ".guess-button")
        guess_form = page.locator(".guess-button").locator("xpath=ancestor::*[contains(@class,'greenroom-form')]")
        await page.locator(".guess-button").first.click()
        await guess_form.locator(".greenroom-loading").wait_for(state="visible", timeout=10000)
        during = await form_height(page, ".guess-button")
        await guess_form.locator(".greenroom-loading").wait_for(state="hidden", timeout=30000)
        assert before == during == await form_height(page, ".guess-button")  # the layout does not jump

        await page.locator(".fail-button").first.click()
        fail_form = page.locator(".fail-button").locator("xpath=ancestor::*[contains(@class,'greenroom-form')]")
        error = fail_form.locator(".greenroom-error .widget-html-content > div")
        await error.wait_for(state="visible", timeout=30000)
        style = await error.evaluate(
            "e => ({line: parseFloat(getComputedStyle(e).lineHeight), font: parseFloat(getComputedStyle(e).fontSize),"
            " overflow: e.scrollWidth - e.clientWidth})"
        )
        assert style["line"] < 1.6 * style["font"] and style["overflow"] <= 0, style
        await fail_form.screenshot(path=os.path.join(ARTIFACTS, "form-error.png"))
        traceback = page.locator('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]').first
        text = await traceback.inner_text()
        assert "ValueError: the answer must be" in text and "api.py" not in text and SECRET not in await page.content()
        await traceback.screenshot(path=os.path.join(ARTIFACTS, "call-error.png"))
