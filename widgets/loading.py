"""The loading indicator: a stock ipywidgets HTML spinner shown while server calls run."""

from __future__ import annotations

import ipywidgets as w

__all__ = ["LOADING_CLASS", "LoadingIndicator"]

#: CSS class on the indicator's element; visible exactly while calls run.
LOADING_CLASS = "greenroom-loading"

_SPINNER_HTML = """
<style>
@keyframes greenroom-spin { to { transform: rotate(360deg); } }
.greenroom-spinner { display: inline-block; width: 14px; height: 14px; margin-right: 6px; vertical-align: -2px;
  border: 2px solid #c8d6c8; border-top-color: #2e7d32; border-radius: 50%; animation: greenroom-spin .8s linear infinite; }
</style>
<span class="greenroom-spinner"></span><span style="color:#2e7d32">Working…</span>
"""


class LoadingIndicator(w.HTML):
    """A spinner that shows while ``active`` is set; hidden (display: none) otherwise."""

    def __init__(self) -> None:
        super().__init__(value=_SPINNER_HTML, layout=w.Layout(display="none"))
        self.add_class(LOADING_CLASS)

    def show(self, active: bool) -> None:
        """Show or hide the spinner."""
        self.layout.display = None if active else "none"
