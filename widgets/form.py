"""Forms: ipywidgets containers that show a loading indicator while server calls run.

Subclass :class:`Form`, build its widgets in ``__init__`` and set
``self.children``; ``server.call`` from a handler shows every displayed Form's
indicator until the last call ends.  Every Form shows a view of the kernel's
one indicator (:mod:`greenroom.widgets.loading`): a Form registers no listener,
so one that is closed, replaced or cleared costs the calls nothing.  Errors in the click handlers of its
Buttons (and in handlers wrapped with :meth:`Form.handler`) are shown in the
Form, and a click queued while a handler ran cannot submit twice.
"""

from __future__ import annotations

import functools
import html
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as w
from traitlets import Bool, observe

from greenroom.logs import log
from greenroom.remote_errors import describe_server_frames

from .loading import LoadingIndicator, indicator

__all__ = ["Form"]

ERROR_CLASS = "greenroom-error"


#: A click from the browser that arrives this soon after a handler ended was queued while it ran.
REPEAT_WINDOW = 0.1


def _from_browser() -> bool:
    """True while the kernel handles a message from the frontend (a click), not a cell's code."""
    try:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        parent = kernel.get_parent() if kernel is not None else {}
    except Exception:  # noqa: BLE001 - outside a kernel: never a browser event
        return False
    return bool(parent) and parent.get("header", {}).get("msg_type") == "comm_msg"


def _click_callbacks(button: w.Button) -> list[Callable[..., Any]]:
    """The callbacks ``button.on_click`` registered, in order.  ipywidgets has no public getter for them:
    this is the one read of its private ``_click_handlers``, which is never replaced or changed."""
    return list(button._click_handlers.callbacks)


class Form(w.VBox):
    """A container whose loading indicator follows the running ``server.call``\\ s.

    Click handlers of the Buttons inside it (when its children are set) and handlers wrapped with
    :meth:`handler` show their errors in the Form, and a click the browser sent while a handler was
    still running is ignored: the browser can click a disabled button.
    """

    children: tuple[w.Widget, ...]
    busy = Bool(False, help="True while one of the Form's handlers runs (kernel side only).")

    def __init__(self, **kwargs: Any) -> None:
        # Classes and children go in at construction: the frontend gets them with the widget, not as updates.
        self._indicator = indicator.widget()
        self._error = w.HTML(layout=w.Layout(display="none"), _dom_classes=(ERROR_CLASS,))
        self._handler_lock = threading.RLock()
        self._depth = 0
        self._finished_at = -REPEAT_WINDOW
        kwargs["_dom_classes"] = (*kwargs.get("_dom_classes", ()), "greenroom-form")
        kwargs["children"] = self._with_chrome(kwargs.get("children", ()))
        super().__init__(**kwargs)
        self._ensure_chrome()

    @observe("children")
    def _children_changed(self, change: dict[str, Any]) -> None:
        self._ensure_chrome()

    def _own(self, children: Iterable[w.Widget]) -> list[w.Widget]:
        """``children`` without the Form's error line and indicator (a closed indicator is replaced)."""
        return [child for child in children if child is not self._error and not isinstance(child, LoadingIndicator)]

    def _with_chrome(self, children: Iterable[w.Widget]) -> tuple[w.Widget, ...]:
        self._indicator = indicator.widget()
        return (*self._own(children), self._error, self._indicator)

    def _ensure_chrome(self) -> None:
        wanted = self._with_chrome(self.children)
        if tuple(self.children) != wanted:
            self.children = wanted
        self._adopt(self._own(wanted))

    def _adopt(self, widgets: Iterable[w.Widget]) -> None:
        for widget in widgets:
            if isinstance(widget, w.Button):
                self._guard_clicks(widget)
            elif isinstance(widget, w.Box) and not isinstance(widget, Form):
                self._adopt(widget.children)

    def _buttons(self, widgets: Iterable[w.Widget] | None = None) -> list[w.Button]:
        """The Buttons inside this Form (not inside a nested Form)."""
        found: list[w.Button] = []
        for widget in self.children if widgets is None else widgets:
            if isinstance(widget, w.Button):
                found.append(widget)
            elif isinstance(widget, w.Box) and not isinstance(widget, Form):
                found.extend(self._buttons(widget.children))
        return found

    def _guard_clicks(self, button: w.Button) -> None:
        """Route ``button``'s clicks (the browser's and ``button.click()``) through this Form's guard.

        ipywidgets runs a click as ``button.click()``, a public method: the Form gives the button its own
        ``click`` that runs each callback ``on_click`` registered (now or later) under the guard.
        """
        button.click = functools.partial(self._click, button)

    def _click(self, button: w.Button) -> Any:
        value = None
        for callback in _click_callbacks(button):
            result = self._guard(functools.partial(callback, button))
            value = result if result is not None else value
        return value

    def show_error(self, error: BaseException | None) -> None:
        """Show ``error`` (type and message) in the Form; ``None`` clears it."""
        if error is None:
            self._error.layout.display = "none"
            self._error.value = ""
            return
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        server_frames = describe_server_frames(error)
        if server_frames:
            text += "\n" + server_frames
        self._error.value = (
            '<div style="color:#b00020;line-height:1.4;white-space:pre-wrap;overflow-wrap:anywhere;'
            'font-family:var(--jp-code-font-family,monospace)">' + html.escape(text) + "</div>"
        )
        self._error.layout.display = None

    def _guard(self, run: Callable[[], Any]) -> Any:
        if not self._handler_lock.acquire(blocking=False):
            return None  # another thread is running one of this Form's handlers
        try:
            if self._depth == 0 and _from_browser() and time.monotonic() - self._finished_at < REPEAT_WINDOW:
                log.info("ignored a click sent while the previous one was handled")
                return None
            self._depth += 1
            outermost = self._depth == 1
            enabled: list[w.Button] = []
            if outermost:
                self.busy = True
                self.show_error(None)
                enabled = [button for button in self._buttons() if not button.disabled]
                for button in enabled:  # the person sees the Form is busy; their clicks would be ignored
                    button.disabled = True
            try:
                return run()
            except Exception as error:  # noqa: BLE001 - shown to the user, never swallowed
                self.show_error(error)
                return None
            finally:
                self._depth -= 1
                if outermost:
                    for button in enabled:
                        button.disabled = False
                    self.busy = False
                    self._finished_at = time.monotonic()
        finally:
            self._handler_lock.release()

    def handler(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap any event handler (``observe``, ``on_submit``...) in the Form's guard: errors are shown in
        the Form; an event while another handler of the Form runs is ignored."""

        @functools.wraps(callback)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self._guard(lambda: callback(*args, **kwargs))

        return guarded
