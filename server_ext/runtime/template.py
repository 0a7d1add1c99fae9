"""The template process: loads the server notebooks once, then forks workers on request.

Run by the host as ``python -m greenroom.server_ext.runtime.template``.  It
speaks to the host over a unix socket: it reports what loaded (functions, tasks
and load errors), forks workers (``spawn``) and background tasks (``spawn_task``)
when asked, kills one of its own children when asked (``kill``; a task with the
processes it forked), and exits when told or when the host goes away.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import socket
import sys

from greenroom.errors import WireError
from greenroom.protocol import Kind, Role

from .channel import Channel, die_with_parent
from .loader import load_notebooks
from .task import run_task
from .worker import WorkerOptions, run_worker, warm_up

__all__ = ["main"]


class Template:
    """The fork server of one generation."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.children: set[int] = set()
        self.tasks: set[int] = set()  # the children that run a background task
        self.channel = Channel(options.socket, options.max_message_size)

    def fork_worker(self) -> None:
        pid = os.fork()
        if pid == 0:
            self.channel.sock.close()
            run_worker(self.worker_options())
        self.children.add(pid)

    def fork_task(self, task_id: object) -> None:
        if not isinstance(task_id, str) or not task_id.isalnum():
            return
        pid = os.fork()
        if pid == 0:
            self.channel.sock.close()
            run_task(self.worker_options(), task_id)
        self.children.add(pid)
        self.tasks.add(pid)

    def worker_options(self) -> WorkerOptions:
        return WorkerOptions(
            self.options.socket,
            self.options.generation,
            self.options.persistent,
            self.options.memory_limit,
            self.options.max_message_size,
            self.options.max_values,
        )

    def kill(self, pid: object) -> None:
        # Only a child this template forked and has not reaped yet: never any other pid.  A task leads a
        # process group of its own (with whatever it forked): the group goes with it.
        if isinstance(pid, int) and pid > 1 and pid in self.children:
            if pid in self.tasks:
                try:
                    os.killpg(pid, signal.SIGKILL)
                    return
                except ProcessLookupError:  # the task has not made its group yet: only the process itself
                    pass
            os.kill(pid, signal.SIGKILL)

    def reap(self) -> None:
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done == pid:
                self.children.discard(pid)
                self.tasks.discard(pid)

    def kill_all(self) -> None:
        for pid in list(self.children):
            self.kill(pid)
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.children.clear()

    def serve(self) -> None:
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        signal.set_wakeup_fd(wake_write.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)
        try:
            while True:
                ready, _, _ = select.select([self.channel.sock, wake_read], [], [])
                if wake_read in ready:
                    try:
                        wake_read.recv(4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                if self.channel.sock in ready:
                    route, _ = self.channel.receive()
                    kind = route["kind"]
                    if kind == Kind.SPAWN:
                        for _ in range(max(0, min(int(route.get("count", 1)), 64))):
                            self.fork_worker()
                    elif kind == Kind.SPAWN_TASK:
                        self.fork_task(route.get("task"))
                    elif kind == Kind.KILL:
                        self.kill(route.get("pid"))
                    elif kind == Kind.EXIT:
                        return
        except (EOFError, OSError, WireError):
            return
        finally:
            self.kill_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="greenroom runtime template (started by the host)")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--generation", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--persistent", action="store_true")
    parser.add_argument("--memory-limit", type=int, default=-1)
    parser.add_argument("--max-message-size", type=int, default=1 << 27)
    parser.add_argument("--max-values", type=int, default=1_000_000)
    options = parser.parse_args(argv)
    die_with_parent()
    sources = json.loads(sys.stdin.readline() or "[]")
    template = Template(options)
    template.channel.hello(Role.TEMPLATE, options.generation)
    result = load_notebooks(options.root, sources)
    template.channel.send({"kind": Kind.LOADED, **result})
    warm_up()
    gc.collect()
    gc.freeze()  # keep the loaded objects' pages shared with the forked workers
    template.serve()


if __name__ == "__main__":
    main()
