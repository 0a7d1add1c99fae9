"""Reload policy: which generation serves, and when a new one is started.

The serving generation answers as long as no server notebook changed on disk (a stat per
notebook, no await).  When one did, the next call (or the watcher, every
``reload_poll_interval``) starts a new generation; it serves once it loaded with no new load
error, else it is stopped and the last good one keeps serving.  Concurrent reasons to reload
share one load.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Iterable

from greenroom import errors
from greenroom.protocol import LoadError

from .config import HostConfig
from .discovery import CodeCell, Signature, find_server_notebooks, read_notebooks, signature_of
from .generation import Generation
from .generation_parts import LendSession, LoadFailed, NestedCall, NotebookSource, RuntimePlace, TaskHooks
from .looptasks import LoopTasks

__all__ = ["Reloader"]


class Reloader:
    """Owns every generation of one host: the serving one, the ones finishing calls, the one loading."""

    def __init__(
        self,
        config: HostConfig,
        place: RuntimePlace,
        log: logging.Logger,
        tasks: LoopTasks,
        nested_call: NestedCall,
        lend_session: LendSession,
        task_hooks: TaskHooks,
    ) -> None:
        self.config = config
        self.place = place
        self.log = log
        self.tasks = tasks
        self.nested_call = nested_call
        self.lend_session = lend_session
        self.task_hooks = task_hooks
        self.notebooks: list[str] = []
        self.serving: Generation | None = None
        self.generations: dict[int, Generation] = {}
        self.next_number = 1
        #: A load that failed as a whole (the template died or took too long): the last generation serves on.
        self.rejected: tuple[Signature, list[LoadError]] | None = None
        #: The code cells of each notebook's last version that loaded: what a broken save falls back to.
        self.last_good: dict[str, list[CodeCell]] = {}
        self.ready = asyncio.Event()
        self.stopping = False
        self._loading: asyncio.Task[None] | None = None
        self._loading_signature: Signature | None = None
        self._forced: asyncio.Task[None] | None = None

    @property
    def root(self) -> str:
        return self.place.root

    async def start(self) -> None:
        """Find the server notebooks and load the first generation."""
        await self.rescan()
        self.log.info("%d server notebook(s) under %s", len(self.notebooks), self.root)
        await self._reload(signature_of(self.root, self.notebooks))
        self.ready.set()

    async def rescan(self) -> None:
        """Look for new and deleted server notebooks (in a thread: a walk of the folder may be slow)."""
        self.notebooks = await asyncio.to_thread(find_server_notebooks, self.root, list(self.config.server_notebooks))

    async def stop(self) -> None:
        """Stop every generation and wait for their templates to exit."""
        self.stopping = True
        generations = list(self.generations.values())
        for generation in generations:
            generation.stop()
        await asyncio.gather(*(generation.reap(grace=3.0) for generation in generations))

    # -- which generation serves ---------------------------------------------
    def serving_unchanged(self) -> Generation | None:
        """The serving generation when no notebook changed (the common case: no await, no task)."""
        serving = self.serving
        if self.ready.is_set() and serving is not None and signature_of(self.root, self.notebooks) == serving.signature:
            return serving
        return None

    async def current(self) -> Generation | None:
        """The generation that serves the next call, reloading first if a notebook changed."""
        await self.ready.wait()
        signature = signature_of(self.root, self.notebooks)
        serving = self.serving
        if (serving is None or signature != serving.signature) and (
            self.rejected is None or self.rejected[0] != signature
        ):
            await self._reload(signature)
        return self.serving

    async def current_within(self, seconds: float) -> Generation | None:
        """:meth:`current`, waiting at most ``seconds`` for a reload; the serving generation answers meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.shield(self.current())
        except TimeoutError:
            return self.serving

    def forcing(self) -> bool:
        """A forced reload is running."""
        return self._forced is not None and not self._forced.done()

    async def reload_now(self) -> None:
        """Rescan and reload even if nothing changed on disk; concurrent requests share one reload."""
        if self._forced is None or self._forced.done():
            self._forced = self.tasks.spawn(self._forced_reload())
        await asyncio.shield(self._forced)

    async def _forced_reload(self) -> None:
        await self.rescan()
        self.rejected = None
        self._loading_signature = None  # load again even if nothing changed on disk
        await self._reload(signature_of(self.root, self.notebooks))

    def missing_function(self, name: str, generation: Generation | None) -> errors.NoServerFunctionError:
        """The error for a call of ``name``, which ``generation`` does not serve: close names, what it serves,
        and why a notebook may be missing (none found, or one failed to load)."""
        message = f"no server function named {name!r}"
        known = sorted(generation.functions) if generation is not None else []
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            message += f"; did you mean {' or '.join(repr(match) for match in close)}?"
        if known:
            message += f"; available: {', '.join(known[:20])}"
        if not self.notebooks:
            patterns = ", ".join(self.config.server_notebooks)
            message += (
                f"; no server notebook ({patterns}) was found under the server's root folder (the folder "
                "`jupyter lab`, `jupyter server` or `greenroom serve` was started in) or its subfolders"
            )
        load_errors = list(self.load_errors())
        if load_errors:
            message += "; note: " + "; ".join(error.describe() for error in load_errors[:5])
        return errors.NoServerFunctionError(message)

    def load_errors(self) -> Iterable[LoadError]:
        """The serving generation's load errors, then those of a rejected reload."""
        yield from self.serving.errors if self.serving else []
        yield from self.rejected[1] if self.rejected else []

    # -- loading -------------------------------------------------------------
    async def _reload(self, signature: Signature) -> None:
        if self._loading is None or self._loading.done() or self._loading_signature != signature:
            self._loading_signature = signature
            self._loading = self.tasks.spawn(self._load(signature))
        task = self._loading
        try:
            await asyncio.shield(task)
        finally:
            if self._loading is task and task.done():
                self._loading = None  # loaded, or failed: the next call that finds a change starts afresh

    async def _load(self, signature: Signature) -> None:
        number = self.next_number
        self.next_number += 1
        notebooks = [entry[0] for entry in signature]
        read = await asyncio.to_thread(read_notebooks, self.root, notebooks)
        sources: list[NotebookSource] = [
            {
                "notebook": notebook,
                "cells": None if isinstance(cells, LoadError) else cells,
                "unreadable": cells.to_data() if isinstance(cells, LoadError) else None,
                "fallback": self.last_good.get(notebook),
            }
            for notebook, cells in zip(notebooks, read, strict=True)
        ]
        generation = Generation(
            number,
            sources,
            signature,
            self.config,
            self.place,
            self.log,
            self.tasks,
            nested_call=self.nested_call,
            lend_session=self.lend_session,
            task_hooks=self.task_hooks,
            on_lost=self._on_lost,
            on_ended=self._on_ended,
        )
        self.generations[number] = generation
        try:
            await generation.start()
            await asyncio.wait_for(asyncio.shield(generation.loaded), self.config.load_timeout)
        except (LoadFailed, OSError, TimeoutError) as error:
            generation.errors = [LoadError.of("(all)", error, message=str(error) or "loading took too long")]
        for load_error in generation.errors:
            self.log.warning("server notebook failed to load: %s", load_error.describe())
        previous = self.serving
        loaded = generation.loaded.done() and not generation.loaded.exception()
        if loaded:  # each broken notebook already fell back to its last good version inside the generation
            for source in sources:
                cells = source["cells"]
                if source["notebook"] in generation.loaded_notebooks and cells is not None:
                    self.last_good[source["notebook"]] = cells
            for notebook in set(self.last_good) - set(notebooks):
                del self.last_good[notebook]  # deleted from disk
            self.serving = generation
            self.rejected = None
            self.log.info(
                "generation %d serves %d function(s) from %d notebook(s)",
                number,
                len(generation.functions),
                len(notebooks),
            )
            if previous is not None:
                previous.retire()
        else:
            self.rejected = (signature, generation.errors)
            self.log.warning(
                "keeping generation %s: the new version of the server notebooks did not load",
                previous.number if previous else None,
            )
            generation.stop()

    def _on_lost(self, generation: Generation) -> None:
        if generation is self.serving and not self.stopping:
            self.serving = None  # the next call (or the watcher) starts a new one
            self.rejected = None

    def _on_ended(self, generation: Generation) -> None:
        self.generations.pop(generation.number, None)
