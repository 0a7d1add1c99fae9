"""A published app in a real browser (Debian's chromium): spinner, result, no secret anywhere."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import urllib.request

import pytest
from processes import free_port, start, stop, wait_for_http

from helpers import SECRET, write_notebook

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "test-artifacts")

SERVER_CODE = f'''
import time
from greenroom import server
SECRET = "{SECRET}"

@server.callable
def slow_guess(number):
    time.sleep(1.0)
    return "Too low!" if number < 42 else "Correct!"
'''

APP_CODE = """
%load_ext greenroom
from greenroom import server
from greenroom.widgets import Form
import ipywidgets as w

class GuessForm(Form):
    def __init__(self):
        super().__init__()
        self.number = w.IntText(description="Guess", value=10)
        self.go = w.Button(description="Guess")
        self.go.add_class("guess-button")
        self.answer = w.Label()
        self.answer.add_class("guess-answer")
        self.go.on_click(lambda _: setattr(self.answer, "value", server.call("slow_guess", self.number.value)))
        self.children = [w.HBox([self.number, self.go]), self.answer]

GuessForm()
"""


@contextlib.contextmanager
def serving(app_dir, tmp_path_factory):
    """``greenroom serve app_dir`` on a free port, stopped at the end; its URL."""
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path_factory.mktemp("runtime")))
    greenroom = os.path.join(os.path.dirname(sys.executable), "greenroom")
    process = start(
        [greenroom, "serve", str(app_dir), "--port", str(port), "--ip", "127.0.0.1", "--no-browser"],
        str(tmp_path_factory.mktemp("logs") / "serve.log"),
        env=env,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/voila/static/", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def published_app(tmp_path_factory):
    app_dir = tmp_path_factory.mktemp("app")
    write_notebook(app_dir / "game.server.ipynb", SERVER_CODE)
    write_notebook(app_dir / "app.ipynb", APP_CODE)
    write_notebook(app_dir / "other.ipynb", "print('another client notebook')")
    with serving(app_dir, tmp_path_factory) as url:
        yield url


class Browser:
    """Debian's chromium driven by Playwright's async API on the test's event loop."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __aenter__(self):
        if not os.path.exists(CHROMIUM):
            pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
        from playwright.async_api import async_playwright

        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        self.page = await self.browser.new_page()
        await self.page.route(
            "**/*",
            lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort(),
        )
        return self.page

    async def __aexit__(self, kind, error, traceback):
        if error is not None:
            os.makedirs(ARTIFACTS, exist_ok=True)
            await self.page.screenshot(path=os.path.join(ARTIFACTS, f"{self.name}-failure.png"))
        await self.browser.close()
        await self.playwright.stop()


async def test_click_shows_spinner_then_result(published_app):
    async with Browser("published-guess") as page:
        await page.goto(published_app + "/", wait_until="domcontentloaded")
        await page.wait_for_selector(".guess-button", timeout=60000)
        spinner = page.locator(".greenroom-loading")
        assert await spinner.is_hidden()
        await page.click(".guess-button")
        await spinner.wait_for(state="visible", timeout=10000)
        os.makedirs(ARTIFACTS, exist_ok=True)
        await page.screenshot(path=os.path.join(ARTIFACTS, "published-guess-spinner.png"))
        await page.wait_for_function(
            "document.querySelector('.guess-answer').innerText.includes('Too low')", timeout=20000
        )
        await spinner.wait_for(state="hidden", timeout=10000)
        os.makedirs(ARTIFACTS, exist_ok=True)
        await page.screenshot(path=os.path.join(ARTIFACTS, "published-guess.png"))
        assert SECRET not in await page.content()


@pytest.mark.parametrize(
    "path",
    [
        "/voila/files/game.server.ipynb",
        "/voila/files/game%2Eserver.ipynb",
        "/voila/render/game.server.ipynb",
        "/voila/tree/game.server.ipynb",
        "/voila/api/contents/game.server.ipynb",
        "/voila/static/../files/game.server.ipynb",
        "/voila/files/GAME.SERVER.IPYNB",
        "/voila/nbconvert/game.server.ipynb",
        "/files/game.server.ipynb",
    ],
)
def test_server_notebook_is_never_served(published_app, path):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        body = opener.open(published_app + path, timeout=20).read()
    except urllib.error.HTTPError as error:
        assert error.code in (403, 404)
        body = error.read()
    assert SECRET.encode() not in body
    assert b"slow_guess" not in body


def test_listing_and_pages_hide_server_notebooks(published_app):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for path in ("/voila/api/contents", "/voila/api/contents/", "/"):
        try:
            body = opener.open(published_app + path, timeout=60).read()
        except urllib.error.HTTPError as error:
            body = error.read()
        assert b"game.server" not in body and SECRET.encode() not in body


async def test_published_call_socket_refuses_browsers(published_app):
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    url = published_app.replace("http://", "ws://") + "/greenroom/api/ws"
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(HTTPRequest(url, headers={"Origin": published_app}))
    assert caught.value.code == 403


@pytest.fixture(scope="module")
def published_epidemic(tmp_path_factory):
    """The epidemic example, published with `greenroom serve` as its README says."""
    example = os.path.join(os.path.dirname(__file__), "..", "notebooks", "epidemic")
    app_dir = tmp_path_factory.mktemp("epidemic")
    for name in os.listdir(example):
        if name.endswith(".ipynb"):
            shutil.copy(os.path.join(example, name), app_dir / name)
    with serving(app_dir, tmp_path_factory) as url:
        yield url


async def test_a_visitor_watches_a_background_task_move_and_end_with_its_plot(published_epidemic):
    async with Browser("epidemic-task") as page:
        await page.goto(published_epidemic + "/", wait_until="domcontentloaded")
        await page.wait_for_selector(".simulate-button", timeout=60000)
        await page.click(".simulate-button")
        bar = ".greenroom-task .progress-bar"
        await page.wait_for_selector(bar, timeout=30000)
        # Moving: a width strictly between empty and full, pushed by the host while the task runs.
        await page.wait_for_function(
            f"(() => {{ const b = document.querySelector('{bar}'); const w = parseFloat(b.style.width); "
            "return w > 0 && w < 100; })()",
            timeout=60000,
        )
        running = await page.locator(".greenroom-task").inner_text()
        assert "run " in running and " of 300" in running
        os.makedirs(ARTIFACTS, exist_ok=True)
        await page.screenshot(path=os.path.join(ARTIFACTS, "task-progress-running.png"))
        await page.wait_for_selector(".greenroom-task img", timeout=120000)  # ended: the plot
        ended = await page.locator(".greenroom-task").inner_text()
        assert "done" in ended and "median peak" in ended
        await page.screenshot(path=os.path.join(ARTIFACTS, "task-progress-done.png"))
