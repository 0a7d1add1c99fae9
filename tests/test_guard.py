"""A published app never renders or serves a server notebook, however its URL is spelled."""

from __future__ import annotations

import http.client
import os
import sys

import pytest
from processes import free_port, start, stop, wait_for_http
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from greenroom.server_ext.guard import ServerNotebookMatcher
from helpers import SECRET, write_notebook

PRIVATE = [  # the server notebook private/answers.ipynb, chosen by the pattern "private/*.ipynb"
    "/voila/render/private/answers.ipynb",
    "/voila/render/private//answers.ipynb",
    "/voila/render/private/./answers.ipynb",
    "/voila/render/private/%2e/answers.ipynb",
    "/voila/render/private/sub/../answers.ipynb",
    "/voila/render/private%2F%2Fanswers.ipynb",
    "/voila/render/private%252Fanswers.ipynb",
    "/voila/render/PRIVATE/Answers.ipynb",
    "/voila/render/private\\answers.ipynb",
    "/voila/render/alias/answers.ipynb",  # alias -> private, a symbolic link
    "/voila/files/private/answers.ipynb",
    "/voila/render/x?path=private/./answers.ipynb",
    "/private/./answers.ipynb",
]
DEFAULT = [  # the server notebook game.server.ipynb, found by the default pattern
    "/voila/render/game.server.ipynb",
    "/voila/render/./game.server.ipynb",
    "/voila/render/game%2Eserver.ipynb",
    "/voila/render/game%252eserver.ipynb",
    "/voila/files/GAME.SERVER.IPYNB",
    "/voila/render/innocent.ipynb",  # innocent.ipynb -> game.server.ipynb, a symbolic link
]
ALLOWED = ["/voila/render/app.ipynb", "/voila/static/main.js", "/voila/render/private_notes.ipynb"]


def make_app(folder, with_app: bool = True) -> None:
    if with_app:
        write_notebook(folder / "app.ipynb", "print('the app')")
    write_notebook(folder / "private_notes.ipynb", "print('a client notebook')")
    write_notebook(folder / "game.server.ipynb", f"SECRET = {SECRET!r}")
    os.makedirs(folder / "private")
    write_notebook(folder / "private" / "answers.ipynb", "ANSWERS = 1", (f"print({SECRET!r})", ["greenroom:skip"]))
    os.symlink("private", folder / "alias")
    os.symlink("game.server.ipynb", folder / "innocent.ipynb")


def request(uri: str) -> HTTPServerRequest:
    return HTTPServerRequest(
        start_line=RequestStartLine("GET", uri, "HTTP/1.1"), headers=HTTPHeaders({"Host": "127.0.0.1"})
    )


@pytest.mark.parametrize("uri", PRIVATE + DEFAULT)
def test_every_spelling_of_a_server_notebook_is_matched(tmp_path, uri):
    make_app(tmp_path)
    notebooks = ["game.server.ipynb", "private/answers.ipynb"]
    matcher = ServerNotebookMatcher(str(tmp_path), ["*.server.ipynb", "private/*.ipynb"], lambda: notebooks)
    assert matcher.match(request(uri)) == {}


def test_client_notebooks_and_static_files_are_not_matched(tmp_path):
    make_app(tmp_path)
    notebooks = ["game.server.ipynb", "private/answers.ipynb"]
    matcher = ServerNotebookMatcher(str(tmp_path), ["*.server.ipynb", "private/*.ipynb"], lambda: notebooks)
    for uri in ALLOWED:
        assert matcher.match(request(uri)) is None, uri


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """``greenroom serve`` of a folder (no app.ipynb: Voila renders any notebook under it) with a custom
    pattern (private/*.ipynb) besides the default."""
    app_dir = tmp_path_factory.mktemp("app")
    make_app(app_dir, with_app=False)
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path_factory.mktemp("runtime")))
    greenroom = os.path.join(os.path.dirname(sys.executable), "greenroom")
    process = start(
        [
            greenroom,
            "serve",
            str(app_dir),
            "--port",
            str(port),
            "--ip",
            "127.0.0.1",
            "--no-browser",
            "--GreenroomApp.server_notebooks=*.server.ipynb",
            "--GreenroomApp.server_notebooks=private/*.ipynb",
        ],
        str(tmp_path_factory.mktemp("logs") / "serve.log"),
        env=env,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/voila/static/", process)
        yield port
    finally:
        stop(process)


def test_a_published_app_answers_404_to_every_spelling(published):
    for uri in PRIVATE + DEFAULT:
        connection = http.client.HTTPConnection("127.0.0.1", published, timeout=30)
        connection.request("GET", uri)  # sent as written: no client-side normalisation
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == 404, uri
        assert SECRET.encode() not in body, uri
