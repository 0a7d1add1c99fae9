"""The host's configuration: a frozen copy of the ``GreenroomApp`` options, free of any application.

Every embedding (the Jupyter server extension, ``greenroom serve``, a standalone host) builds one
:class:`HostConfig` from its traitlets and hands it to the :class:`~greenroom.server_ext.host.Host`;
nothing downstream reads an application object.  Values are checked and normalised once, here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["HostConfig"]


@dataclass(frozen=True, slots=True)
class HostConfig:
    """What the host does; the help text of each field is on the matching ``GreenroomApp`` trait."""

    server_notebooks: tuple[str, ...] = ("*.server.ipynb",)
    persistent: bool = False
    call_timeout: float = 30.0
    max_message_size: int = 128 * 1024 * 1024
    max_payload_size: int = 16 * 1024 * 1024
    max_values: int = 1_000_000
    max_session_bytes: int = 256 * 1024 * 1024
    max_calls_per_session: int = 64
    prefork: int = 2
    workers: int = 2
    max_workers: int = 8
    max_workers_per_session: int = 0
    worker_memory_limit: int = -1
    reload_poll_interval: float = 1.0
    load_timeout: float = 120.0
    python: str = ""
    call_log: bool = False
    data_dir: str = ""
    max_tasks: int = 4
    task_timeout: float = 0.0
    task_record_days: float = 7.0
    dask_scheduler: str = ""

    def __post_init__(self) -> None:
        for name in ("call_timeout", "reload_poll_interval", "load_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"GreenroomApp.{name} must be a positive number of seconds, not {getattr(self, name)!r}"
                )
        for name in (
            "max_message_size",
            "max_payload_size",
            "max_values",
            "max_session_bytes",
            "max_calls_per_session",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"GreenroomApp.{name} must be at least 1, not {getattr(self, name)!r}")
        if self.max_tasks < 1:
            raise ValueError(f"GreenroomApp.max_tasks must be at least 1, not {self.max_tasks!r}")
        if not self.task_timeout >= 0:
            raise ValueError(f"GreenroomApp.task_timeout must be 0 (no limit) or seconds, not {self.task_timeout!r}")
        if not self.task_record_days > 0:
            raise ValueError(f"GreenroomApp.task_record_days must be a positive number, not {self.task_record_days!r}")
        if self.worker_memory_limit < -1:
            raise ValueError(
                "GreenroomApp.worker_memory_limit must be -1 (automatic), 0 (no limit) or a number of bytes"
            )
        if self.max_workers_per_session < 0:
            raise ValueError("GreenroomApp.max_workers_per_session must be 0 (half of max_workers) or more")
        # At least one worker is ever kept; max_workers never falls below what the other two ask for.
        prefork, workers = max(1, int(self.prefork)), max(1, int(self.workers))
        object.__setattr__(self, "server_notebooks", tuple(self.server_notebooks))
        object.__setattr__(self, "prefork", prefork)
        object.__setattr__(self, "workers", workers)
        max_workers = max(prefork, workers, int(self.max_workers))
        object.__setattr__(self, "max_workers", max_workers)
        per_session = self.max_workers_per_session or max(1, max_workers // 2)
        object.__setattr__(self, "max_workers_per_session", min(per_session, max_workers))
        object.__setattr__(self, "python", self.python or sys.executable)

    @classmethod
    def from_options(cls, options: Any) -> HostConfig:
        """Read every field from the attribute of the same name (a ``GreenroomApp``, or any object)."""
        return cls(**{field.name: getattr(options, field.name) for field in fields(cls)})
