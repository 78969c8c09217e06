"""Icechunk repositories: listing their versions, and the writable sessions
``write_meta`` commits through.

Reading needs nothing but this package (the Rust core opens repositories of
format versions 1 and 2). Writing uses the ``icechunk`` Python package, which
needs Python 3.12 or later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sedonadb_zarr_meta import _lib
from sedonadb_zarr_meta._options import options_json, validate_options

DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class Snapshot:
    """One commit of a repository."""

    id: str
    parent_id: str | None
    time: datetime
    message: str


@dataclass(frozen=True)
class RepositoryVersions:
    """What :func:`list_versions` returns.

    Attributes:
        branches: branch name → snapshot id at its tip.
        tags: tag name → snapshot id it names.
        snapshots: every snapshot reachable from a branch or tag, newest first.
    """

    branches: dict[str, str]
    tags: dict[str, str]
    snapshots: list[Snapshot]


def list_versions(uri: str | Path, *, storage_options: dict[str, Any] | None = None) -> RepositoryVersions:
    """The branches, tags and snapshots of the Icechunk repository at ``uri``.

    Any of them can be read with the ``branch``, ``tag`` or ``snapshot`` option
    of every reading surface.

    Raises:
        FileNotFoundError: nothing at ``uri``, or no Icechunk repository there.

    Examples:
        >>> v = list_versions("/data/catalogue.icechunk")  # doctest: +SKIP
        >>> v.tags["v1"], v.snapshots[0].message  # doctest: +SKIP
    """
    options = validate_options({"storage_options": storage_options or {}})
    branches, tags, snapshots = _lib.list_versions(str(uri), options_json(options))
    return RepositoryVersions(
        branches=dict(branches),
        tags=dict(tags),
        snapshots=[
            Snapshot(
                id=sid,
                parent_id=parent,
                time=datetime.fromtimestamp(micros / 1e6, tz=timezone.utc),
                message=message,
            )
            for sid, parent, micros, message in snapshots
        ],
    )


def _module() -> Any:
    try:
        import icechunk
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "writing to Icechunk repositories needs the 'icechunk' package (Python 3.12 or later): "
            "pip install 'icechunk>=2.3,<3'"
        ) from e
    return icechunk


def _first(options: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in options:
            return options[key]
    return None


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def storage(uri: str, storage_options: dict[str, Any] | None) -> Any:
    """The ``icechunk.Storage`` of ``uri`` (local path, ``file://``, ``s3://``, ``gs://``, ``az://``)."""
    icechunk = _module()
    options = dict(storage_options or {})
    parsed = urlparse(uri) if "://" in uri else None
    scheme = parsed.scheme.lower() if parsed else ""
    if scheme in ("", "file"):
        path = Path(unquote(parsed.path)) if parsed else Path(uri)
        return icechunk.local_filesystem_storage(str(path))
    assert parsed is not None
    bucket, prefix = parsed.netloc, parsed.path.strip("/") or None
    if scheme in ("s3", "s3a"):
        key_id = _first(options, "aws_access_key_id", "access_key_id")
        return icechunk.s3_storage(
            bucket=bucket,
            prefix=prefix,
            region=_first(options, "aws_region", "region", "aws_default_region"),
            endpoint_url=_first(options, "aws_endpoint", "aws_endpoint_url", "endpoint", "endpoint_url"),
            allow_http=_truthy(_first(options, "aws_allow_http", "allow_http")),
            access_key_id=key_id,
            secret_access_key=_first(options, "aws_secret_access_key", "secret_access_key"),
            session_token=_first(options, "aws_session_token", "aws_token", "session_token", "token"),
            anonymous=_truthy(_first(options, "aws_skip_signature", "skip_signature")) or None,
            from_env=None if key_id else True,
            force_path_style=not _truthy(_first(options, "aws_virtual_hosted_style_request")),
        )
    if scheme in ("gs", "gcs"):
        return icechunk.gcs_storage(
            bucket=bucket,
            prefix=prefix,
            service_account_file=_first(options, "google_service_account", "service_account"),
            from_env=True,
        )
    if scheme in ("az", "azure", "abfs", "abfss"):
        account = _first(options, "azure_storage_account_name", "account_name")
        if account is None:
            raise ValueError(f"{uri}: writing to Azure needs storage option 'azure_storage_account_name'")
        return icechunk.azure_storage(
            account=account,
            container=bucket,
            prefix=prefix,
            access_key=_first(options, "azure_storage_account_key", "account_key"),
            from_env=True,
        )
    raise NotImplementedError(f"{uri}: Icechunk repositories at {scheme}:// URLs cannot be written")


def writable_session(uri: str, storage_options: dict[str, Any] | None, branch: str, create: bool) -> Any:
    """A writable session on ``branch`` of the repository at ``uri`` (created if ``create``)."""
    icechunk = _module()
    st = storage(uri, storage_options)
    if icechunk.Repository.exists(st):
        repo = icechunk.Repository.open(st)
    elif create:
        repo = icechunk.Repository.create(st)
    else:
        raise FileNotFoundError(f"{uri}: Icechunk repository not found")
    branches = repo.list_branches()
    if branch not in branches:
        raise ValueError(
            f"{uri}: branch {branch!r} not found in the Icechunk repository (it has branches "
            f"{', '.join(sorted(branches))}); create it with Repository.create_branch"
        )
    return repo.writable_session(branch)
