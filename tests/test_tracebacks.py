"""Tracebacks in a notebook show the user's line, the message and the server frames; greenroom's own frames are
hidden (of a local error, IPython still shows the one that raised: it always shows the last frame)."""

from __future__ import annotations

from helpers import failure_shown


async def test_a_serialization_error_shows_no_greenroom_frames(start_kernel):
    shown = await failure_shown(await start_kernel(), "from greenroom import server\nserver.call('add', {1, 2}, 3)")
    assert "SerializationError" in shown and "args[0]: set" in shown
    assert "skipping hidden" in shown
    assert sum(shown.count(name) for name in ("codec.py", "api.py", "protocol.py")) <= 1


async def test_a_remote_error_shows_the_users_line_and_the_server_frames_only(start_kernel):
    shown = await failure_shown(await start_kernel(), "from greenroom import server\nserver.call('divide', 1, 0)")
    assert "ZeroDivisionError" in shown and "<server notebook calc.server.ipynb, cell 1>:22, in divide" in shown
    assert "server.call('divide', 1, 0)" in shown and "return a / b" not in shown
    assert "api.py" not in shown and "protocol.py" not in shown and "remote_errors.py" not in shown
