"""Where a write goes: local directories, or object stores through obstore (zarr-python's
``ObjectStore``), configured with the same ``storage_options`` the readers take."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sedonadb_zarr_meta import _lib

__all__ = ["consolidate", "holds_repository", "obstore_kwargs", "open_store"]

#: Keys of ``storage_options`` that configure the HTTP client rather than the store.
_CLIENT_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "timeout",
        "proxy_url",
        "user_agent",
        "http1_only",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
    }
)


def _retry(retry: dict[str, Any]) -> dict[str, Any]:
    """obstore's ``retry_config``: the readers' defaults where ``retry`` says nothing."""
    retry.setdefault("max_retries", _lib.DEFAULT_MAX_RETRIES)
    retry.setdefault("retry_timeout", timedelta(seconds=_lib.DEFAULT_RETRY_TIMEOUT_SECS))
    retry["backoff"] = {
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=15),
        "base": 2,
    }
    return retry


def obstore_kwargs(storage_options: dict[str, Any]) -> dict[str, Any]:
    """Split ``storage_options`` into obstore's ``config``, ``client_options`` and ``retry_config``."""
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    for key, value in storage_options.items():
        bare = key.lower()
        for prefix in ("aws_", "google_", "azure_"):
            if bare.startswith(prefix) and bare[len(prefix) :] in _CLIENT_KEYS:
                bare = bare[len(prefix) :]
        if key == "max_retries":
            retry["max_retries"] = int(value)
        elif key == "retry_timeout":
            retry["retry_timeout"] = timedelta(seconds=float(str(value).rstrip("s")))
        elif bare in _CLIENT_KEYS:
            client[bare] = value
        else:
            config[key] = value if isinstance(value, str) else str(value).lower()
    out: dict[str, Any] = {"config": config, "client_options": client}
    if retry:
        out["retry_config"] = _retry(retry)
    return out


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def _local_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path)) if _scheme(uri) == "file" else Path(uri)


def open_store(uri: str | Path, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """The zarr-python store for ``uri`` and the URI to report back.

    Local paths and ``file://`` URLs are directories; object-store URLs are
    written through zarr-python's obstore-backed ``ObjectStore``.
    """
    text = str(uri)
    scheme = _scheme(text)
    if scheme in ("", "file"):
        path = _local_path(text)
        return str(path), path.resolve().as_uri()
    if scheme not in _lib.OBJECT_STORE_SCHEMES:
        raise NotImplementedError(f"{text}: URI scheme {scheme!r} cannot be written")
    if scheme in ("http", "https"):
        raise NotImplementedError(f"{text}: http(s):// stores are read-only")
    import obstore.store
    import zarr.storage

    store = obstore.store.from_url(text, **obstore_kwargs(dict(storage_options or {})))
    return zarr.storage.ObjectStore(store), text


def holds_repository(uri: str | Path, storage_options: dict[str, Any] | None) -> bool:
    """Whether ``uri`` holds an Icechunk repository (checked by its marker objects)."""
    text = str(uri)
    scheme = _scheme(text)
    if scheme in ("", "file"):
        return any((_local_path(text) / marker).is_file() for marker in _lib.ICECHUNK_MARKERS)
    if scheme not in _lib.OBJECT_STORE_SCHEMES or scheme in ("http", "https"):
        return False
    import obstore.store

    store = obstore.store.from_url(text, **obstore_kwargs(dict(storage_options or {})))
    for marker in _lib.ICECHUNK_MARKERS:
        try:
            store.head(marker)
            return True
        except FileNotFoundError:
            continue
    return False


def consolidate(store: Any, group: str) -> None:
    """Write the group's consolidated metadata, so readers open it in one round trip."""
    import zarr

    zarr.consolidate_metadata(store, path=group or None)
