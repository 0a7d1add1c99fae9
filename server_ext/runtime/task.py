"""A background task's process: forked from the template, it runs one task and ends.

It leads a process group of its own, so that stopping it from outside (``kill``, ``task_timeout``)
also stops whatever it forked, and so does its end.  ``server.task_state`` is a
:class:`~greenroom.tasks.TaskState` whose changes a thread sends to the host, coalesced: a change
after a quiet spell goes out :data:`SETTLE` seconds later (with the changes right behind it), then at
most one message every :data:`STATE_INTERVAL` seconds with the latest state.
The task's last state always reaches the host before its result.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout

from greenroom.api import CallSession, server
from greenroom.codec import decode_arguments, encode_json
from greenroom.errors import NoServerFunctionError
from greenroom.protocol import CallRequest, CallResult, Kind, Role, error_payload
from greenroom.registry import functions
from greenroom.tasks import TaskState
from greenroom.wire import route_bytes

from .channel import Channel, die_with_parent
from .loader import locate_frame
from .worker import (
    BoundedOutput,
    WorkerOptions,
    WorkerTransport,
    call_context,
    call_user,
    check_size,
    limit_memory,
    run_function,
    value_result,
)

__all__ = ["STATE_INTERVAL", "StateSender", "run_task"]

#: At most one state message per this many seconds (about 20 a second), the latest state each time.
STATE_INTERVAL = 0.05
#: Written together is sent together: a change waits this long for the ones right behind it
#: (``progress`` and then ``message``, say), so that they travel as one state.
SETTLE = 0.002


class StateSender:
    """Sends the task's state to the host from a thread of its own: the task never waits for it."""

    def __init__(self, channel: Channel, max_message_size: int) -> None:
        self.channel = channel
        self.max_message_size = max_message_size
        self.changed = threading.Event()
        self.dirty = False
        self.stopped = False
        self.state = TaskState(self._mark)
        self.thread = threading.Thread(target=self._run, name="greenroom-task-state", daemon=True)
        self.thread.start()

    def _mark(self) -> None:
        self.dirty = True
        self.changed.set()

    def _run(self) -> None:
        last = float("-inf")
        while True:
            self.changed.wait()
            if self.stopped:
                return
            pause = max(SETTLE, last + STATE_INTERVAL - time.monotonic())
            time.sleep(pause)  # changes made meanwhile go out together, as the latest state
            self.changed.clear()
            if self.stopped:
                return
            self.send()
            last = time.monotonic()

    def send(self) -> None:
        """Send the state as it is now (if it changed since the last send)."""
        if not self.dirty:
            return
        self.dirty = False
        try:
            payload, buffers = encode_json(dict(self.state), "task_state")
            check_size("task_state", payload, buffers, self.max_message_size)
            self.channel.send_parts([route_bytes({"kind": Kind.STATE, "nbuf": len(buffers)}), payload, *buffers])
        except (OSError, ValueError, TypeError, RuntimeError):
            # A state that changed while it was read, or grew too large: the next change sends again;
            # a closed channel ends the task anyway.
            self.dirty = True

    def finish(self) -> None:
        """Stop the thread, then send the last state from the caller's thread."""
        self.stopped = True
        self.changed.set()
        self.thread.join(5)
        self.send()


def _run_task(request: CallRequest, options: WorkerOptions, sender: StateSender) -> CallResult:
    entry = functions.tasks.get(request.name)
    output = BoundedOutput()
    try:
        if entry is None:
            raise NoServerFunctionError(f"no background task named {request.name!r}")
        args, kwargs = decode_arguments(request.payload, request.buffers, options.max_values)
        with (
            redirect_stdout(output),
            redirect_stderr(output),
            server.running_call(CallSession({}), call_context(request, call_user(request))),
            server.running_task(sender.state),
        ):
            value = run_function(entry.function, args, kwargs)
        result = value_result(request.call_id, value, options)
    except Exception as error:  # noqa: BLE001 - every failure of the task goes to its holders
        result = CallResult(request.call_id, False, *error_payload(error, locate_frame))
    if output.size or output.dropped:
        result.output = output.text()
    return result


def _end_own_group() -> None:
    """Stop whatever the task forked (its process group), and with it this process."""
    pid = os.getpid()
    if pid > 1 and os.getpgid(0) == pid:
        os.killpg(pid, signal.SIGKILL)


def run_task(options: WorkerOptions, task_id: str) -> None:
    """Body of a forked task process; never returns."""
    code = 0
    try:
        die_with_parent()
        os.setpgid(0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        random.seed()
        limit_memory(options.memory_limit)
        channel = Channel(options.socket, options.max_message_size)
        server.set_transport(WorkerTransport(channel, options.max_values))
        channel.hello(Role.TASK, options.generation, task_id)
        route, parts = channel.receive()
        request = CallRequest.unpack(route, parts)
        sender = StateSender(channel, options.max_message_size)
        result = _run_task(request, options, sender)
        sender.finish()
        channel.send_parts(result.pack())
    except (EOFError, ConnectionError):
        code = 0
    except BaseException:  # noqa: BLE001 - a task must never fall back into the template's loop
        traceback.print_exc()  # reaches the server's log through the inherited stderr
        code = 1
    finally:
        try:
            _end_own_group()
        finally:
            os._exit(code)
