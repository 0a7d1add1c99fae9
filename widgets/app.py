"""Multi-page apps: one container showing the open Form, and link-style navigation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

__all__ = ["App", "Link", "get_open_form", "open_form"]


class App(w.VBox):
    """The container an app's Forms are shown in; :func:`open_form` swaps its content."""

    current: App | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("greenroom-app")
        App.current = self

    def show_form(self, form: w.Widget) -> w.Widget:
        """Replace the shown Form with ``form``."""
        self.children = (form,)
        return form

    @classmethod
    def reset(cls) -> None:
        """Forget the current app container (for tests)."""
        cls.current = None


def open_form(form: w.Widget) -> App:
    """Show ``form`` as the app's page (creating the app container on first use) and return the container."""
    if not isinstance(form, w.Widget):
        raise TypeError(f"open_form needs a widget (a Form), not {type(form).__name__}")
    app = App.current or App()
    app.show_form(form)
    return app


def get_open_form() -> w.Widget | None:
    """The Form the app shows, if any."""
    app = App.current
    return app.children[0] if app is not None and app.children else None


class Link(w.Button):
    """A button that looks like a link; ``on_click`` as usual, or ``Link("text", to=make_form)``."""

    def __init__(self, description: str = "", to: Callable[[], w.Widget] | None = None, **kwargs: Any) -> None:
        # Look and classes go in at construction: the frontend gets them with the widget, not as updates.
        kwargs.setdefault("style", w.ButtonStyle(button_color="transparent", text_color="#1565c0"))
        kwargs.setdefault("layout", w.Layout(width="auto"))
        kwargs["_dom_classes"] = (*kwargs.get("_dom_classes", ()), "greenroom-link")
        super().__init__(description=description, **kwargs)
        if to is not None:
            self.on_click(lambda _: open_form(to()))
