"""greenroom.widgets: ipywidgets Forms that call server functions with a loading indicator, and task progress."""

from __future__ import annotations

from .app import App, Link, get_open_form, open_form
from .form import Form
from .loading import LOADING_CLASS, LoadingIndicator
from .media import image_from_media, media_from_upload
from .tasks import TaskProgress

__all__ = [
    "LOADING_CLASS",
    "App",
    "Form",
    "Link",
    "LoadingIndicator",
    "TaskProgress",
    "get_open_form",
    "image_from_media",
    "media_from_upload",
    "open_form",
]
