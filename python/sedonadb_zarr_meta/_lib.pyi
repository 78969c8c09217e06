# Type stubs of the extension module ``sedonadb_zarr_meta._lib`` (Rust, pyo3).
# Kept beside the Rust modules' docs; ci/lint.sh checks that every exported
# name is stubbed here.

from typing import Any

import pyarrow as pa

__version__: str
DATAFUSION_MAJOR: int
OPTION_KEYS: list[str]
MAX_CONCURRENCY: int
MAX_OPTIONS_BYTES: int
OBJECT_STORE_SCHEMES: list[str]
STATS_ATTRIBUTE: str
VALIDITY_ATTRIBUTE: str
VALIDITY_GROUP: str
ICECHUNK_MARKERS: list[str]
DEFAULT_MAX_RETRIES: int
DEFAULT_RETRY_TIMEOUT_SECS: float
MAX_CHUNK_BYTES: int
VARIABLE_ELEMENT_MAX_BYTES: int

class ZarrMetaError(Exception):
    """Base exception of sedonadb_zarr_meta."""

class MetaTable:
    """An opened ``meta`` group (metadata only; no chunk is read)."""

    def __init__(self, uri: str, options_json: str | None = None) -> None: ...
    @property
    def num_rows(self) -> int: ...
    @property
    def group_id(self) -> int: ...
    @property
    def column_names(self) -> list[str]: ...
    @property
    def has_stats(self) -> bool: ...
    @property
    def attributes_json(self) -> str: ...
    @property
    def chunk_rows(self) -> dict[str, list[int]]: ...
    @property
    def statistics_json(self) -> str: ...
    def __arrow_c_schema__(self) -> object: ...
    def scan(
        self,
        columns: list[int] | None = None,
        batch_size: int | None = None,
        start: int = 0,
        end: int | None = None,
        bbox: tuple[str, tuple[float, float, float, float]] | None = None,
        rows: list[int] | None = None,
        extension_types: bool = True,
    ) -> BatchStream: ...

class BatchStream:
    """A single-use Arrow C stream of record batches."""

    @property
    def chunks_read(self) -> int: ...
    @property
    def chunks_kept(self) -> int: ...
    @property
    def pieces_skipped(self) -> int: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    def __arrow_c_schema__(self) -> object: ...
    def __iter__(self) -> BatchStream: ...
    def __next__(self) -> pa.RecordBatch: ...
    def read_all(self) -> pa.Table: ...

class SedonaTableProvider:
    """A ``meta`` group for ``sedonadb`` ``con.create_data_frame(obj)``."""

    def __init__(self, uri: str, options_json: str | None = None) -> None: ...
    @property
    def chunks_read(self) -> int: ...
    @property
    def chunks_kept(self) -> int: ...
    @property
    def group_id(self) -> int: ...
    def __sedonadb_table_provider__(self) -> object: ...
    def __arrow_c_schema__(self) -> object: ...

class ZarrMetaTableFunction:
    """``sd_read_zarr_meta`` as a datafusion-ffi table function."""

    def __init__(self) -> None: ...
    def __datafusion_table_function__(self, session: Any) -> object: ...

class GeometryUdf:
    """``sd_geomfromtext`` (``input="wkt"``) / ``sd_geomfromwkb`` (``input="wkb"``) for datafusion."""

    def __init__(self, input: str) -> None: ...
    def __datafusion_scalar_udf__(self) -> object: ...

class CrsIdiomUdf:
    """SedonaDB's CRS idioms (``st_setsrid`` …) reading their constant SRID/CRS, for datafusion."""

    def __init__(self, name: str) -> None: ...
    @staticmethod
    def names() -> list[str]: ...
    def __datafusion_scalar_udf__(self) -> object: ...

def find_table_function_calls(
    sql: str, function: str, signature: str
) -> list[tuple[int, int, list[str]]]: ...
def list_versions(
    uri: str, options_json: str | None = None
) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str | None, int, str]]]: ...
