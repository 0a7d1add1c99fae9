"""Forms: ipywidgets containers that show a loading indicator while server calls run.

Subclass :class:`Form`, build its widgets in ``__init__`` and set
``self.children``; ``server.call`` from a handler shows every displayed Form's
indicator until the last call ends.  Wrap handlers with :meth:`Form.handler`
so an exception is shown in the Form and a double click cannot submit twice.
"""

from __future__ import annotations

import functools
import html
import threading
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from traitlets import Bool, observe

from greenroom.loading import loading

from .loading import LoadingIndicator

__all__ = ["Form"]

ERROR_CLASS = "greenroom-error"


class Form(w.VBox):
    """A container whose loading indicator follows the running ``server.call``\\ s."""

    busy = Bool(False, help="True while a handler wrapped with Form.handler runs (kernel side only).")

    def __init__(self, **kwargs: Any) -> None:
        self._indicator = LoadingIndicator()
        self._error = w.HTML(layout=w.Layout(display="none"))
        self._error.add_class(ERROR_CLASS)
        self._handler_lock = threading.Lock()
        super().__init__(**kwargs)
        self.add_class("greenroom-form")
        self._ensure_chrome()
        self._indicator.show(loading.active)
        loading.on_change(self._indicator.show)

    @observe("children")
    def _children_changed(self, change: dict[str, Any]) -> None:
        self._ensure_chrome()

    def _ensure_chrome(self) -> None:
        own = [child for child in self.children if child is not self._indicator and child is not self._error]
        wanted = (*own, self._error, self._indicator)
        if tuple(self.children) != wanted:
            self.children = wanted

    def show_error(self, error: BaseException | None) -> None:
        """Show ``error`` (type and message) in the Form; ``None`` clears it."""
        if error is None:
            self._error.layout.display = "none"
            self._error.value = ""
            return
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        self._error.value = (
            '<div style="color:#b00020;white-space:pre-wrap;font-family:var(--jp-code-font-family,monospace)">'
            + html.escape(text) + "</div>"
        )
        self._error.layout.display = None

    def handler(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap an event handler: errors are shown in the Form; a second event while one runs is ignored."""

        @functools.wraps(callback)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not self._handler_lock.acquire(blocking=False):
                return None  # already submitting: the browser can click a disabled button
            self.busy = True
            try:
                self.show_error(None)
                return callback(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - shown to the user, never swallowed
                self.show_error(error)
                return None
            finally:
                self.busy = False
                self._handler_lock.release()

        return guarded

    def close(self) -> None:
        loading.on_change(self._indicator.show, remove=True)
        super().close()
