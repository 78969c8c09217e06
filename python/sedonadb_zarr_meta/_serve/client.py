"""The stac-fastapi backend: core endpoints and queryables answered from a :class:`Catalogue`."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import attr
import orjson
import pyarrow as pa
from sedonadb._lib import SedonaError
from stac_fastapi.extensions.filter.client import BaseFiltersClient
from stac_fastapi.types.core import BaseCoreClient
from stac_fastapi.types.errors import InvalidQueryParameter, NotFoundError
from starlette.requests import Request
from starlette.responses import Response

from sedonadb_zarr_meta._serve import cql
from sedonadb_zarr_meta._serve.catalogue import Catalogue
from sedonadb_zarr_meta._serve.items import apply_fields, format_time, rows_to_items
from sedonadb_zarr_meta._serve.search import DEFAULT_LIMIT, Search, SearchError, run_search

__all__ = ["CoreClient", "FiltersClient"]

_GEOJSON = "application/geo+json"
#: Link relations the server writes itself (a stored document's own are replaced).
_SERVER_RELS = frozenset({"self", "root", "parent", "items", "queryables"})
_JSON = "application/json"


class GeoJSONResponse(Response):
    """Items as GeoJSON, encoded by orjson as they are: FastAPI's generic encoding of a page of
    items (``jsonable_encoder``, which stac-fastapi's direct responses no longer bypass on the
    FastAPI releases that route through their own handlers) cost a third of a search."""

    media_type = _GEOJSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _item_links(base: str, item: dict[str, Any]) -> list[dict[str, str]]:
    collection = urllib.parse.quote(str(item.get("collection", "")), safe="")
    links = [{"rel": "root", "href": f"{base}/", "type": _JSON}]
    if "collection" in item:
        col = f"{base}/collections/{collection}"
        item_id = urllib.parse.quote(item["id"], safe="")
        links += [
            {"rel": "self", "href": f"{col}/items/{item_id}", "type": _GEOJSON},
            {"rel": "parent", "href": col, "type": _JSON},
            {"rel": "collection", "href": col, "type": _JSON},
        ]
    return links


def _fields(fields: Any) -> tuple[list[str], list[str]]:
    """``(include, exclude)`` of the fields extension, GET (``a,-b``) or POST (``{include, exclude}``)."""
    if not fields:
        return [], []
    if isinstance(fields, (list, tuple)):
        include = [f.lstrip("+") for f in fields if not f.startswith("-")]
        return include, [f[1:] for f in fields if f.startswith("-")]
    include = getattr(fields, "include", None) or (
        fields.get("include") if isinstance(fields, dict) else None
    )
    exclude = getattr(fields, "exclude", None) or (
        fields.get("exclude") if isinstance(fields, dict) else None
    )
    return sorted(include or []), sorted(exclude or [])


def _sortby(sortby: Any) -> list[tuple[str, str]]:
    out = []
    for entry in sortby or []:
        if isinstance(entry, str):
            direction = "desc" if entry.startswith("-") else "asc"
            out.append((entry.lstrip("+-"), direction))
        else:
            field = getattr(entry, "field", None) or entry["field"]
            direction = getattr(entry, "direction", None) or entry.get("direction", "asc")
            out.append((field, str(getattr(direction, "value", direction))))
    return out


@attr.s
class CoreClient(BaseCoreClient):
    """Search, items and collections of one store."""

    catalogue: Catalogue = attr.ib(default=None)

    def landing_page(self, **kwargs: Any) -> dict[str, Any]:
        page = super().landing_page(**kwargs)
        page["links"].append(
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "href": f"{_base(kwargs['request'])}/queryables",
                "type": "application/schema+json",
                "title": "Queryables",
            }
        )
        return page

    # ------------------------------------------------------------ collections

    def _collection(self, base: str, cid: str, info: dict[str, Any]) -> dict[str, Any]:
        spatial = (
            [[info["w"], info["s"], info["e"], info["n2"]]]
            if info.get("w") is not None
            else [[-180, -90, 180, 90]]
        )
        t0, t1 = info.get("t0"), info.get("t1")
        href = f"{base}/collections/{urllib.parse.quote(cid, safe='')}"
        computed = {
            "type": "Collection",
            "stac_version": "1.1.0",
            "id": cid,
            "description": f"Items of collection {cid} ({info['n']} items)",
            "license": "other",
            "extent": {
                "spatial": {"bbox": spatial},
                "temporal": {
                    "interval": [[format_time(t0) if t0 else None, format_time(t1) if t1 else None]]
                },
            },
        }
        # A document the store carries is served as it is; what it lacks comes from the data.
        collection = {**computed, **(info.get("document") or {})}
        own = [link for link in collection.get("links") or [] if link.get("rel") not in _SERVER_RELS]
        return {
            **collection,
            "links": own
            + [
                {"rel": "self", "href": href, "type": _JSON},
                {"rel": "root", "href": f"{base}/", "type": _JSON},
                {"rel": "parent", "href": f"{base}/", "type": _JSON},
                {"rel": "items", "href": f"{href}/items", "type": _GEOJSON},
                {"rel": "queryables", "href": f"{href}/queryables", "type": "application/schema+json"},
            ],
        }

    def all_collections(self, **kwargs: Any) -> dict[str, Any]:
        base = _base(kwargs["request"])
        collections = self.catalogue.collections()
        return {
            "collections": [self._collection(base, cid, info) for cid, info in collections.items()],
            "links": [
                {"rel": "self", "href": f"{base}/collections", "type": _JSON},
                {"rel": "root", "href": f"{base}/", "type": _JSON},
            ],
        }

    def get_collection(self, collection_id: str, **kwargs: Any) -> dict[str, Any]:
        info = self.catalogue.collections().get(collection_id)
        if info is None:
            raise NotFoundError(f"no collection {collection_id!r}")
        return self._collection(_base(kwargs["request"]), collection_id, info)

    # ------------------------------------------------------------ items

    def get_item(self, item_id: str, collection_id: str, **kwargs: Any) -> Response:
        table, _ = self._run(Search(collections=[collection_id], ids=[item_id], limit=1))
        items = rows_to_items(self.catalogue, table)
        if not items:
            raise NotFoundError(f"no item {item_id!r} in collection {collection_id!r}")
        item = items[0]
        item["links"] = _item_links(_base(kwargs["request"]), item)
        return GeoJSONResponse(item)

    def item_collection(
        self,
        collection_id: str,
        bbox: Any = None,
        datetime: str | None = None,
        limit: int | None = DEFAULT_LIMIT,
        token: str | None = None,
        **kwargs: Any,
    ) -> Response:
        if collection_id not in self.catalogue.collections():
            raise NotFoundError(f"no collection {collection_id!r}")
        search = Search(
            collections=[collection_id],
            bbox=list(bbox) if bbox else None,
            datetime=datetime,
            filter=kwargs.get("filter_expr"),
            filter_lang=kwargs.get("filter_lang"),
            sortby=_sortby(kwargs.get("sortby")),
            limit=limit or DEFAULT_LIMIT,
            token=token,
        )
        return self._page(search, kwargs["request"], kwargs.get("fields"), None)

    # ------------------------------------------------------------ search

    def get_search(
        self,
        collections: list[str] | None = None,
        ids: list[str] | None = None,
        bbox: Any = None,
        intersects: Any = None,
        datetime: str | None = None,
        limit: int | None = DEFAULT_LIMIT,
        **kwargs: Any,
    ) -> Response:
        if isinstance(intersects, str):
            try:
                intersects = json.loads(intersects)
            except ValueError:
                raise InvalidQueryParameter("intersects is not GeoJSON") from None
        search = Search(
            collections=collections,
            ids=ids,
            bbox=list(bbox) if bbox else None,
            intersects=intersects,
            datetime=datetime,
            filter=kwargs.get("filter_expr"),
            filter_lang=kwargs.get("filter_lang"),
            sortby=_sortby(kwargs.get("sortby")),
            limit=limit or DEFAULT_LIMIT,
            token=kwargs.get("token"),
        )
        return self._page(search, kwargs["request"], kwargs.get("fields"), None)

    def post_search(self, search_request: Any, **kwargs: Any) -> Response:
        r = search_request
        if cql.too_deep(getattr(r, "filter_expr", None)):
            raise InvalidQueryParameter(f"filter nested deeper than {cql.MAX_DEPTH} levels")
        intersects = r.intersects.model_dump(exclude_none=True) if r.intersects is not None else None
        datetime = r.model_dump(by_alias=True, exclude_none=True, mode="json").get("datetime")
        search = Search(
            collections=r.collections,
            ids=r.ids,
            bbox=list(r.bbox) if r.bbox else None,
            intersects=intersects,
            datetime=datetime,
            filter=getattr(r, "filter_expr", None),
            filter_lang=getattr(r, "filter_lang", None),
            sortby=_sortby(getattr(r, "sortby", None)),
            limit=r.limit or DEFAULT_LIMIT,
            token=getattr(r, "token", None),
        )
        body = r.model_dump(by_alias=True, exclude_none=True, mode="json")
        return self._page(search, kwargs["request"], getattr(r, "fields", None), body)

    # ------------------------------------------------------------ shared

    def _run(self, search: Search, columns: list[str] | None = None) -> tuple[pa.Table, str | None]:
        try:
            return run_search(self.catalogue, search, columns)
        except SearchError as e:
            raise InvalidQueryParameter(str(e)) from None
        except SedonaError as e:
            if search.filter in (None, "", {}):
                raise
            # The engine refused the filter's SQL (e.g. a comparison of text with a number).
            raise InvalidQueryParameter(f"the filter cannot be run: {' '.join(str(e).split())}") from None

    def _columns(self, include: list[str]) -> list[str] | None:
        """The columns the ``include`` paths of the fields extension need (``None``: all)."""
        if not include:
            return None
        out = []
        for name, column in self.catalogue.columns.items():
            role = column.role
            for path in include:
                head = path.split(".", 1)[0]
                if (
                    (role == "property" and (path == "properties" or path.split(".", 1)[-1] == name))
                    or ((role == "asset" or name == "assets") and head == "assets")
                    or (role == "zrange" and head == "bbox")
                    or (role == "top" and head == name)
                ):
                    out.append(name)
                    break
        return out

    def _page(self, search: Search, request: Request, fields: Any, body: dict[str, Any] | None) -> Response:
        include, exclude = _fields(fields)
        table, token = self._run(search, self._columns(include))
        base = _base(request)
        features = []
        for item in rows_to_items(self.catalogue, table):
            item["links"] = _item_links(base, item)
            features.append(apply_fields(item, include, exclude) if include or exclude else item)
        links = [{"rel": "root", "href": f"{base}/", "type": _JSON}]
        if request.method == "GET":
            links.append({"rel": "self", "href": str(request.url), "type": _GEOJSON})
        if token is not None:
            if body is None:
                query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                query.append(("token", token))
                url = str(request.url.replace(query=urllib.parse.urlencode(query)))
                links.append({"rel": "next", "href": url, "type": _GEOJSON, "method": "GET"})
            else:
                links.append(
                    {
                        "rel": "next",
                        "href": str(request.url),
                        "type": _GEOJSON,
                        "method": "POST",
                        "body": {**body, "token": token},
                        "merge": False,
                    }
                )
        return GeoJSONResponse(
            {
                "type": "FeatureCollection",
                "features": features,
                "links": links,
                "numberReturned": len(features),
            }
        )


_TYPES = (
    (pa.types.is_boolean, {"type": "boolean"}),
    (pa.types.is_integer, {"type": "integer"}),
    (pa.types.is_floating, {"type": "number"}),
    (pa.types.is_timestamp, {"type": "string", "format": "date-time"}),
    (pa.types.is_date, {"type": "string", "format": "date"}),
)


@attr.s
class FiltersClient(BaseFiltersClient):
    """``/queryables``: the store's columns and their JSON types (one schema for every collection)."""

    catalogue: Catalogue = attr.ib(default=None)

    def get_queryables(self, collection_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        if collection_id is not None and collection_id not in self.catalogue.collections():
            raise NotFoundError(f"no collection {collection_id!r}")
        base = _base(kwargs["request"])
        properties: dict[str, Any] = {}
        for name, column in self.catalogue.columns.items():
            if column.role in ("asset", "zrange") or name == "assets":
                continue
            if column.geometry:
                schema: dict[str, Any] = {"$ref": "https://geojson.org/schema/Geometry.json"}
            elif column.is_json:
                schema = {"type": ["array", "object"], "description": "JSON text"}
            else:
                schema = next((dict(s) for test, s in _TYPES if test(column.type)), {"type": "string"})
            schema["title"] = name
            properties[name] = schema
        where = f"/collections/{collection_id}" if collection_id else ""
        return {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": f"{base}{where}/queryables",
            "type": "object",
            "title": "Queryables",
            "properties": properties,
            "additionalProperties": True,
        }
