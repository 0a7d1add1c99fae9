"""The greenroom Jupyter server extension: the host of server notebooks."""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .application import GreenroomApp

    return [{"module": "greenroom.server_ext.application", "app": GreenroomApp}]
