"""Media: binary content with a content type, the one way to pass files and images.

Media crosses the wire as raw binary frames, never base64.  A :class:`URLMedia` crosses as its URL
only; its bytes are fetched over http(s) and nothing else, and a URL that arrived from a client is
never fetched unless the server code asks for it with :meth:`URLMedia.fetch`.
"""

from __future__ import annotations

import mimetypes
import urllib.request
from urllib.parse import urlsplit

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

    #: Schemes :meth:`fetch` accepts: never ``file:``, ``ftp:``, ``data:`` or anything else that reads locally.
    SCHEMES = ("http", "https")

    def __init__(self, url: str, content_type: str = "", name: str | None = None, *, from_client: bool = False) -> None:
        if not isinstance(url, str) or not url:
            raise TypeError("URLMedia needs a non-empty URL string")
        self.url = url
        self.name = name or url.rstrip("/").rsplit("/", 1)[-1] or None
        self.content_type = content_type or mimetypes.guess_type(url)[0] or "application/octet-stream"
        #: True when the URL arrived in a call's arguments or session: :meth:`get_bytes` then refuses.
        self.from_client = from_client
        self._content: bytes | None = None

    def get_url(self) -> str:
        """The URL of the content."""
        return self.url

    def get_bytes(self) -> bytes:
        """The content, fetched once over http(s).  :class:`PermissionError` for a URL a client sent: server
        code that means to fetch it calls :meth:`fetch`."""
        if self._content is None:
            if self.from_client:
                raise PermissionError(
                    f"URLMedia {self.url!r} came from a client and is not fetched by itself: call .fetch() to fetch "
                    "it over http(s) (it reaches whatever this server can reach), or ask clients for BlobMedia"
                )
            self._content = self.fetch()
        return self._content

    def fetch(self, timeout: float = 30.0) -> bytes:
        """Fetch the content over http or https (redirects included, to http(s) only); any other scheme raises
        :class:`PermissionError`.  The server fetches it: a URL can name addresses only the server reaches."""
        scheme = urlsplit(self.url).scheme.lower()
        if scheme not in self.SCHEMES:
            raise PermissionError(f"URLMedia fetches http and https URLs only, not {scheme or 'a relative'}: URLs")
        opener = urllib.request.OpenerDirector()
        for handler in (
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPHandler(),
            urllib.request.HTTPSHandler(),
            urllib.request.HTTPRedirectHandler(),  # follows http(s) and ftp; no ftp handler here, so ftp fails
            urllib.request.HTTPDefaultErrorHandler(),
            urllib.request.HTTPErrorProcessor(),
        ):
            opener.add_handler(handler)
        with opener.open(self.url, timeout=timeout) as response:
            content: bytes = response.read()
        self._content = content
        return content

    def __eq__(self, other: object) -> bool:
        """Equal to a URLMedia of the same URL; comparing never fetches."""
        if isinstance(other, URLMedia):
            return self.url == other.url
        return False if isinstance(other, Media) else NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"URLMedia({self.url!r})"
