"""Where repository bytes live. See `base.Backend` for the contract every backend keeps."""

from __future__ import annotations

from .base import Backend
from .local import LocalBackend


def open_backend(url: str, **options: object) -> Backend:
    """Return the backend for a repository URL: a local path or ``s3://bucket/prefix``."""
    if url.startswith("s3://"):
        from .s3 import S3Backend  # imported lazily: only S3 users pay for it

        return S3Backend.from_url(url, **options)  # type: ignore[arg-type]
    if url.startswith("file://"):
        url = url[len("file://") :]
    return LocalBackend(url)


__all__ = ["Backend", "LocalBackend", "open_backend"]
