"""The messages of background tasks: a task's status names and :class:`TaskUpdate`, all a holder of a task
may know of it, as the host sends it to server code (in a :class:`~greenroom.protocol.Reply`) and pushes it
to clients that watch the task.  Kinds and roles are :mod:`greenroom.protocol`'s.

Invariant: the host forwards a task's state and outcome as the task's own process encoded them, unread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from .errors import WireError
from .protocol import Kind, Reply, SessionParts
from .wire import Parts, route_bytes

__all__ = ["TaskStatus", "TaskUpdate"]


class TaskStatus:
    """Where a task is: waiting for a slot, running, or ended (the last four, its termination status)."""

    PENDING: Final = "pending"
    RUNNING: Final = "running"
    COMPLETED: Final = "completed"
    FAILED: Final = "failed"
    KILLED: Final = "killed"
    MISSING: Final = "missing"
    ENDED: Final = (COMPLETED, FAILED, KILLED, MISSING)


@dataclass(slots=True)
class TaskUpdate:
    """All a holder of a task may know of it: ``[info, state, outcome, *state_buffers, *outcome_buffers]``
    where ``info`` is JSON (id, name, status, times as epoch seconds, buffer counts), ``state`` the task's
    encoded ``task_state`` and ``outcome`` its encoded return value (``completed``) or its error's data
    (``failed``, ``killed``, ``missing``), empty while it runs.  The host forwards state and outcome as the
    task's process encoded them, unread.  It travels as a :class:`Reply`'s payload and buffers (an answer
    to server code) or after a ``{"kind": "task"}`` route (pushed to a client)."""

    task_id: str
    name: str
    status: str
    launched: float
    started: float | None = None
    ended: float | None = None
    state: SessionParts = (b"{}", [])
    outcome: SessionParts = (b"", [])

    @property
    def ended_status(self) -> str | None:
        return self.status if self.status in TaskStatus.ENDED else None

    def info(self) -> dict[str, Any]:
        return {
            "id": self.task_id,
            "name": self.name,
            "status": self.status,
            "launched": self.launched,
            "started": self.started,
            "ended": self.ended,
        }

    def parts(self) -> Parts:
        info = {**self.info(), "sbuf": len(self.state[1]), "obuf": len(self.outcome[1])}
        return [
            json.dumps(info).encode(),
            self.state[0],
            self.outcome[0],
            *self.state[1],
            *self.outcome[1],
        ]

    def reply(self) -> Reply:
        parts = self.parts()
        return Reply(True, parts[0], parts[1:])

    def push(self) -> Parts:
        return [route_bytes({"kind": Kind.TASK}), *self.parts()]

    @classmethod
    def from_parts(cls, parts: Parts) -> TaskUpdate:
        """:class:`WireError` unless ``parts`` are ``[info, state, outcome, *buffers]`` as :meth:`parts` packs."""
        if len(parts) < 3:
            raise WireError("a task update has info, state and outcome parts")
        try:
            info = json.loads(bytes(parts[0]))
        except (ValueError, RecursionError):
            raise WireError("malformed task info") from None
        if not isinstance(info, dict) or not isinstance(info.get("id"), str):
            raise WireError("task info needs a string 'id'")
        sbuf, obuf = info.get("sbuf", 0), info.get("obuf", 0)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (sbuf, obuf)) or (
            3 + sbuf + obuf != len(parts)
        ):
            raise WireError("task info's buffer counts do not match its parts")
        return cls(
            info["id"],
            str(info.get("name", "")),
            str(info.get("status", "")),
            _float(info.get("launched")) or 0.0,
            _float(info.get("started")),
            _float(info.get("ended")),
            (parts[1], list(parts[3 : 3 + sbuf])),
            (parts[2], list(parts[3 + sbuf :])),
        )

    @classmethod
    def from_reply(cls, reply: Reply) -> TaskUpdate:
        if not reply.ok:
            reply.result()  # raises the host's error
        return cls.from_parts([reply.payload, *reply.buffers])


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
