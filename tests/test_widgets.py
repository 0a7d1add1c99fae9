"""Widgets without a browser: the indicator's reference count, handlers, Media helpers."""

from __future__ import annotations

import threading

import ipywidgets as w
import pytest

from greenroom import BlobMedia
from greenroom.loading import loading
from greenroom.widgets import App, Form, image_from_media, media_from_upload, open_form


@pytest.fixture(autouse=True)
def _reset_widget_state():
    yield
    loading.reset()
    App.reset()


def test_indicator_follows_nested_and_concurrent_calls():
    form = Form()
    display = lambda: form._indicator.layout.display
    assert display() == "none"
    loading.enter()
    loading.enter()
    assert display() is None
    loading.leave()
    assert display() is None
    loading.leave()
    assert display() == "none"
    workers = [threading.Thread(target=lambda: (loading.enter(), loading.leave())) for _ in range(50)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert display() == "none" and not loading.active


def test_indicator_stays_last_when_children_change():
    form = Form()
    label = w.Label("x")
    form.children = [label]
    assert form.children[0] is label and form.children[-1] is form._indicator
    form.children = [label, w.Button()]
    assert form.children[-1] is form._indicator and len(form.children) == 4


def test_handler_shows_errors_and_blocks_double_submit():
    form = Form()
    entered = threading.Event()
    release = threading.Event()
    calls = []

    def slow(_):
        calls.append(1)
        entered.set()
        release.wait(10)

    guarded = form.handler(slow)
    first = threading.Thread(target=guarded, args=(None,))
    first.start()
    entered.wait(10)
    assert form.busy
    guarded(None)  # a second click while the first runs is ignored
    release.set()
    first.join()
    assert calls == [1] and not form.busy
    form.handler(lambda _: 1 / 0)(None)
    assert "ZeroDivisionError" in form._error.value and form._error.layout.display is None
    form.handler(lambda _: None)(None)
    assert form._error.layout.display == "none"


def test_open_form_swaps_pages():
    first, second = Form(), Form()
    app = open_form(first)
    assert app.children == (first,)
    assert open_form(second) is app and app.children == (second,)
    with pytest.raises(TypeError):
        open_form("not a widget")


def test_media_helpers():
    upload_value = [{"name": "cat.png", "type": "image/png", "content": memoryview(b"\x89PNG...")}]
    (media,) = media_from_upload(upload_value)
    assert media == BlobMedia("image/png", b"\x89PNG...", name="cat.png")
    image = image_from_media(media)
    assert image.value == b"\x89PNG..." and image.format == "png"
