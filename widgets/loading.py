"""The loading indicator: one stock ipywidgets HTML spinner model that every Form shows a view of.

Invariant: the kernel's cost of a call for the indicator does not depend on how many Forms were ever
made.  There is one indicator *model* per kernel, listening once to the call counter
(:data:`greenroom.loading.loading`); each Form displays a view of it, so a call changes one model
whatever the number of Forms, and a Form that is closed, replaced or cleared costs nothing.  Calls in
quick succession (a loop of ``server.call``) keep the spinner on instead of flickering: the hide is sent
:data:`HIDE_GRACE` seconds after the last call ends, by a helper thread, so it also arrives while the
cell goes on computing.  The state is sent again :data:`RESEND_AFTER` seconds later, so a spinner whose
hide was dropped by the server's IOPub rate limit does not stay on.
"""

from __future__ import annotations

import threading
import time

import ipywidgets as w

from greenroom.loading import LoadingState, loading
from greenroom.logs import log

__all__ = ["HIDE_GRACE", "LOADING_CLASS", "RESEND_AFTER", "LoadingIndicator", "SharedIndicator", "indicator"]

#: CSS class on the indicator's element; visible exactly while calls run.
LOADING_CLASS = "greenroom-loading"

#: Seconds after the last call ends before the spinner hides: a call starting sooner keeps it on.
HIDE_GRACE = 0.05

#: Seconds after a hide when the hidden state is sent again (Jupyter's IOPub limit looks at 3 s windows).
RESEND_AFTER = (1.0, 4.0)

_SPINNER_HTML = """
<style>
@keyframes greenroom-spin { to { transform: rotate(360deg); } }
.greenroom-spinner { display: inline-block; width: 14px; height: 14px; margin-right: 6px; vertical-align: -2px;
  border: 2px solid #c8d6c8; border-top-color: #2e7d32; border-radius: 50%; animation: greenroom-spin .8s linear infinite; }
</style>
<span class="greenroom-spinner"></span><span style="color:#2e7d32">Working…</span>
"""


class LoadingIndicator(w.HTML):
    """A spinner that keeps its space in the layout and is visible only while ``show(True)``."""

    def __init__(self) -> None:
        super().__init__(value=_SPINNER_HTML, layout=w.Layout(visibility="hidden"))
        self.add_class(LOADING_CLASS)

    @property
    def shown(self) -> bool:
        """True while the spinner is visible."""
        return bool(self.layout.visibility != "hidden")

    def show(self, active: bool) -> None:
        """Show or hide the spinner (its space stays taken, so the layout does not jump)."""
        self.layout.visibility = "visible" if active else "hidden"


class SharedIndicator:
    """The kernel's one :class:`LoadingIndicator`, driven by a call counter, with a delayed hide."""

    def __init__(self, state: LoadingState, grace: float = HIDE_GRACE) -> None:
        self._state = state
        self._grace = grace
        self._widget: LoadingIndicator | None = None
        self._changed = threading.Condition()
        self._hide_at: float | None = None  # when the pending hide is due
        self._resends: list[float] = []  # when the hidden state is sent again
        self._thread: threading.Thread | None = None

    def widget(self) -> LoadingIndicator:
        """The indicator Forms show (a new one if it was closed), listening to the call counter."""
        with self._changed:
            if self._widget is None or self._widget.comm is None:  # never made, or closed
                self._widget = LoadingIndicator()
                self._widget.show(self._state.active)
            self._state.on_change(self._on_change)  # idempotent: the counter keeps one listener
            return self._widget

    def _on_change(self, _active: bool) -> None:
        # The counter is read here, under this lock, not taken from the argument: notifications from two
        # threads can arrive in either order, and the last one must leave the spinner right.
        with self._changed:
            widget = self._widget
            if widget is None:
                return
            if self._state.active:
                self._hide_at = None
                self._resends = []
                if not widget.shown:
                    widget.show(True)
                return
            self._hide_at = time.monotonic() + self._grace
            self._start_thread()
            self._changed.notify()

    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="greenroom-indicator", daemon=True)
            self._thread.start()

    def _next_due(self) -> float | None:
        due = [moment for moment in (self._hide_at, *self._resends) if moment is not None]
        return min(due) if due else None

    def _run(self) -> None:
        with self._changed:
            while True:
                due = self._next_due()
                if due is None:
                    self._changed.wait()
                    continue
                now = time.monotonic()
                if now < due:
                    self._changed.wait(due - now)
                    continue
                try:
                    self._act(now)
                except Exception:  # noqa: BLE001 - the indicator must never stop the kernel's calls
                    log.exception("the loading indicator could not be updated")
                    self._hide_at, self._resends = None, []
                self._changed.notify_all()

    def _act(self, now: float) -> None:
        widget = self._widget
        if self._hide_at is not None and now >= self._hide_at:
            self._hide_at = None
            if widget is not None and not self._state.active:
                widget.show(False)
                self._resends = [now + delay for delay in RESEND_AFTER]
            return
        self._resends = [moment for moment in self._resends if moment > now]
        if widget is not None and not widget.shown and widget.comm is not None:
            widget.layout.send_state("visibility")

    def settled(self, timeout: float) -> bool:
        """Wait until no hide is pending; False if ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._hide_at is None, timeout)

    def reset(self) -> None:
        """Forget the indicator (for tests); the thread, if any, stays idle."""
        with self._changed:
            self._state.on_change(self._on_change, remove=True)
            self._widget = None
            self._hide_at, self._resends = None, []
            self._changed.notify_all()


#: The kernel's indicator.
indicator = SharedIndicator(loading)
