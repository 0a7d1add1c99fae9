"""Calls on a Dask cluster: the host's side of :mod:`~greenroom.server_ext.dask_node`.

With ``GreenroomApp.dask_scheduler`` set, the host still loads each version of the notebooks itself (its
local template checks them and says which functions exist), and runs every call on a
:class:`~greenroom.server_ext.dask_node.RuntimeNode`: one Dask actor per Dask worker, created when the
host first sees the worker, loaded with each version before its first call there.  A call's requests
(nested calls, the session's first use) come back to the host, which answers them as for local calls.

Invariant: every call gets an answer within its timeout: a lost worker is ``ExecutionTerminatedError``,
a scheduler that does not answer a clear ``ConnectionError``; the next call finds the cluster again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from greenroom import errors
from greenroom.protocol import CallRequest, CallResult, Kind, Reply, Request
from greenroom.wire import Part, parse_route

from .config import HostConfig
from .dask_tasks import RemoteTaskLink, spawn_on
from .generation import Generation
from .generation_parts import NestedCall, TaskHooks, timed_out
from .identity import Caller
from .sessions import Sessions

__all__ = ["DaskRuntime"]

#: Seconds to reach the scheduler before a call says it cannot.
CONNECT_TIMEOUT = 10.0
#: Modules beside the server notebooks (``.py`` files and ordinary notebooks) travel with each version, up to
#: this many files and this many bytes.
MAX_MODULES = 500
MAX_MODULE_BYTES = 32 << 20
#: Seconds for a worker to start its runtime actor (a worker that has just gone never does).
NODE_START_TIMEOUT = 5.0
#: Seconds between asking the scheduler which workers it has (new workers get calls after at most this).
WORKERS_REFRESH = 2.0
#: Seconds a worker found gone gets no calls, even if the scheduler still lists it.
LOST_FOR = 30.0


@dataclass(eq=False)
class Node:
    """One Dask worker's runtime, as the host sees it."""

    address: str
    actor: Any
    loaded: set[int] = field(default_factory=set)
    loading: asyncio.Lock = field(default_factory=asyncio.Lock)
    calls: int = 0


@dataclass(eq=False)
class RemoteCall:
    """A call running on a node, as the host's sessions see it (the attributes of a worker's link they use)."""

    caller: Caller
    call_id: int
    closed: bool = False
    holds_session: bool = False


#: Answers a request of server code for ``caller``: (caller, request, the call) -> reply.
AnswerRequest = Callable[[Caller, Request, RemoteCall], Awaitable[Reply]]


class DaskRuntime:
    """The host's connection to a Dask cluster, and the nodes on its workers."""

    def __init__(self, config: HostConfig, root: str, log: logging.Logger, task_hooks: TaskHooks) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError(
                "GreenroomApp.dask_scheduler is set but the distributed package is missing: "
                "pip install 'greenroom[dask]'"
            ) from None
        self.config = config
        self.root = root
        self.log = log
        self.task_hooks = task_hooks
        self.client: Any = None
        self.nodes: dict[str, Node] = {}
        #: The scheduler's workers (addresses) as last asked, and when (loop time).
        self.workers: list[str] = []
        self.workers_seen = float("-inf")
        #: Workers found gone (address -> when) that the scheduler may still list for a moment.
        self.lost: dict[str, float] = {}
        self.modules: dict[int, dict[str, bytes]] = {}
        self.background: set[asyncio.Task[None]] = set()
        self._connecting = asyncio.Lock()
        self._discovering = asyncio.Lock()

    async def _client(self) -> Any:
        from distributed import Client

        async with self._connecting:
            if self.client is None or self.client.status not in ("running", "connecting"):
                if self.client is not None:
                    with contextlib.suppress(Exception):
                        await self.client.close()
                self.nodes.clear()
                self.lost.clear()
                security = self._security()
                try:
                    self.client = await Client(  # type: ignore[no-untyped-call]
                        self.config.dask_scheduler,
                        asynchronous=True,
                        direct_to_workers=True,
                        set_as_default=False,
                        timeout=CONNECT_TIMEOUT,
                        security=security,
                    )
                except (OSError, TimeoutError) as error:  # ssl.SSLError too: a certificate the cluster refused
                    self.client = None
                    raise errors.ConnectionError(
                        f"the Dask scheduler at {self.config.dask_scheduler} did not answer: {error}"
                    ) from None
            return self.client

    def _security(self) -> Any:
        """Dask's own TLS settings (its configuration: ``distributed.comm.tls.*``, e.g. from
        ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``); a ``tls://`` scheduler without them is a clear error."""
        from distributed.security import Security

        security = Security()  # type: ignore[no-untyped-call]
        address = self.config.dask_scheduler
        arguments = security.get_connection_args("client")  # type: ignore[no-untyped-call]
        if address.startswith("tls://") and arguments.get("ssl_context") is None:
            raise errors.ConnectionError(
                f"the Dask scheduler at {address} speaks TLS, and this host has no Dask TLS settings: set "
                "distributed.comm.tls.ca-file, .client.cert and .client.key in Dask's configuration (or the "
                "DASK_DISTRIBUTED__COMM__TLS__... environment variables)"
            )
        return security

    async def _node(self, generation: Generation) -> Node:
        """The least busy node that has ``generation`` loaded (else the least busy), creating the nodes of
        workers seen for the first time."""
        client = await self._client()
        now = asyncio.get_running_loop().time()
        if not self.nodes or now - self.workers_seen > WORKERS_REFRESH:  # not on every call: a scheduler round trip
            self.workers = sorted((await client.scheduler.identity()).get("workers", {}))
            self.workers_seen = now
        workers = self.workers
        if not workers:
            raise errors.ExecutionTerminatedError(f"the Dask cluster at {self.config.dask_scheduler} has no workers")
        for address in [address for address in self.nodes if address not in workers]:
            del self.nodes[address]
        for address in [a for a, when in self.lost.items() if a not in workers or now - when > LOST_FOR]:
            del self.lost[address]  # the scheduler has dropped it too, or it is tried again
        async with self._discovering:  # calls that arrive together start each worker's runtime once
            new = [address for address in workers if address not in self.nodes and address not in self.lost]
            started = await asyncio.gather(*(self._start_node(client, a) for a in new), return_exceptions=True)
            for address, node in zip(new, started, strict=True):
                if isinstance(node, Node):
                    self.nodes[address] = node
                else:
                    self.log.warning("could not start greenroom on Dask worker %s: %r", address, node)
        if not self.nodes:
            raise errors.ExecutionTerminatedError(
                f"no worker of the Dask cluster at {self.config.dask_scheduler} could run greenroom"
            )
        return min(self.nodes.values(), key=lambda node: (generation.number not in node.loaded, node.calls))

    async def _start_node(self, client: Any, address: str) -> Node:
        """The runtime actor on worker ``address`` (a worker that went away meanwhile: TimeoutError)."""
        from .dask_node import RuntimeNode

        options = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}
        async with asyncio.timeout(NODE_START_TIMEOUT):
            with client.as_current():
                future = client.submit(
                    RuntimeNode, options, actor=True, workers=[address], allow_other_workers=False, pure=False
                )
                return Node(address, await future)

    def _lose(self, node: Node) -> None:
        """``node``'s worker is gone: no call goes there, even while the scheduler still lists it."""
        self.nodes.pop(node.address, None)
        self.lost[node.address] = asyncio.get_running_loop().time()
        self.workers_seen = float("-inf")  # ask the scheduler again at the next call

    async def _load_quietly(self, node: Node, generation: Generation) -> None:
        try:
            async with asyncio.timeout(self.config.load_timeout):
                await self._ensure_loaded(node, generation)
        except Exception as error:  # noqa: BLE001 - its first call will load it again, and say why if it fails
            self.log.warning("Dask worker %s could not load version %d yet: %s", node.address, generation.number, error)

    async def _ensure_loaded(self, node: Node, generation: Generation) -> None:
        if generation.number in node.loaded:
            return
        async with node.loading:
            if generation.number in node.loaded:
                return
            modules = self.modules.get(generation.number)
            if modules is None:
                sources = {str(source["notebook"]) for source in generation.sources}
                modules = await asyncio.to_thread(read_modules, self.root, sources)
                self.modules = {generation.number: modules}
            loaded = await node.actor.load(generation.number, generation.sources, modules)
            if loaded["errors"]:
                self.log.warning("Dask worker %s: load errors %s", node.address, loaded["errors"])
            node.loaded.add(generation.number)

    async def ready_node(self, generation: Generation) -> Node:
        """A node with ``generation`` loaded (a node's first call of a version waits for its load, within
        ``load_timeout``, not within the call's own timeout)."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                node = await self._node(generation)
        except TimeoutError:
            raise errors.ConnectionError(
                f"the Dask scheduler at {self.config.dask_scheduler} did not answer within {CONNECT_TIMEOUT:g} s"
            ) from None
        except (OSError, RuntimeError) as error:
            raise errors.ConnectionError(f"the Dask cluster at {self.config.dask_scheduler} failed: {error}") from None
        for other in self.nodes.values():  # the others load this version meanwhile, off any call's path
            if other is not node and generation.number not in other.loaded and not other.loading.locked():
                loading = asyncio.get_running_loop().create_task(self._load_quietly(other, generation))
                self.background.add(loading)
                loading.add_done_callback(self.background.discard)
        try:
            async with asyncio.timeout(self.config.load_timeout):
                await self._ensure_loaded(node, generation)
                return node
        except TimeoutError:
            raise errors.ExecutionTerminatedError(
                f"the Dask cluster at {self.config.dask_scheduler} did not load the notebooks within "
                f"{self.config.load_timeout:g} s"
            ) from None
        except (OSError, RuntimeError) as error:
            raise errors.ConnectionError(f"the Dask cluster at {self.config.dask_scheduler} failed: {error}") from None

    async def run(
        self,
        node: Node,
        generation: Generation,
        remote: RemoteCall,
        queue_key: str,
        request: CallRequest,
        answer: AnswerRequest,
    ) -> CallResult:
        """Run ``request`` on ``node``; ``answer`` answers its server code's requests.  Raises
        ``ExecutionTerminatedError`` when its worker is lost (the call may not have finished)."""
        node.calls += 1
        caller = remote.caller
        try:
            event = await node.actor.run(generation.number, [bytes(p) for p in request.pack()], queue_key)
            while event[0] == "request":
                parts = event[1]
                asked = Request.unpack(parse_route(parts[0]), list[Part](parts))
                reply = await answer(caller, asked, remote)
                packed = [bytes(part) for part in reply.pack(asked.request_id)]
                event = await node.actor.resume(request.call_id, asked.request_id, packed)
            if event[0] == "result":
                parts = event[1]
                return CallResult.unpack(parse_route(parts[0]), list[Part](parts))
            if event[1] == [b"not loaded"]:
                node.loaded.discard(generation.number)
            raise errors.ExecutionTerminatedError(f"on Dask worker {node.address}: {event[1][0].decode()}")
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                node.actor.kill(request.call_id)  # the timeout: the node's template kills the worker
            raise
        except (OSError, RuntimeError) as error:
            self._lose(node)
            raise errors.ExecutionTerminatedError(f"the Dask worker {node.address} was lost: {error}") from None
        finally:
            node.calls -= 1

    async def call(
        self,
        generation: Generation,
        caller: Caller,
        queue_key: str,
        request: CallRequest,
        timeout: float,
        deadline: float,
        sessions: Sessions,
        nested_call: NestedCall,
    ) -> CallResult | Reply:
        """Run ``request`` on the cluster within ``deadline``; its session (``sessions``) and its nested calls
        (``nested_call``) are the host's, as for a local worker's call."""
        remote = RemoteCall(caller, request.call_id)
        result: CallResult | None = None

        async def answer(caller: Caller, asked: Request, remote: RemoteCall) -> Reply:
            if asked.kind == Kind.SESSION:
                return await sessions.lend(remote)  # type: ignore[arg-type]  # a remote call stands for its link
            if asked.kind == Kind.CALL and asked.name is not None:
                return await nested_call(
                    caller, asked.name, asked.payload, asked.buffers, f"{queue_key}>", asked.session
                )
            if asked.kind in Kind.TASK_REQUESTS:
                return await self.task_hooks.answer(caller, asked)
            return Reply.of_error(errors.WireError(f"server code on Dask may not ask for {asked.kind!r}"))

        try:
            node = await self.ready_node(generation)
            async with asyncio.timeout_at(max(deadline, asyncio.get_running_loop().time() + timeout)):
                result = await self.run(node, generation, remote, queue_key, request, answer)
                return result
        except TimeoutError:
            return timed_out(self.log, request.name, timeout)
        except (errors.ExecutionTerminatedError, errors.ConnectionError) as error:
            return Reply.of_error(error)
        finally:
            remote.closed = True
            sessions.finish(remote, result)  # type: ignore[arg-type]  # a remote call stands for its link

    async def spawn_task(self, generation: Generation, task_id: str) -> RemoteTaskLink:
        """Start background task ``task_id``'s process on a node with ``generation`` loaded."""
        node = await self.ready_node(generation)
        return await spawn_on(node.actor, node.address, generation.number, task_id, lambda: self._lose(node))

    def status(self) -> dict[str, Any]:
        return {
            "scheduler": self.config.dask_scheduler,
            "workers": [
                {"address": node.address, "versions": sorted(node.loaded), "calls": node.calls}
                for node in self.nodes.values()
            ],
        }

    async def close(self) -> None:
        for loading in list(self.background):
            loading.cancel()
        for node in list(self.nodes.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(node.actor.close(), 10)
        self.nodes.clear()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()


def read_modules(root: str, sources: Collection[str] = ()) -> dict[str, bytes]:
    """The modules server code may import, under ``root`` (not in hidden folders), by relative path: ``.py``
    files and notebooks other than ``sources`` (the server notebooks, which travel as the version's
    sources).  At most :data:`MAX_MODULES` files and :data:`MAX_MODULE_BYTES` bytes."""
    found: dict[str, bytes] = {}
    total = 0
    for directory, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            path = os.path.join(directory, name)
            module = name.endswith(".py") or (name.endswith(".ipynb") and os.path.relpath(path, root) not in sources)
            if not module or len(found) >= MAX_MODULES or not os.path.isfile(path):
                continue
            size = os.path.getsize(path)
            if total + size > MAX_MODULE_BYTES:
                continue
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
            total += size
    return found
