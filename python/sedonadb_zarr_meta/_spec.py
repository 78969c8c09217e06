"""``ZarrMetaSpec``: a SedonaDB ``ExternalFormatSpec`` for Zarr ``meta`` groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from sedonadb.datasource import ExternalFormatSpec

from sedonadb_zarr_meta._lib import BatchStream, MetaTable
from sedonadb_zarr_meta._options import options_json, redacted, validate_options

#: The format name under which :func:`register` makes the spec available.
FORMAT_NAME = "zarr_meta"


def _pushed_bbox(args: Any) -> tuple[str, tuple[float, float, float, float]] | None:
    """The (column, box) of a pushed spatial filter, if SedonaDB passed one."""
    if not args.filter or args.file_schema is None:
        return None
    names = list(args.file_schema.names)
    for i in args.file_schema.geometry_column_indices:
        box = args.filter.bounding_box(names[i])
        if box is not None:
            return names[i], tuple(float(v) for v in box)
    return None


class ZarrMetaSpec(ExternalFormatSpec):
    """Read the ``meta`` group of a Zarr store (v2 or v3) as a table.

    Each 1-D array of the group is a column and each index a row; ``bbox``
    and ``geometry`` arrays (or the ones named in ``geometry_columns``) become
    native geometry with the CRS from their ``proj:*`` attributes.

    Args:
        options: Optional read options: ``group`` (default ``"meta"``),
            ``arrays`` (columns to expose), ``geometry_columns``, ``crs``
            (overrides stored CRS), ``batch_size``, ``pushdown``,
            ``storage_options`` (object-store configuration such as
            ``{"aws_endpoint": ..., "aws_region": ...}``; overrides the
            environment), ``max_concurrency`` (requests in flight) and
            ``consolidated`` (use consolidated metadata).

    Examples:
        >>> import sedonadb
        >>> from sedonadb_zarr_meta import ZarrMetaSpec, register
        >>> con = sedonadb.connect()
        >>> register(con)
        >>> df = con.read_format(ZarrMetaSpec(), "file:///data/store.zarr")  # doctest: +SKIP
        >>> df = con.read("/data/store.zarr", format="zarr_meta")  # doctest: +SKIP
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._options = validate_options(options)

    @property
    def extension(self) -> str:
        return FORMAT_NAME

    @property
    def list_single_object(self) -> bool:
        # A Zarr store is a directory; it must reach open_reader as one object.
        return True

    @property
    def options(self) -> dict[str, Any]:
        """A copy of the options of this spec."""
        return dict(self._options)

    def with_options(self, options: Mapping[str, Any]) -> ZarrMetaSpec:
        """Return a new spec with ``options`` applied on top of this one's."""
        return ZarrMetaSpec({**self._options, **validate_options(options)})

    def open_table(self, uri: str) -> MetaTable:
        """Open the group of ``uri`` (metadata only)."""
        return MetaTable(uri, options_json(self._options))

    def infer_schema(self, src: Any) -> pa.Schema:
        return pa.schema(self.open_table(src.to_url()))

    def open_reader(self, args: Any) -> BatchStream:
        table = self.open_table(args.src.to_url())
        columns: list[int] | None = None
        if args.file_schema is not None:
            ours = table.column_names
            names = list(args.file_schema.names)
            wanted = [names[i] for i in args.file_projection] if args.is_projected() else names
            try:
                columns = [ours.index(n) for n in wanted]
            except ValueError as e:
                raise ValueError(
                    f"{args.src.to_url()}: the store's columns {ours} no longer match "
                    f"the planned schema {names}"
                ) from e
        bbox = _pushed_bbox(args) if self._options.get("pushdown", True) else None
        return table.scan(columns=columns, batch_size=args.batch_size, bbox=bbox)

    def __repr__(self) -> str:
        return f"ZarrMetaSpec({redacted(self._options)!r})"
