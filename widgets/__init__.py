"""greenroom.widgets: ipywidgets Forms that call server functions with a loading indicator."""

from __future__ import annotations

from .app import App, Link, get_open_form, open_form
from .form import Form
from .loading import LOADING_CLASS, LoadingIndicator
from .media import image_from_media, media_from_upload

__all__ = [
    "LOADING_CLASS",
    "App",
    "Form",
    "Link",
    "LoadingIndicator",
    "get_open_form",
    "image_from_media",
    "media_from_upload",
    "open_form",
]
