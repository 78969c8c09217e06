"""Validation of read options, shared by every surface of the package.

The same keys are accepted by :class:`ZarrMetaSpec`, ``read_format`` and the
``options_json`` argument of the SQL table function ``sd_read_zarr_meta``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sedonadb_zarr_meta import _lib

#: The option keys accepted everywhere (the Rust core's list).
OPTION_KEYS: frozenset[str] = frozenset(_lib.OPTION_KEYS)

#: Largest accepted ``max_concurrency`` (the Rust core's bound).
MAX_CONCURRENCY: int = _lib.MAX_CONCURRENCY

#: Options JSON longer than this is refused (the Rust core's bound).
MAX_OPTIONS_BYTES: int = _lib.MAX_OPTIONS_BYTES


#: Options choosing the version of an Icechunk repository (at most one).
_VERSION_KEYS = ("branch", "tag", "snapshot")


def _storage_options(value: Any) -> dict[str, str | bool | int | float]:
    """Object-store configuration: string keys, scalar values (never echoed: they may be secrets)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"option 'storage_options' must be a mapping, got {type(value).__name__}")
    out: dict[str, str | bool | int | float] = {}
    for key, v in value.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"option 'storage_options' keys must be non-empty strings, got {key!r}")
        if not isinstance(v, (str, bool, int, float)):
            raise ValueError(f"storage option {key!r} must be a string, number or boolean")
        out[key] = v
    return out


def redacted(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for display: storage option values are hidden."""
    out = dict(options)
    if "storage_options" in out:
        out["storage_options"] = {k: "<redacted>" for k in out["storage_options"]}
    return out


def _string_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"option {key!r} must be a list of array names, got {value!r}")
    out = list(value)
    if not out or not all(isinstance(v, str) and v for v in out):
        raise ValueError(f"option {key!r} must be a non-empty list of array names, got {value!r:.200}")
    seen: set[str] = set()
    for name in out:
        if name in seen:
            raise ValueError(f"option {key!r} names {name!r} more than once")
        seen.add(name)
    return out


def validate_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check option keys and value types; return a normalized copy.

    Raises:
        ValueError: naming the unknown key or the key whose value is wrong.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be a mapping, got {type(options).__name__}")
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in OPTION_KEYS:
            raise ValueError(f"unknown option {key!r} (expected one of: {', '.join(sorted(OPTION_KEYS))})")
        if value is None:
            continue
        if key == "group":
            if not isinstance(value, str):
                raise ValueError(f"option 'group' must be a string, got {value!r}")
        elif key in ("arrays", "geometry_columns"):
            value = _string_list(key, value)
        elif key == "crs":
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"option 'crs' must be a non-empty string, got {value!r}")
        elif key in ("pushdown", "consolidated"):
            if not isinstance(value, bool):
                raise ValueError(f"option {key!r} must be true or false, got {value!r}")
        elif key in ("batch_size", "max_concurrency"):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"option {key!r} must be a positive integer, got {value!r}")
            if key == "max_concurrency" and value > MAX_CONCURRENCY:
                raise ValueError(f"option 'max_concurrency' must be at most {MAX_CONCURRENCY}, got {value!r}")
        elif key == "storage_options":
            value = _storage_options(value)
        elif key in _VERSION_KEYS or key == "row_number":
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"option {key!r} must be a non-empty string, got {value!r}")
        out[key] = value
    chosen = [k for k in _VERSION_KEYS if k in out]
    if len(chosen) > 1:
        raise ValueError(
            f"at most one of 'branch', 'tag' and 'snapshot' may be given, got {' and '.join(chosen)}"
        )
    return out


def options_json(options: Mapping[str, Any]) -> str | None:
    """The options as the JSON object the Rust core parses (``None`` if empty)."""
    if not options:
        return None
    text = json.dumps(dict(options))
    if len(text) > MAX_OPTIONS_BYTES:
        raise ValueError(f"options are {len(text)} bytes as JSON, more than the {MAX_OPTIONS_BYTES} accepted")
    return text
