"""`greenroom host DIR`: the standalone host as a real process, called with its token, stopped cleanly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from processes import free_port, start, stop

from helpers import CALC_SOURCE, SECRET, write_notebook

GREENROOM = os.path.join(os.path.dirname(sys.executable), "greenroom")

POLICY_SOURCE = """
from greenroom import server

@server.callable(require_user=True)
def members_only(secret_argument):
    return "in"

@server.callable(require_user=lambda user: "teachers" in user.groups)
def teachers_only():
    raise AssertionError("never runs for a caller without a user")

@server.callable(rate_limit="3/minute")
def limited():
    return "ok"
"""


def children_of(pid: int) -> set[int]:
    """The process's direct children (from /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(child) for child in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def launch_host(tmp_path: Path, root: Path, *options: str, log_name: str = "host.log") -> dict:
    """``greenroom host root`` on a free port, once it printed its URL and token."""
    runtime = tmp_path / "host-runtime"
    runtime.mkdir(exist_ok=True)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime))
    for name in ("GREENROOM_URL", "GREENROOM_TOKEN", "GREENROOM_KERNEL_ID", "GREENROOM_SOCKET"):
        env.pop(name, None)
    log = tmp_path / log_name
    process = start([GREENROOM, "host", str(root), "--port", str(free_port()), *options], str(log), env=env)
    deadline = time.monotonic() + 60
    while not re.search(r"GREENROOM_TOKEN=(\w+)", log.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError(f"greenroom host did not start:\n{log.read_text()}")
        time.sleep(0.1)
    text = log.read_text()
    url = re.search(r"GREENROOM_URL=(\S+)", text).group(1)
    token = re.search(r"GREENROOM_TOKEN=(\w+)", text).group(1)
    return {"process": process, "url": url, "token": token, "runtime": runtime, "env": env, "log": log}


@pytest.fixture
def standalone(tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "calc.server.ipynb", CALC_SOURCE)
    write_notebook(root / "policy.server.ipynb", POLICY_SOURCE)
    host = launch_host(tmp_path, root, "--GreenroomApp.persistent=True")
    yield host
    stop(host["process"])


def run_client(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def test_a_process_with_the_url_and_token_calls_it_and_a_wrong_token_is_refused(standalone):
    env = dict(standalone["env"], GREENROOM_URL=standalone["url"], GREENROOM_TOKEN=standalone["token"])
    done = run_client("from greenroom import server\nprint(server.call('add', 2, 3), server.call('whoami'))", env)
    assert done.stdout.split() == ["5", "['local',", "'whoami']"], done.stderr
    connected = run_client(
        f"import greenroom\ngreenroom.connect({standalone['url']!r}, token={standalone['token']!r})\n"
        "print(greenroom.server.call('add', 20, 22))",
        standalone["env"],
    )
    assert connected.stdout.split() == ["42"], connected.stderr
    refused = run_client(
        "from greenroom import server\ntry:\n    server.call('add', 1, 1)\nexcept server.ConnectionError as e:\n"
        "    print('refused:', e)",
        dict(env, GREENROOM_TOKEN="wrong"),
    )
    assert "refused: " in refused.stdout and "HTTP 403" in refused.stdout, refused.stderr
    assert SECRET not in done.stdout + connected.stdout + refused.stdout + standalone["log"].read_text()


def test_it_writes_a_private_runtime_file_and_sigterm_leaves_nothing_behind(standalone):
    process = standalone["process"]
    (runtime_file,) = standalone["runtime"].glob("greenroom-*.json")
    assert runtime_file.stat().st_mode & 0o777 == 0o600
    assert standalone["token"] in runtime_file.read_text()
    env = dict(standalone["env"], GREENROOM_URL=standalone["url"], GREENROOM_TOKEN=standalone["token"])
    assert run_client("from greenroom import server\nprint(server.call('add', 1, 1))", env).stdout.strip() == "2"
    runtime_processes = children_of(process.pid)
    assert runtime_processes  # the template that loaded the notebooks
    descendants = set(runtime_processes)
    for pid in runtime_processes:
        descendants |= children_of(pid)
    stop(process)
    assert process.returncode == 0, standalone["log"].read_text()[-2000:]
    assert not any(alive(pid) for pid in descendants)
    assert not list(standalone["runtime"].glob("greenroom-*.json"))


def test_bad_command_lines_get_usage(tmp_path):
    for args, message in (
        ([], "usage: greenroom host DIR"),
        ([str(tmp_path / "missing")], "is not a folder"),
        ([str(tmp_path), "--GreenroomApp.call_timeout=-1"], "greenroom host: GreenroomApp.call_timeout"),
    ):
        done = subprocess.run([GREENROOM, "host", *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0 and message in done.stderr + done.stdout, (args, done.stderr)


@pytest.fixture
def pointed_elsewhere(standalone, monkeypatch):
    """The Jupyter server's environment names the standalone host (as a hub admin's Spawner.environment does)."""
    monkeypatch.setenv("GREENROOM_URL", standalone["url"])
    monkeypatch.setenv("GREENROOM_TOKEN", standalone["token"])
    return standalone


async def test_a_server_whose_environment_names_a_host_leaves_its_kernels_pointed_at_it(
    pointed_elsewhere, start_kernel
):
    kernel = await start_kernel()
    out = await kernel.run(
        "import os\nfrom greenroom import server\n"
        "print(os.environ['GREENROOM_URL'], 'GREENROOM_KERNEL_ID' in os.environ, server.call('whoami')[0])\n"
        "%load_ext greenroom\n%greenroom"
    )
    url, has_kernel_id, client_type = out.splitlines()[0].split()
    assert url == pointed_elsewhere["url"] and has_kernel_id == "False" and client_type == "local"
    assert f"connected to {pointed_elsewhere['url']} (GREENROOM_URL in the environment)" in out


def test_a_hub_users_kernel_presents_its_hub_token_when_it_has_no_greenroom_token(monkeypatch):
    from greenroom.connection import find_endpoint

    monkeypatch.setenv("GREENROOM_URL", "http://127.0.0.1:1/services/greenroom/")
    monkeypatch.delenv("GREENROOM_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    endpoint, _ = find_endpoint()
    assert endpoint is not None and endpoint.headers == {"Authorization": "token hub-token"}
    assert "JupyterHub token" in endpoint.source
    assert endpoint.ws_url() == "ws://127.0.0.1:1/services/greenroom/greenroom/api/ws"
    monkeypatch.setenv("GREENROOM_URL", "http://127.0.0.1:1/services/greenroom")  # no trailing slash: the same
    assert find_endpoint()[0].ws_url() == "ws://127.0.0.1:1/services/greenroom/greenroom/api/ws"
    monkeypatch.setenv("GREENROOM_TOKEN", "greenroom-token")  # a greenroom token, when given, wins
    endpoint, _ = find_endpoint()
    assert endpoint is not None and endpoint.headers["X-Greenroom-Token"] == "greenroom-token"


def test_policies_refuse_before_any_server_code_and_the_call_log_has_every_call(standalone, tmp_path):
    env = dict(standalone["env"], GREENROOM_URL=standalone["url"], GREENROOM_TOKEN=standalone["token"])
    code = """
        from greenroom import server
        for name, args in (("members_only", ("do-not-log-me",)), ("teachers_only", ())):
            try:
                server.call(name, *args)
            except server.AuthenticationFailed as error:
                print("refused:", name, isinstance(error, PermissionError))
        print([server.call("limited") for _ in range(3)])
        try:
            server.call("limited")
        except server.RateLimitExceeded as error:
            print("limited:", 0 < error.retry_after <= 60)
    """
    done = run_client(code, env)
    assert done.stdout.splitlines() == [
        "refused: members_only True",
        "refused: teachers_only True",
        "['ok', 'ok', 'ok']",
        "limited: True",
    ], done.stderr
    again = run_client("from greenroom import server\nprint(server.call('limited'))", env)
    assert again.stdout.strip() == "ok", again.stderr  # without a user, the limit is per session
    stop(standalone["process"])  # the log is written at the latest when the host stops
    root = str(standalone["log"].parent / "notebooks")
    shown = subprocess.run(
        [GREENROOM, "calls", root, "--csv"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    rows = shown.splitlines()
    assert rows[0] == "time,user,session,function,duration_ms,outcome"
    outcomes = [(row.split(",")[3], row.split(",")[5]) for row in rows[1:]]
    assert ("members_only", "AuthenticationFailed") in outcomes and (
        "teachers_only",
        "AuthenticationFailed",
    ) in outcomes
    assert outcomes.count(("limited", "ok")) == 4 and ("limited", "RateLimitExceeded") in outcomes
    assert "do-not-log-me" not in shown and standalone["token"] not in shown and SECRET not in shown
    table = subprocess.run([GREENROOM, "calls", root], capture_output=True, text=True, timeout=60, check=True).stdout
    assert table.splitlines()[0].split() == ["time", "user", "session", "function", "duration_ms", "outcome"]
    missing = subprocess.run(
        [GREENROOM, "calls", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode != 0 and "no call log at" in missing.stderr


def test_a_hub_service_whose_hub_is_down_refuses_with_the_reason_and_keeps_serving(tmp_path):
    """Started as an external JupyterHub service while no hub answers: a hub token is refused within the hub
    timeout with a 503 that names the cause, huge headers are refused, and the owner's calls still work."""
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "calc.server.ipynb", CALC_SOURCE)
    runtime = tmp_path / "host-runtime"
    runtime.mkdir()
    port, dead_hub = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GREENROOM_", "JUPYTERHUB_"))}
    env.update(
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTERHUB_SERVICE_NAME="greenroom",
        JUPYTERHUB_API_TOKEN="service-token-" + "0" * 20,
        JUPYTERHUB_API_URL=f"http://127.0.0.1:{dead_hub}/hub/api",
        JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}",
        JUPYTERHUB_SERVICE_PREFIX="/services/greenroom/",
    )
    log = tmp_path / "host.log"
    process = start([GREENROOM, "host", str(root), "--GreenroomHostApp.hub_timeout=5"], str(log), env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(runtime.glob("greenroom-*.json")) or "as JupyterHub service" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/services/greenroom/"
        client_env = {key: value for key, value in env.items() if not key.startswith("JUPYTERHUB_")}
        code = (
            "import time\nfrom greenroom import server\nstarted = time.monotonic()\ntry:\n"
            "    server.call('add', 1, 1)\nexcept server.ConnectionError as error:\n"
            "    print(round(time.monotonic() - started), error)"
        )
        refused = run_client(code, dict(client_env, GREENROOM_URL=url, JUPYTERHUB_API_TOKEN="a-students-token"))
        seconds, message = refused.stdout.split(" ", 1)
        assert int(seconds) <= 10 and "HTTP 503: greenroom: the hub could not check the token" in message, (
            refused.stdout + refused.stderr
        )
        huge = run_client(code, dict(client_env, GREENROOM_URL=url, JUPYTERHUB_API_TOKEN="x" * 100_000))
        assert "refused the connection" in huge.stdout or "cannot reach" in huge.stdout, huge.stdout + huge.stderr
        token = json.loads(next(runtime.glob("greenroom-*.json")).read_text())["token"]
        served = run_client(
            "from greenroom import server\nprint(server.call('add', 2, 3))",
            dict(client_env, GREENROOM_URL=url, GREENROOM_TOKEN=token),
        )
        assert served.stdout.strip() == "5", served.stderr
        assert "a-students-token" not in log.read_text()  # tokens are never logged
    finally:
        stop(process)


TASKS_SOURCE = """
import time
from greenroom import server, BlobMedia

@server.background_task
def quick():
    server.task_state["message"] = "done soon"
    return "finished"

@server.background_task
def large(size):
    return BlobMedia("application/octet-stream", b"x" * size)

@server.background_task
def forever():
    while True:
        time.sleep(0.05)

@server.callable
def start(name, *args):
    task = server.launch_background_task(name, *args)
    return task.get_id()

@server.callable
def outcome(task_id, wait=False):
    task = server.get_background_task(task_id)
    if wait:
        task.wait(30) if task.get_task_name() != "forever" else None
    value = task.get_return_value()
    size = len(value.get_bytes()) if hasattr(value, "get_bytes") else value
    return [task.get_termination_status(), size, str(task.get_error() or ""), task.get_state()]
"""


def test_a_restarted_host_answers_for_ended_tasks_and_calls_the_cut_off_ones_missing(tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "tasks.server.ipynb", TASKS_SOURCE)
    first = launch_host(tmp_path, root, log_name="first.log")
    try:
        env = dict(first["env"], GREENROOM_URL=first["url"], GREENROOM_TOKEN=first["token"])
        started = run_client(
            "import json\nfrom greenroom import server\n"
            "ids = [server.call('start', 'quick'), server.call('start', 'large', 3 << 20), "
            "server.call('start', 'forever')]\n"
            "print(json.dumps([server.call('outcome', ids[0], True), server.call('outcome', ids[1], True)[:2], ids]))",
            env,
        )
        assert started.stdout, started.stderr
        quick, large, ids = json.loads(started.stdout)
        assert quick == ["completed", "finished", "", {"message": "done soon"}], started.stderr
        assert large == ["completed", 3 << 20]
        records = root / ".greenroom"
        assert (records / "task-results" / ids[1]).stat().st_size > 3 << 20  # a large result is a file
        assert (records / "tasks.sqlite").stat().st_size < 1 << 20  # ... not in the database
    finally:
        stop(first["process"])
    second = launch_host(tmp_path, root, log_name="second.log")
    try:
        env = dict(second["env"], GREENROOM_URL=second["url"], GREENROOM_TOKEN=second["token"])
        answered = run_client(
            f"import json\nfrom greenroom import server\nprint(json.dumps([server.call('outcome', i) for i in {ids!r}]))",
            env,
        )
        quick, large, forever = json.loads(answered.stdout)
        assert quick == ["completed", "finished", "", {"message": "done soon"}], answered.stderr
        assert large[:2] == ["completed", 3 << 20]
        assert forever[0] == "missing" and "was running when its host stopped" in forever[2]
    finally:
        stop(second["process"])
