"""Shared state of the pages app: every Form in the kernel sees the same module globals."""

clicks = 0
