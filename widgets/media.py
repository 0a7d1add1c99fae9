"""Media <-> widgets: files from a FileUpload become Media; Media shows in an Image."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from greenroom.media import BlobMedia, Media

__all__ = ["image_from_media", "media_from_upload"]


def media_from_upload(upload: w.FileUpload | Any) -> list[BlobMedia]:
    """The files of a ``FileUpload`` (or its ``value``) as BlobMedia, ready for ``server.call``."""
    files = upload.value if isinstance(upload, w.FileUpload) else upload
    media = []
    for item in files or ():
        content = item["content"]
        media.append(BlobMedia(item.get("type") or "", content, name=item.get("name")))
    return media


def image_from_media(media: Media, image: w.Image | None = None) -> w.Image:
    """Show ``media`` in ``image`` (a new ``Image`` if not given)."""
    if not isinstance(media, Media):
        raise TypeError(f"image_from_media needs greenroom Media, not {type(media).__name__}")
    fmt = media.content_type.split("/", 1)[1] if media.content_type.startswith("image/") else "png"
    if image is None:
        return w.Image(value=media.get_bytes(), format=fmt)
    image.format = fmt
    image.value = media.get_bytes()
    return image
