"""What a process costs, read from Linux's /proc: its memory and its CPU time (its own, its reaped
children's, its whole tree's), for the benchmark tables and the profile."""

from __future__ import annotations

import os
from pathlib import Path

from common import BenchmarkError

__all__ = ["cpu_seconds", "rss_mb", "tree_cpu_seconds", "user_system_seconds"]


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise BenchmarkError(f"no VmRSS for pid {pid}")


def _cpu_times(pid: int) -> tuple[float, float, float, float]:
    """User and system CPU seconds of ``pid``, then of its children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    user, system, reaped_user, reaped_system = (int(field) / tick for field in fields[11:15])
    return user, system, reaped_user, reaped_system


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of ``pid`` itself, and of its children it has reaped."""
    user, system, reaped_user, reaped_system = _cpu_times(pid)
    return user + system, reaped_user + reaped_system


def user_system_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` itself (system time is the kernel's work for it: system calls,
    wake-ups, page faults)."""
    user, system, _, _ = _cpu_times(pid)
    return user, system


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, its live children and its reaped children (the runtime: template + workers)."""
    own, reaped = cpu_seconds(pid)
    total = own + reaped
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
    except OSError:
        children = []
    for child in children:
        try:
            total += cpu_seconds(int(child))[0]
        except OSError:
            pass  # ended in between; counted once its parent reaps it
    return total
