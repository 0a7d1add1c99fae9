"""greenroom.widgets: ipywidgets Forms that call server functions with a loading indicator."""

from __future__ import annotations

from .app import App, Link, get_open_form, open_form
from .form import Form
from .loading import LOADING_CLASS, LoadingIndicator

__all__ = ["LOADING_CLASS", "App", "Form", "Link", "LoadingIndicator", "get_open_form", "open_form"]
