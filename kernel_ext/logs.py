"""The one ``greenroom`` logger of a client process (a kernel, a script, a worker).

Messages go through it with lazy ``%`` arguments; its name, not the text, says they are
greenroom's.  Inside a Jupyter server the host logs through a child of the server's own
logger (``ServerApp.greenroom``), so its lines follow the server's format and level.
"""

from __future__ import annotations

import logging

__all__ = ["log"]

log = logging.getLogger("greenroom")
