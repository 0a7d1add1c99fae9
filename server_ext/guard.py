"""What a published app refuses to serve: any request that names a server notebook, however it is spelled.

A request's path and each query value are decoded (repeatedly, so ``%252e`` counts), backslashes read as
slashes, and the path is normalised (``//``, ``.`` and ``..`` resolved) before it is compared; then every
tail of the path is checked against ``*.server.ipynb``, the ``server_notebooks`` patterns and the host's
notebooks, and a tail that exists under the root is resolved on disk (symbolic links included) and
compared with the files of the host's notebooks.  Comparisons ignore case.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote

from tornado import httputil
from tornado.routing import Matcher

__all__ = ["SERVER_SUFFIX", "ServerNotebookMatcher", "normalise"]

SERVER_SUFFIX = ".server.ipynb"
#: Rounds of percent-decoding: enough for any spelling a server decodes, bounded for hostile input.
DECODE_ROUNDS = 8


def normalise(text: str) -> str:
    """``text`` percent-decoded until it stops changing, backslashes as slashes, ``//``, ``.`` and ``..``
    resolved, lower case."""
    for _ in range(DECODE_ROUNDS):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    text = text.replace("\\", "/")
    return posixpath.normpath("/" + text).lower()


class ServerNotebookMatcher(Matcher):
    """Matches (so the app answers 404) any request whose path or query names a server notebook."""

    def __init__(self, root: str, patterns: Sequence[str], notebooks: Callable[[], Iterable[str]]) -> None:
        self.root = os.path.realpath(root)
        self.patterns = [pattern.lower() for pattern in patterns]
        self.notebooks = notebooks

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        query = request.query or ""
        texts = [request.path or "", query, *(value for _, value in parse_qsl(query, keep_blank_values=True))]
        if any(self.names_server_notebook(text) for text in texts):
            return {}
        return None

    def names_server_notebook(self, text: str) -> bool:
        path = normalise(text)
        if SERVER_SUFFIX in path:
            return True
        known = {notebook.lower() for notebook in self.notebooks()}
        segments = [segment for segment in path.split("/") if segment]
        for start in range(len(segments)):
            tail = "/".join(segments[start:])
            if tail in known or any(fnmatch.fnmatchcase(tail, pattern) for pattern in self.patterns):
                return True
            if tail.endswith(".ipynb") and self._resolves_to_server_notebook(tail, known):
                return True
        return False

    def _resolves_to_server_notebook(self, tail: str, known: set[str]) -> bool:
        """``tail`` names, through links or another case on disk, a file the host treats as a server notebook."""
        for candidate in (tail, *self._on_disk(tail)):
            real = os.path.realpath(os.path.join(self.root, candidate))
            if not real.startswith(self.root + os.sep):
                continue
            relative = os.path.relpath(real, self.root).replace(os.sep, "/").lower()
            name = relative.rsplit("/", 1)[-1]
            if (
                relative in known
                or SERVER_SUFFIX in relative
                or any(
                    fnmatch.fnmatchcase(relative, pattern) or fnmatch.fnmatchcase(name, pattern)
                    for pattern in self.patterns
                )
            ):
                return True
        return False

    def _on_disk(self, tail: str) -> list[str]:
        """The spelling of ``tail`` as it is on disk, when a folder or file differs only in case."""
        directory, spelled = self.root, []
        for segment in tail.split("/"):
            try:
                entries = {entry.lower(): entry for entry in os.listdir(directory)}
            except OSError:
                return []
            actual = entries.get(segment)
            if actual is None:
                return []
            spelled.append(actual)
            directory = os.path.join(directory, actual)
        return ["/".join(spelled)]
