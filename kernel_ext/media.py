"""Media: binary content with a content type, the one way to pass files and images.

Media crosses the wire as raw binary frames, never base64.
"""

from __future__ import annotations

import mimetypes
import urllib.request

__all__ = ["BlobMedia", "Media", "URLMedia"]


class Media:
    """Base class: anything with a content type, a name and bytes."""

    content_type: str = "application/octet-stream"
    name: str | None = None

    def get_bytes(self) -> bytes:
        """Return the content."""
        raise NotImplementedError

    @property
    def length(self) -> int:
        """Size of the content in bytes."""
        return len(self.get_bytes())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Media):
            return NotImplemented
        return (self.content_type, self.name, self.get_bytes()) == (
            other.content_type,
            other.name,
            other.get_bytes(),
        )

    __hash__ = None  # type: ignore[assignment]


class BlobMedia(Media):
    """Media held in memory."""

    def __init__(
        self, content_type: str = "", content: bytes | bytearray | memoryview = b"", name: str | None = None
    ) -> None:
        """``content`` may be any bytes-like object; it is copied into the Media's own ``bytes``."""
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise TypeError(f"BlobMedia content must be bytes, not {type(content).__name__}")
        if not content_type and name:
            content_type = mimetypes.guess_type(name)[0] or ""
        self.content_type = content_type or "application/octet-stream"
        self.name = name
        self._content = bytes(content)

    def get_bytes(self) -> bytes:
        return self._content

    def __repr__(self) -> str:
        return f"BlobMedia({self.content_type!r}, <{len(self._content)} bytes>, name={self.name!r})"


class URLMedia(Media):
    """Media that lives at a URL; the bytes are fetched when asked for."""

    def __init__(self, url: str, content_type: str = "", name: str | None = None) -> None:
        if not isinstance(url, str) or not url:
            raise TypeError("URLMedia needs a non-empty URL string")
        self.url = url
        self.name = name or url.rstrip("/").rsplit("/", 1)[-1] or None
        self.content_type = content_type or mimetypes.guess_type(url)[0] or "application/octet-stream"
        self._content: bytes | None = None

    def get_url(self) -> str:
        """The URL of the content."""
        return self.url

    def get_bytes(self) -> bytes:
        if self._content is None:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(self.url, timeout=30) as response:
                self._content = response.read()
        return self._content

    def __eq__(self, other: object) -> bool:
        if isinstance(other, URLMedia):
            return self.url == other.url
        return super().__eq__(other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"URLMedia({self.url!r})"
