"""A STAC search as one SQL query over the store, with pushdown and keyset paging.

``bbox``/``intersects`` become ``ST_Intersects`` with a literal tagged ``ST_SetSRID(…, 4326)``;
``datetime`` a range on the time columns; ``collections``/``ids`` an ``IN``; the filter the
rewritten SQL of :mod:`cql`. Results are ordered by the sort keys, then by each item's position
in the group (:data:`~catalogue.ROW`, a total order the store gives for free), and a page token
holds the last row's keys: the next page is the rows after them, never an offset. Without a
``sortby`` the order is the group's own, which the scan already follows: a page reads only the
rows after the token's position, so page 500 costs what page 1 does.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

from sedonadb_zarr_meta._serve import cql
from sedonadb_zarr_meta._serve.catalogue import ROW, Catalogue, quote, sql_string
from sedonadb_zarr_meta._stac import parse_datetime

__all__ = ["MAX_LIMIT", "Search", "SearchError", "run_search"]

#: Largest page served (larger ``limit``s are answered with 400).
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 10
#: Most ids or collections in one search.
MAX_NAMES = 10_000


class SearchError(ValueError):
    """A search that cannot be answered as asked (400)."""


@dataclass
class Search:
    collections: list[str] | None = None
    ids: list[str] | None = None
    bbox: list[float] | None = None
    intersects: dict[str, Any] | None = None
    datetime: str | None = None
    filter: str | dict[str, Any] | None = None
    filter_lang: str | None = None
    sortby: list[tuple[str, str]] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    token: str | None = None


def _timestamp(text: str) -> str:
    value = parse_datetime(text.strip())
    if value is None:
        raise SearchError(f"invalid datetime {text!r}: expected RFC 3339, e.g. 2024-07-01T00:00:00Z")
    return f"CAST({sql_string(str(value).replace('T', ' '))} AS TIMESTAMP)"


def datetime_sql(catalogue: Catalogue, text: str) -> str:
    """Items whose time (or time range) meets the instant or interval ``text``."""
    parts = text.split("/")
    if len(parts) > 2:
        raise SearchError(f"invalid datetime {text!r}: one instant or START/END")
    if len(parts) == 1:
        start = end = _timestamp(parts[0])
    else:
        start = None if parts[0] in ("", "..") else _timestamp(parts[0])
        end = None if parts[1] in ("", "..") else _timestamp(parts[1])
        if start is None and end is None:
            raise SearchError(f"invalid datetime {text!r}: an interval needs at least one end")
    columns = catalogue.columns
    tests = []
    if "datetime" in columns:
        point = [f'"datetime" >= {start}' if start else "", f'"datetime" <= {end}' if end else ""]
        tests.append(" AND ".join(p for p in point if p))
    if "start_datetime" in columns and "end_datetime" in columns:
        span = [f'"end_datetime" >= {start}' if start else "", f'"start_datetime" <= {end}' if end else ""]
        guard = '"datetime" IS NULL AND ' if "datetime" in columns else ""
        tests.append(guard + " AND ".join(p for p in span if p))
    if not tests:
        raise SearchError("this catalogue has no datetime column to search by")
    return "(" + ") OR (".join(tests) + ")"


def _ring(w: float, s: float, e: float, n: float) -> str:
    return f"({w!r} {s!r}, {e!r} {s!r}, {e!r} {n!r}, {w!r} {n!r}, {w!r} {s!r})"


def bbox_wkt(bbox: list[float]) -> str:
    if len(bbox) not in (4, 6):
        raise SearchError(f"invalid bbox {bbox!r}: 4 or 6 numbers")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        raise SearchError(f"invalid bbox {bbox!r}: finite numbers")
    w, s, e, n = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else bbox
    if s > n or not (-90 <= s <= 90 and -90 <= n <= 90) or not (-180 <= w <= 180 and -180 <= e <= 180):
        raise SearchError(f"invalid bbox {bbox!r}: west,south,east,north in degrees with south <= north")
    if w > e:  # crosses the antimeridian: two boxes
        return f"MULTIPOLYGON(({_ring(w, s, 180.0, n)}), ({_ring(-180.0, s, e, n)}))"
    return f"POLYGON({_ring(w, s, e, n)})"


def _geometry_literal(wkt: str) -> str:
    return f"ST_SetSRID(ST_GeomFromText({sql_string(wkt)}), 4326)"


def _spatial_column(catalogue: Catalogue) -> str:
    for name in ("geometry", "bbox"):
        if name in catalogue.columns:
            return quote(name)
    raise SearchError("this catalogue has no geometry column to search by")


def _in(column: str, values: list[str], what: str) -> str:
    if len(values) > MAX_NAMES:
        raise SearchError(f"at most {MAX_NAMES} {what} in one search")
    return f"{quote(column)} IN ({', '.join(sql_string(v) for v in values)})"


def where_sql(catalogue: Catalogue, search: Search) -> list[str]:
    """The search's predicates (joined with AND)."""
    where = []
    if search.collections:
        where.append(_in("collection", search.collections, "collections"))
    if search.ids:
        where.append(_in("id", search.ids, "ids"))
    if search.bbox is not None and search.intersects is not None:
        raise SearchError("bbox and intersects cannot be used together")
    if search.bbox is not None:
        where.append(
            f"ST_Intersects({_spatial_column(catalogue)}, {_geometry_literal(bbox_wkt(search.bbox))})"
        )
    if search.intersects is not None:
        import shapely

        try:
            geom = shapely.from_geojson(json.dumps(search.intersects))
        except Exception as e:
            raise SearchError(f"invalid intersects geometry: {e}") from None
        where.append(f"ST_Intersects({_spatial_column(catalogue)}, {_geometry_literal(geom.wkt)})")
    if search.datetime:
        where.append(datetime_sql(catalogue, search.datetime))
    if search.filter not in (None, "", {}):
        try:
            where.append(
                "(" + cql.filter_sql(search.filter, search.filter_lang, catalogue.columns, quote) + ")"
            )
        except cql.FilterError as e:
            raise SearchError(str(e)) from None
    return where


def sort_keys(catalogue: Catalogue, search: Search) -> list[tuple[str, bool]]:
    """``(column, descending)`` of the requested order, then the position in the group."""
    keys: list[tuple[str, bool]] = []
    for name, direction in search.sortby:
        column = cql.column_name(name)
        if column not in catalogue.columns:
            raise SearchError(f"cannot sort by {name!r}: no such field (see /queryables)")
        if catalogue.columns[column].geometry or catalogue.columns[column].is_json:
            raise SearchError(f"cannot sort by {name!r}: not a sortable field")
        if direction not in ("asc", "desc"):
            raise SearchError(f"sort direction of {name!r} is asc or desc, got {direction!r}")
        if column not in (k for k, _ in keys):
            keys.append((column, direction == "desc"))
    keys.append((ROW, False))
    return keys


# ------------------------------------------------------------------ page tokens


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat(sep=" ")}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    return value


def _value_sql(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict) and "t" in value:
        return f"CAST({sql_string(str(value['t']))} AS TIMESTAMP)"
    if isinstance(value, dict) and "d" in value:
        return f"CAST({sql_string(str(value['d']))} AS DATE)"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return sql_string(value)
    raise SearchError("invalid page token")


def make_token(keys: list[tuple[str, bool]], row: dict[str, Any], snapshot: str | None) -> str:
    body: dict[str, Any] = {
        "k": [name for name, _ in keys],
        "v": [_encode_value(row[name]) for name, _ in keys],
        # The last item's id, checked against the item at its position when the token is used:
        # a store rewritten in between (positions moved) is an error, not a shifted page.
        "i": row["id"],
    }
    if snapshot is not None:
        body["s"] = snapshot
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


@dataclass
class Token:
    """What a page token says: the last row's sort keys (its position last), its id, and the
    snapshot the search reads."""

    values: list[Any]
    last_id: Any
    snapshot: str | None

    @property
    def position(self) -> int:
        return self.values[-1]


def read_token(token: str, keys: list[tuple[str, bool]]) -> Token:
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        names, values, last_id = body["k"], body["v"], body["i"]
    except Exception:
        raise SearchError("invalid page token") from None
    if names != [name for name, _ in keys] or len(values) != len(keys):
        raise SearchError("the page token belongs to another sort order")
    position = values[-1]
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < 2**62:
        raise SearchError("invalid page token")
    snapshot = body.get("s")
    if snapshot is not None and (not isinstance(snapshot, str) or not snapshot.isalnum()):
        raise SearchError("invalid page token")
    return Token(values, last_id, snapshot)


def keyset_sql(keys: list[tuple[str, bool]], values: list[Any], nullable: set[str] | None = None) -> str:
    """Rows after ``values`` in the order of ``keys`` (each ``NULLS LAST``); columns outside
    ``nullable`` (all when ``None``) hold no NULLs, so their tests stay plain comparisons that
    the reader can check against chunk statistics."""
    ors = []
    for i, (name, desc) in enumerate(keys):
        column = quote(name)
        value = values[i]
        ands = []
        for (prev, _), prev_value in zip(keys[:i], values[:i]):
            pc = quote(prev)
            ands.append(f"{pc} IS NULL" if prev_value is None else f"{pc} = {_value_sql(prev_value)}")
        if value is None:
            continue  # nothing sorts after NULL in this column
        op = "<" if desc else ">"
        if nullable is None or name in nullable:
            ands.append(f"({column} {op} {_value_sql(value)} OR {column} IS NULL)")
        else:
            ands.append(f"{column} {op} {_value_sql(value)}")
        ors.append("(" + " AND ".join(ands) + ")")
    return "(" + (" OR ".join(ors) or "FALSE") + ")"


def run_search(
    catalogue: Catalogue, search: Search, columns: list[str] | None = None
) -> tuple[Any, str | None]:
    """The rows of one page (an Arrow table of the group's ``columns``, all by default) and the
    next page's token.

    The page's positions first (only the filter and sort columns are decoded; with no
    ``sortby``, only in windows of rows after the token's position), then the page's rows by
    position (whole rows are decoded only in the chunks that hold them).
    """
    if not 1 <= search.limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}, got {search.limit}")
    keys = sort_keys(catalogue, search)
    where = where_sql(catalogue, search)
    token = read_token(search.token, keys) if search.token else None
    if token is not None:
        snapshot = token.snapshot
        if search.sortby:
            nullable = {name for name, column in catalogue.columns.items() if column.nullable}
            where.append(keyset_sql(keys, token.values, nullable))
    else:
        # On an Icechunk branch, every page of this search reads the snapshot page 1 read.
        snapshot = catalogue.snapshot()
    n = search.limit + 1
    try:
        if search.sortby:
            page = _sorted_page(catalogue, keys, where, n, snapshot)
        elif where:
            page = _group_order_page(catalogue, where, token, n, snapshot)
        else:
            # Nothing to test: the page is the next positions (those the group has), one query.
            start = token.position + 1 if token is not None else 0
            page = None
            rows = _rows(catalogue, list(range(start, start + n)), columns, snapshot, token, missing_ok=True)
        if page is not None:
            rows = _rows(catalogue, page.column(ROW).to_pylist()[: search.limit], columns, snapshot, token)
    except (FileNotFoundError, ValueError) as e:
        if token is None or snapshot is None or isinstance(e, SearchError):
            raise
        raise SearchError("the page token names a snapshot this repository does not have") from None
    if page is None:
        more = rows.num_rows > search.limit
        rows = rows.slice(0, search.limit)
        last: dict[str, Any] = {ROW: start + rows.num_rows - 1}
    else:
        more = page.num_rows > search.limit
        last = {name: page.column(name)[search.limit - 1].as_py() for name, _ in keys} if more else {}
    next_token = None
    if more:
        last["id"] = rows.column("id")[rows.num_rows - 1].as_py()
        next_token = make_token(keys, last, snapshot)
    return rows, next_token


def _sorted_page(
    catalogue: Catalogue, keys: list[tuple[str, bool]], where: list[str], n: int, snapshot: str | None
) -> Any:
    """The sort keys and positions of the first ``n`` matches in the order of ``keys``."""
    order = ", ".join(f"{quote(k)} {'DESC' if d else 'ASC'} NULLS LAST" for k, d in keys)
    sql = (
        f"SELECT {', '.join(quote(k) for k, _ in keys)} FROM {{meta}}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {order} LIMIT {n}"
    )
    return catalogue.query(sql, snapshot)


#: Rows after a page token's position that the first query of a page in group order tests (then
#: 16 times as many, then the rest): a page reads about as far as its matches reach, not to the
#: end of the group (the hosts sort a scan's output even when it is already in order).
FIRST_WINDOW = 16_384


def _group_order_page(
    catalogue: Catalogue, where: list[str], token: Token | None, n: int, snapshot: str | None
) -> Any:
    """The positions of the first ``n`` matches after the token's position, in group order."""
    import pyarrow as pa

    start = token.position + 1 if token is not None else 0
    window = max(FIRST_WINDOW, 64 * n)
    row = quote(ROW)
    parts = []
    found = 0
    for attempt in range(3):
        bounded = attempt < 2
        tests = [*where, f"{row} >= {start}"] + ([f"{row} < {start + window}"] if bounded else [])
        sql = f"SELECT {row} FROM {{meta}} WHERE {' AND '.join(tests)}"
        if bounded:
            # A window's matches (a few MB at most), put in order here: cheaper than the host's
            # sort of the scan's output.
            part = catalogue.query(sql, snapshot).sort_by(ROW).slice(0, n - found)
        else:
            part = catalogue.query(f"{sql} ORDER BY {row} LIMIT {n - found}", snapshot)
        parts.append(part)
        found += part.num_rows
        if found >= n:
            break
        start += window
        window *= 16
    return pa.concat_tables(parts)


def _rows(
    catalogue: Catalogue,
    positions: list[int],
    columns: list[str] | None,
    snapshot: str | None,
    token: Token | None,
    missing_ok: bool = False,
) -> Any:
    """The rows at ``positions`` (in that order; with ``missing_ok``, those the group has) with
    their ``columns`` (all by default, and ``id``), having checked that the token's last item is
    still at its position."""
    import pyarrow as pa

    wanted = list(catalogue.columns) if columns is None else [c for c in catalogue.columns if c in columns]
    for required in ("collection", "id"):
        if required not in wanted:
            wanted.append(required)
    wanted_positions = sorted({*positions, *([token.position] if token else [])})
    rows = catalogue.rows(wanted_positions, wanted, snapshot)
    at = {p: n for n, p in enumerate(rows.column(ROW).to_pylist())}
    if token is not None:
        previous = at.get(token.position)
        if previous is None or rows.column("id")[previous].as_py() != token.last_id:
            raise SearchError(
                "the catalogue was rewritten since this search began: run it again from its first page"
            )
    order = [at[p] for p in positions if not missing_ok or p in at]
    return rows.take(pa.array(order, pa.int64())).drop_columns([ROW])
