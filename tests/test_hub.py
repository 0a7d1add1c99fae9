"""`greenroom host` as a JupyterHub service, against a real hub with the Node proxy, dummy auth and real
single-user servers: students' kernels call with no code change, the host knows who calls, and tokens
that must not call are refused before the socket opens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import free_port, start, stop, wait_for_http
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from greenroom.errors import ConnectionError as GreenroomConnectionError
from greenroom.server_ext.calllog import read_calls
from helpers import SECRET, Client, KernelSocket, without_colours, write_notebook

pytestmark = pytest.mark.hub

BIN = os.path.dirname(sys.executable)
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "notebooks")
PROXY = shutil.which("configurable-http-proxy")
ADMIN_TOKEN = "a0" * 16
OTHER_SERVICE_TOKEN = "b1" * 16

COURSE = f'''
from greenroom import server

ANSWER = "{SECRET}"   # the teacher's, never a student's

@server.callable
def whoami():
    user = server.context.user
    return None if user is None else [user.name, sorted(user.groups)]

@server.callable
def remember(value):
    server.session["value"] = value

@server.callable
def recall():
    return server.session.get("value")

@server.callable(require_user=lambda user: "teachers" in user.groups)
def teachers_report():
    return "report for " + server.context.user.name

@server.callable(rate_limit="2/minute")
def limited_check():
    return "checked"

@server.callable
def explode(guess):
    if guess != ANSWER:
        raise ValueError("wrong answer")
'''


def hub_config(ports: dict[str, int], root: str, homes: str, singleuser: str = "") -> str:
    """Students and a teacher, the greenroom service on ``root``, and two other services.  Servers run as the
    hub's own user under ``homes`` (SimpleLocalProcessSpawner), or, with ``singleuser`` (a command), as
    system users of the same names (LocalProcessSpawner, as The Littlest JupyterHub runs them)."""
    service_url = f"http://127.0.0.1:{ports['service']}"
    spawner = (
        f'c.JupyterHub.spawner_class = "localprocess"\nc.Spawner.cmd = [{singleuser!r}]'
        if singleuser
        else 'c.JupyterHub.spawner_class = "simple"\n'
        f'c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"\n'
        f"c.Spawner.cmd = [{os.path.join(BIN, 'jupyterhub-singleuser')!r}]\n"
        'c.Spawner.args = ["--allow-root"]'
    )
    return spawner + textwrap.dedent(
        f"""
        c.JupyterHub.ip = "127.0.0.1"
        c.JupyterHub.port = {ports["hub"]}
        c.JupyterHub.hub_ip = "127.0.0.1"
        c.JupyterHub.hub_port = {ports["api"]}
        c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports["proxy_api"]}"
        c.ConfigurableHTTPProxy.command = [{PROXY!r}]
        c.JupyterHub.authenticator_class = "dummy"
        c.Spawner.start_timeout = 90
        c.Spawner.http_timeout = 90
        c.Spawner.environment = {{"GREENROOM_URL": "http://127.0.0.1:{ports["hub"]}/services/greenroom/"}}
        c.Spawner.server_token_scopes = [
            "users:activity!user", "access:servers!server", "access:services!service=greenroom"
        ]
        c.JupyterHub.services = [
            {{"name": "greenroom", "url": {service_url!r},
              "command": [{os.path.join(BIN, "greenroom")!r}, "host", {root!r},
                          "--GreenroomApp.max_calls_per_session=256", "--GreenroomHostApp.hub_timeout=3",
                          "--GreenroomApp.call_timeout=120"]}},
            {{"name": "admin-bot", "api_token": {ADMIN_TOKEN!r}}},
            {{"name": "other-service", "api_token": {OTHER_SERVICE_TOKEN!r}}},
        ]
        c.JupyterHub.load_groups = {{"students": {{"users": ["alice", "bob"]}}, "teachers": {{"users": ["tess"]}}}}
        c.JupyterHub.load_roles = [
            {{"name": "user", "scopes": ["self", "access:services!service=greenroom"]}},
            {{"name": "admin-bot", "services": ["admin-bot"],
              "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "access:services"]}},
            {{"name": "other-service", "services": ["other-service"], "scopes": ["access:services"]}},
        ]
        c.JupyterHub.cleanup_servers = True
        """
    )


@contextlib.contextmanager
def running_hub(directory: Path, config: str, ports: dict[str, int]) -> Iterator[dict[str, Any]]:
    """A JupyterHub (with its proxy and services) running ``config`` (on ``ports``) in ``directory``, stopped
    at the end."""
    if PROXY is None:
        pytest.fail("configurable-http-proxy is missing: run `make test` (it installs it with npm)")
    (directory / "jupyterhub_config.py").write_text(config)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GREENROOM_", "JUPYTERHUB_"))}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    process = start(
        [os.path.join(BIN, "jupyterhub"), "-f", str(directory / "jupyterhub_config.py")],
        str(directory / "hub.log"),
        cwd=str(directory),
        env=env,
    )
    url = f"http://127.0.0.1:{ports['hub']}"
    try:
        wait_for_http(f"{url}/hub/api/", process, timeout=90, any_status=False)
        wait_for_http(f"http://127.0.0.1:{ports['service']}/", process, timeout=90)  # the service itself is up
        yield {"url": url, "log": directory / "hub.log", "process": process}
    finally:
        stop(process, grace=30)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hub")
    root = directory / "course"
    root.mkdir()
    write_notebook(root / "checks.server.ipynb", COURSE)
    shutil.copy(os.path.join(EXAMPLES, "course", "course.server.ipynb"), root)  # the course example, as shipped
    ports = {name: free_port() for name in ("hub", "api", "proxy_api", "service")}
    with running_hub(directory, hub_config(ports, str(root), str(directory / "homes")), ports) as running:
        yield dict(running, root=root)


def api(hub: dict[str, Any], method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN) -> Any:
    request = urllib.request.Request(
        f"{hub['url']}/hub/api/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=90) as response:
        text = response.read()
    return json.loads(text) if text else None


async def wait_for_server(hub: dict[str, Any], name: str) -> None:
    for _ in range(300):
        model = await asyncio.to_thread(api, hub, "GET", f"users/{name}")
        if model.get("servers", {}).get("", {}).get("ready"):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{name}'s server did not start:\n{hub['log'].read_text()[-3000:]}")


async def student_kernel(hub: dict[str, Any], name: str) -> KernelSocket:
    """A kernel in ``name``'s own single-user server, driven through the hub's proxy as a browser would."""
    try:
        await asyncio.to_thread(api, hub, "GET", f"users/{name}")
    except urllib.error.HTTPError:
        await asyncio.to_thread(api, hub, "POST", f"users/{name}", {})
    model = await asyncio.to_thread(api, hub, "GET", f"users/{name}")
    if not model.get("servers", {}).get("", {}).get("ready"):
        await asyncio.to_thread(api, hub, "POST", f"users/{name}/server", {})
    await wait_for_server(hub, name)
    token = (await asyncio.to_thread(api, hub, "POST", f"users/{name}/tokens", {"scopes": ["access:servers!user"]}))[
        "token"
    ]
    base = f"{hub['url']}/user/{name}/"
    response = await AsyncHTTPClient().fetch(
        base + "api/kernels", method="POST", body="{}", headers={"Authorization": f"token {token}"}
    )
    socket = await KernelSocket.open(base, token, json.loads(response.body)["id"])
    await socket.execute("from greenroom import server", timeout=90)
    return socket


async def run(socket: KernelSocket, code: str) -> str:
    return socket.output(await socket.execute(code, timeout=90)).strip()


async def test_students_kernels_call_the_service_as_themselves_with_no_code_change(hub):
    alice, bob = await student_kernel(hub, "alice"), await student_kernel(hub, "bob")
    try:
        assert await run(alice, "print(server.call('whoami'))") == "['alice', ['students']]"
        assert await run(bob, "print(server.call('whoami'))") == "['bob', ['students']]"
        await run(alice, "server.call('remember', 'alice-only')")
        assert await run(bob, "print(server.call('recall'))") == "None"  # sessions are per caller
        assert await run(alice, "print(server.call('recall'))") == "alice-only"
        shown = await run(alice, "%load_ext greenroom\n%greenroom")
        assert "services/greenroom/ (GREENROOM_URL in the environment, with the JupyterHub token)" in shown
        assert "you are hub alice: a caller (may call)" in shown
        assert SECRET not in shown + await run(alice, "print(server.call('whoami'))")
    finally:
        alice.close()
        bob.close()


async def refusal(hub: dict[str, Any], headers: dict[str, str]) -> tuple[int, str]:
    url = hub["url"].replace("http://", "ws://") + "/services/greenroom/greenroom/api/ws"
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(url, headers=headers))
    return refused.value.code, refused.value.response.body.decode() if refused.value.response else ""


async def test_tokens_that_must_not_call_are_refused_before_the_socket_opens(hub):
    await asyncio.to_thread(api, hub, "POST", "users/carol", {})
    no_service_scope = (
        await asyncio.to_thread(api, hub, "POST", "users/carol/tokens", {"scopes": ["access:servers!user"]})
    )["token"]
    for headers, status in (
        ({}, 403),
        ({"Authorization": "token not-a-real-token"}, 403),
        ({"Authorization": f"token {OTHER_SERVICE_TOKEN}"}, 403),
        ({"Authorization": f"token {no_service_scope}"}, 403),
        ({"Authorization": "token " + "x" * 5000}, 403),
    ):
        code, _ = await refusal(hub, headers)
        assert code == status, headers
    log = hub["log"].read_text()
    assert no_service_scope not in log and OTHER_SERVICE_TOKEN not in log  # tokens are never logged
    assert "a service's token cannot call" in log and "does not grant access:services!service=greenroom" in log


async def test_policies_hold_per_user_and_the_call_log_names_the_callers(hub):
    alice, tess = await student_kernel(hub, "alice"), await student_kernel(hub, "tess")
    try:
        refused = await run(
            alice,
            "try:\n    server.call('teachers_report')\nexcept server.PermissionDenied as error:\n    print('denied:', error)",
        )
        assert refused == "denied: teachers_report() is not open to 'alice'"
        assert await run(tess, "print(server.call('teachers_report'))") == "report for tess"
        code = (
            "results = []\nfor _ in range(3):\n    try:\n        results.append(server.call('limited_check'))\n"
            "    except server.RateLimitExceeded as error:\n        results.append(round(error.retry_after) > 0)\n"
            "print(results)"
        )
        assert await run(alice, code) == "['checked', 'checked', True]"
        assert await run(tess, code) == "['checked', 'checked', True]"  # each user has their own allowance
    finally:
        alice.close()
        tess.close()
    log_path = hub["root"] / ".greenroom" / "calls.sqlite"
    for _ in range(100):  # the service writes its log at most a second after the calls
        rows = read_calls(str(log_path)) if log_path.exists() else []
        if any(row[3] == "limited_check" and row[1] == "tess" for row in rows):
            break
        await asyncio.sleep(0.1)
    users_and_outcomes = {(row[1], row[3], row[5]) for row in rows}
    assert ("alice", "teachers_report", "PermissionDenied") in users_and_outcomes
    assert ("tess", "teachers_report", "ok") in users_and_outcomes
    assert ("alice", "limited_check", "RateLimitExceeded") in users_and_outcomes
    assert SECRET not in log_path.read_bytes().decode("utf-8", "replace")


async def test_the_course_example_gives_each_student_their_own_questions_and_tells_the_teacher(hub):
    alice, bob, tess = [await student_kernel(hub, name) for name in ("alice", "bob", "tess")]
    try:
        questions = {
            name: await run(kernel, "print(server.call('my_questions')['mean'])")
            for name, kernel in (("alice", alice), ("bob", bob))
        }
        assert questions["alice"] != questions["bob"]  # variants seeded from the user name
        code = "print(server.call('check_answer', 'mean', '-1')['feedback'])"
        for _ in range(3):
            assert await run(bob, code) == "Add the numbers up, then divide by how many there are."
        numbers = [int(n) for n in questions["alice"].split(" of ")[1].rstrip("?").split(", ")]
        right = f"print(server.call('check_answer', 'mean', '{sum(numbers) / len(numbers)}')['correct'])"
        assert await run(alice, right) == "True"
        report = await run(tess, "print(server.call('class_report').loc['mean'].to_dict())")
        assert report == "{'attempted': 2, 'solved': 1, 'stuck': 'bob'}"
        refused = await run(
            bob, "try:\n    server.call('class_report')\nexcept server.PermissionDenied:\n    print('no')"
        )
        assert refused == "no"
        by_student = await run(
            tess,
            "task = server.call('start_report_by_student')\nreport = task.wait(60)\n"
            "print(task.get_id(), sorted(report.index), report.loc['bob', 'mean'])",
        )
        task_id = by_student.split()[0]
        assert by_student.endswith("['alice', 'bob'] 3 wrong"), by_student
        assert task_id in await run(tess, "%load_ext greenroom\n%greenroom tasks")
        assert task_id not in await run(alice, "%load_ext greenroom\n%greenroom tasks")  # a student sees their own
        watched = await run(
            alice,
            f"from greenroom.tasks import Task\ntry:\n    Task({task_id!r}, '', server._transport).get_state()\n"
            "except LookupError as error:\n    print('refused:', error)",
        )
        assert watched == f"refused: no background task {task_id!r} that you may see"
        score = await run(
            alice, "print(0 <= server.call('score_challenge', server.call('challenge_inputs')[:, 0] > 0) <= 1)"
        )
        assert score == "True"
    finally:
        for kernel in (alice, bob, tess):
            kernel.close()


async def test_a_planted_secret_reaches_nothing_a_student_can_see(hub):
    alice = await student_kernel(hub, "alice")
    token = (
        await asyncio.to_thread(
            api, hub, "POST", "users/alice/tokens", {"scopes": ["access:services!service=greenroom"]}
        )
    )["token"]
    seen = ""
    try:
        try:
            await alice.execute("server.call('explode', 'a guess')", timeout=90)
        except AssertionError as error:  # the traceback, as the notebook shows it (without its colours)
            seen += without_colours(str(error))
        assert "ValueError: wrong answer" in seen and "<server notebook checks.server.ipynb, cell 1>" in seen
        for magic in ("%load_ext greenroom\n%greenroom", "%greenroom status", "%greenroom functions"):
            seen += await run(alice, magic)
        seen += await run(alice, "print(server.call('my_questions'), server.call('whoami'))")
    finally:
        alice.close()
    client = AsyncHTTPClient()
    for path in (
        "",
        "checks.server.ipynb",
        "course.server.ipynb",
        "files/checks.server.ipynb",
        "api/contents",
        "api/contents/checks.server.ipynb",
        "tree/",
        "greenroom/api/status",
        "greenroom/api/ws",
        ".greenroom/calls.sqlite",
        "progress.sqlite",
        "%2e%2e/checks.server.ipynb",
        "greenroom/%2e%2e/checks.server.ipynb",
        "voila/render/checks.server.ipynb",
        "static/../checks.server.ipynb",
    ):
        for headers in ({}, {"Authorization": f"token {token}"}):
            response = await client.fetch(
                f"{hub['url']}/services/greenroom/{path}", headers=headers, raise_error=False, follow_redirects=False
            )
            assert response.code >= 300, (path, response.code)
            seen += response.body.decode("utf-8", "replace")
    seen += (hub["root"] / ".greenroom" / "calls.sqlite").read_bytes().decode("utf-8", "replace")
    assert SECRET not in seen


async def test_a_hub_that_stops_answering_fails_new_tokens_clearly_while_known_callers_keep_calling(hub):
    """The hub frozen (SIGSTOP: it accepts connections and never answers), then thawed."""
    scopes = {"scopes": ["access:services!service=greenroom"]}
    known, fresh = [
        (await asyncio.to_thread(api, hub, "POST", "users/alice/tokens", scopes))["token"] for _ in range(2)
    ]
    service = f"{hub['url']}/services/greenroom/"
    connected = Client(service, {"Authorization": f"token {known}"})
    process = hub["process"]
    assert process.pid > 1 and process.poll() is None
    try:
        assert await connected.call("whoami") == ["alice", ["students"]]
        process.send_signal(signal.SIGSTOP)
        assert await connected.call("whoami") == ["alice", ["students"]]  # an open connection keeps calling
        again = Client(service, {"Authorization": f"token {known}"})  # a new connection with a known token
        try:
            assert await again.call("whoami") == ["alice", ["students"]]
        finally:
            again.close()
        newcomer = Client(service, {"Authorization": f"token {fresh}"})
        started = time.monotonic()
        try:
            with pytest.raises(
                GreenroomConnectionError, match="HTTP 503: greenroom: the hub did not answer within 3 s"
            ):
                await newcomer.call("whoami")
        finally:
            newcomer.close()
        assert time.monotonic() - started < 10  # within the hub timeout (3 s), well inside the call timeout
    finally:
        process.send_signal(signal.SIGCONT)
    recovered = Client(service, {"Authorization": f"token {fresh}"})
    try:
        assert await recovered.call("whoami") == ["alice", ["students"]]  # the hub is back: so is the newcomer
    finally:
        recovered.close()
        connected.close()
    assert fresh not in hub["log"].read_text() and known not in hub["log"].read_text()


STUDENT_LOAD = """
import json, os, sys
from concurrent.futures import ThreadPoolExecutor
from greenroom import server

me = os.environ["STUDENT"]
def call(_):
    try:
        return "ok" if server.call("whoami")[0] == me else "misrouted"
    except Exception as error:  # counted, and named in the report
        return type(error).__name__
with ThreadPoolExecutor(int(os.environ["CONCURRENCY"])) as pool:
    outcomes = list(pool.map(call, range(int(os.environ["CALLS"]))))
print(json.dumps({outcome: outcomes.count(outcome) for outcome in set(outcomes)}))
"""


@pytest.mark.load
@pytest.mark.timeout(300)
async def test_twenty_students_with_200_concurrent_calls_each_get_only_their_own_replies(hub):
    """Each student is a process holding that student's hub token, as a student's kernel does: the call path
    (proxy, service, workers) is the same; single-user servers are not on it."""
    names = [f"student{index:02d}" for index in range(20)]
    await asyncio.to_thread(api, hub, "POST", "users", {"usernames": names})
    scopes = {"scopes": ["access:services!service=greenroom"]}
    tokens = [(await asyncio.to_thread(api, hub, "POST", f"users/{name}/tokens", scopes))["token"] for name in names]
    base = {key: value for key, value in os.environ.items() if not key.startswith(("GREENROOM_", "JUPYTERHUB_"))}
    students = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            STUDENT_LOAD,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(
                base,
                GREENROOM_URL=f"{hub['url']}/services/greenroom/",
                JUPYTERHUB_API_TOKEN=token,
                STUDENT=name,
                CALLS="200",
                CONCURRENCY="200",
            ),
        )
        for name, token in zip(names, tokens, strict=True)
    ]
    # 4,000 fresh-state calls queue for workers on 2 cores: the call timeout (120 s here) bounds each one
    reports = await asyncio.wait_for(asyncio.gather(*(student.communicate() for student in students)), 200)
    outcomes: dict[str, int] = {}
    for out, err in reports:
        assert out, err.decode()[-2000:]
        for outcome, count in json.loads(out).items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    assert outcomes == {"ok": 4000}, outcomes


def test_a_hub_managed_service_stops_cleanly_when_its_hub_is_killed(tmp_path):
    """No orphans: the service asks Linux for SIGTERM when the hub that started it ends, however it ends."""
    root = tmp_path / "course"
    root.mkdir()
    write_notebook(root / "checks.server.ipynb", COURSE)
    ports = {name: free_port() for name in ("hub", "api", "proxy_api", "service")}
    (tmp_path / "jupyterhub_config.py").write_text(hub_config(ports, str(root), str(tmp_path / "homes")))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GREENROOM_", "JUPYTERHUB_"))}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    process = start(
        [os.path.join(BIN, "jupyterhub"), "-f", str(tmp_path / "jupyterhub_config.py")],
        str(tmp_path / "hub.log"),
        cwd=str(tmp_path),
        env=env,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{ports['service']}/", process, timeout=90)
        (service,) = [pid for pid in children(process.pid) if b"greenroom" in command_line(pid)]
        proxies = [pid for pid in children(process.pid) if b"configurable-http-proxy" in command_line(pid)]
        assert process.pid > 1
        process.kill()  # SIGKILL: the hub cleans nothing up
        process.wait(10)
        deadline = time.monotonic() + 30
        while command_line(service) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not command_line(service), "the service outlived its hub"
        assert not list((tmp_path / "runtime").glob("greenroom-*.json"))  # it stopped cleanly
    finally:
        stop(process)
        for pid in locals().get("proxies", []):  # the hub's proxy, orphaned by the SIGKILL: ours to end
            if pid > 1 and b"configurable-http-proxy" in command_line(pid):
                os.kill(pid, signal.SIGTERM)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(child) for child in handle.read().split()]
    return found


def command_line(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM_PYTHON = "/usr/bin/python3"
AS_SYSTEM_USERS = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON) or shutil.which("useradd") is None,
    reason="students as system users needs root, useradd and a system Python every user may run",
)


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
    return found


@contextlib.contextmanager
def system_users(*names: str) -> Iterator[None]:
    """System users made for this test, and removed with their homes (and any process left running as them,
    each of which this test started through the hub) at the end."""
    made: list[str] = []
    try:
        for name in names:
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                raise AssertionError(f"a system user {name!r} exists already: not ours to use or remove")
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, timeout=60)
            made.append(name)
        yield
    finally:
        for name in made:
            uid = pwd.getpwnam(name).pw_uid
            for pid in processes_of(uid) if uid > 0 else []:
                if pid > 1:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            subprocess.run(["userdel", "--remove", name], check=False, timeout=60, capture_output=True)


@AS_SYSTEM_USERS
@pytest.mark.timeout(600)
async def test_students_as_system_users_call_the_service_but_cannot_read_the_teachers_folder(tmp_path):
    """As The Littlest JupyterHub runs a class: every student a system user (LocalProcessSpawner) with one
    shared environment every user may run, the greenroom service as the hub's user, the teacher's notebooks
    in its 0700 folder."""
    shared = Path(tempfile.mkdtemp(prefix="greenroom-class-"))  # /tmp itself: every user may look inside
    try:
        shared.chmod(0o755)
        environment = shared / "user-env"  # what TLJH keeps in /opt/tljh/user
        await asyncio.to_thread(
            subprocess.run, [SYSTEM_PYTHON, "-m", "venv", str(environment)], check=True, timeout=120
        )
        installed = await asyncio.to_thread(
            subprocess.run,
            [str(environment / "bin" / "pip"), "install", "--quiet", f"{REPOSITORY}[hub]"],
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
        assert installed.returncode == 0, installed.stderr[-3000:]
        teacher = shared / "teacher"
        teacher.mkdir(mode=0o700)
        write_notebook(teacher / "checks.server.ipynb", COURSE)
        ports = {name: free_port() for name in ("hub", "api", "proxy_api", "service")}
        config = hub_config(ports, str(teacher), "", singleuser=str(environment / "bin" / "jupyterhub-singleuser"))
        with system_users("grstudent1"), running_hub(tmp_path, config, ports) as running:
            kernel = await student_kernel(running, "grstudent1")
            try:
                shown = await run(
                    kernel,
                    "import os\ntry:\n"
                    f"    open({str(teacher / 'checks.server.ipynb')!r}).read()\n"
                    "except PermissionError:\n    print('PermissionError')\n"
                    "print(os.getuid() == os.stat(os.path.expanduser('~')).st_uid != 0, server.call('whoami'))",
                )
            finally:
                kernel.close()
        assert shown.splitlines() == ["PermissionError", "True ['grstudent1', []]"]
        assert SECRET not in shown
    finally:
        shutil.rmtree(shared, ignore_errors=True)
