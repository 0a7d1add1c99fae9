"""The public API's small promises: star imports, shown signatures, per-context call state, the version."""

from __future__ import annotations

import asyncio
import builtins
import threading
from importlib.metadata import version

import greenroom
from greenroom import server
from greenroom.api import CallContext
from greenroom.registry import public_signature


def test_star_import_does_not_shadow_builtins():
    namespace: dict[str, object] = {}
    exec("from greenroom import *", namespace)  # noqa: S102 - the import a notebook would run
    assert "ConnectionError" not in namespace and "TimeoutError" not in namespace
    assert "server" in namespace and "GreenroomError" in namespace
    assert issubclass(greenroom.ConnectionError, builtins.ConnectionError)
    assert server.TimeoutError is greenroom.TimeoutError and issubclass(server.TimeoutError, builtins.TimeoutError)


def test_signatures_keep_their_markers_and_hide_defaults_and_annotations():
    def f(a, /, b, *, c, d=1):  # type: ignore[no-untyped-def]
        pass

    def g(key: str = "s3cret", *args: int, flag: bool = True, **options: object) -> bool:
        return True

    assert public_signature(f) == "(a, /, b, *, c, d=…)"
    assert public_signature(g) == "(key=…, *args, flag=…, **options)"
    assert "s3cret" not in public_signature(g)
    assert public_signature(len) == "(obj, /)"


def test_call_session_and_context_belong_to_the_running_call_only():
    seen: dict[str, object] = {}
    inside = threading.Event()
    done = threading.Event()

    def call() -> None:
        with server.running_call({"user": "ada"}, CallContext("kernel", "k1", "f", "1")):
            inside.set()
            done.wait(10)
            seen["call"] = (dict(server.session), server.context.client_id)

            async def task() -> tuple[object, str]:  # asyncio tasks inherit the call's context
                return dict(server.session), server.context.function

            seen["task"] = asyncio.run(task())

    thread = threading.Thread(target=call)
    thread.start()
    inside.wait(10)
    seen["other thread"] = (dict(server.session), server.context.client_id)  # this thread runs no call
    done.set()
    thread.join(10)
    assert seen == {"call": ({"user": "ada"}, "k1"), "task": ({"user": "ada"}, "f"), "other thread": ({}, "")}
    assert server.context == CallContext()


def test_the_version_is_written_once():
    assert greenroom.__version__ == version("greenroom")
