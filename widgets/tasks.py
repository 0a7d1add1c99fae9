"""TaskProgress: a background task's progress, live, in stock ipywidgets.

A progress bar from ``task_state["progress"]`` (0..1; without it the bar pulses), a line from
``task_state["message"]``, then the result (an image for image Media, a table for pandas objects, the
value's repr otherwise) or the error with its server frames.  It updates as the host pushes news of the
task (:meth:`greenroom.tasks.Task.on_change`): no timer, no polling, and the kernel stays free for other
cells and clicks meanwhile.
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as w

from greenroom.media import Media
from greenroom.remote_errors import describe_server_frames
from greenroom.tasks import Task

from .media import image_from_media

__all__ = ["TaskProgress"]

#: Longest repr of a result shown (characters).
MAX_SHOWN = 20_000
STATUS_TEXT = {
    "pending": "waiting for a free slot",
    "running": "running",
    "completed": "done",
    "failed": "failed",
    "killed": "stopped",
    "missing": "lost (its host stopped while it ran)",
}


class TaskProgress(w.VBox):
    """Shows ``task`` as it runs and ends.  ``close()`` stops following it."""

    def __init__(self, task: Task, **kwargs: Any) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"TaskProgress shows a greenroom Task, not {type(task).__name__}")
        self.task = task
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info", layout=w.Layout(width="100%"))
        self.status = w.HTML(layout=w.Layout(width="100%"))
        self.outcome = w.VBox()
        super().__init__([self.bar, self.status, self.outcome], **kwargs)
        self.add_class("greenroom-task")
        task.on_change(self._show)
        if task._news is not None or task._lost is not None:
            self._show(task)
        else:
            self.status.value = "<i>waiting for news of the task</i>"

    def close(self) -> None:
        self.task.on_change(self._show, remove=True)
        super().close()

    def _show(self, task: Task) -> None:
        if task._news is None:
            self._show_error(task._lost or ConnectionError("no news of the task"), "no news")
            return
        news = task._news
        state = task.get_state()
        progress = state.get("progress")
        if isinstance(progress, int | float) and math.isfinite(progress):
            self.bar.value = min(1.0, max(0.0, float(progress)))
        message = state.get("message")
        words = STATUS_TEXT.get(news.status, news.status)
        line = f"<b>{html.escape(news.name)}</b>: {html.escape(words)}"
        if isinstance(message, str) and message:
            line += f" &middot; {html.escape(message)}"
        self.status.value = line
        ended = news.ended_status
        if ended is None:
            return
        if ended == "completed":
            self.bar.value, self.bar.bar_style = 1.0, "success"
            self.outcome.children = [self._result_widget(task.get_return_value())]
        else:
            error = task.get_error()
            self._show_error(error or RuntimeError(ended), words)

    def _show_error(self, error: BaseException, words: str) -> None:
        self.bar.bar_style = "danger"
        frames = describe_server_frames(error)
        text = f"{type(error).__name__}: {error}" + (f"\n{frames}" if frames else "")
        self.outcome.children = [
            w.HTML(
                f'<pre class="greenroom-error" style="white-space: pre-wrap; color: #b00020; margin: 0">'
                f"{html.escape(text)}</pre>"
            )
        ]
        if not self.status.value:
            self.status.value = html.escape(words)

    @staticmethod
    def _result_widget(value: Any) -> w.Widget:
        if isinstance(value, Media) and value.content_type.startswith("image/"):
            image = image_from_media(value)
            image.layout = w.Layout(align_self="flex-start", max_width="100%")  # its own size, never stretched
            return image
        to_html = getattr(value, "to_html", None)
        if callable(to_html) and type(value).__module__.startswith("pandas"):
            return w.HTML(to_html(max_rows=50, escape=True))
        shown = repr(value)
        if len(shown) > MAX_SHOWN:
            shown = shown[:MAX_SHOWN] + " ..."
        return w.HTML(f"<pre style='margin: 0; white-space: pre-wrap'>{html.escape(shown)}</pre>")
