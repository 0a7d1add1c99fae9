"""Widgets without a browser: the indicator's reference count, handlers, Media helpers."""

from __future__ import annotations

import threading

import ipywidgets as w
import pytest

from greenroom import BlobMedia
from greenroom.loading import LoadingState, loading
from greenroom.widgets import App, Form, LoadingIndicator, image_from_media, media_from_upload, open_form
from greenroom.widgets.loading import SharedIndicator, indicator


@pytest.fixture(autouse=True)
def _reset_widget_state():
    yield
    indicator.reset()
    loading.reset()
    App.reset()


def test_indicator_follows_nested_and_concurrent_calls():
    form = Form()
    shown = lambda: form._indicator.shown
    assert not shown()
    loading.enter()
    loading.enter()
    assert shown()
    loading.leave()
    assert shown() and indicator.settled(5) and shown()
    loading.leave()
    assert indicator.settled(5) and not shown()
    workers = [threading.Thread(target=lambda: (loading.enter(), loading.leave())) for _ in range(50)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert indicator.settled(5) and not shown() and not loading.active


def test_calls_in_quick_succession_keep_the_spinner_on_without_hiding_between():
    calls = LoadingState()
    shared = SharedIndicator(calls, grace=1.0)  # a grace no loop iteration of this test comes near
    spinner = shared.widget()
    seen = []
    spinner.layout.observe(lambda change: seen.append(change["new"]), "visibility")
    for _ in range(100):
        calls.enter()
        calls.leave()
    assert shared.settled(10) and not spinner.shown
    assert seen == ["visible", "hidden"]
    spinner.close()


def test_every_form_shows_one_indicator_and_registers_no_listener():
    forms = [Form() for _ in range(200)]
    assert {id(form._indicator) for form in forms} == {id(indicator.widget())}
    assert loading.listener_count == 1
    for form in forms:
        form.close()
    assert loading.listener_count == 1 and indicator.widget() is forms[0]._indicator


def test_a_closed_indicator_is_replaced_in_new_forms():
    old = Form()
    old._indicator.close()
    new = Form()
    assert new._indicator is not old._indicator and new._indicator.comm is not None
    assert sum(isinstance(child, LoadingIndicator) for child in new.children) == 1
    loading.enter()
    assert new._indicator.shown
    loading.leave()
    assert indicator.settled(5) and not new._indicator.shown


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
