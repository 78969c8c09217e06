"""``create_app(uri, **options)``: a stac-fastapi application serving one store as a STAC API."""

from __future__ import annotations

import os
from typing import Any, Literal

import attr
from pydantic import BaseModel, Field
from stac_fastapi.api.app import StacApi
from stac_fastapi.api.models import ItemCollectionUri, create_get_request_model, create_post_request_model
from stac_fastapi.api.routes import add_direct_response
from stac_fastapi.extensions import (
    FieldsExtension,
    FilterExtension,
    SortExtension,
    TokenPaginationExtension,
)
from stac_fastapi.extensions.filter.filter import FilterConformanceClasses
from stac_fastapi.types.config import ApiSettings
from stac_fastapi.types.search import BaseSearchGetRequest, BaseSearchPostRequest
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sedonadb_zarr_meta._serve.catalogue import Catalogue
from sedonadb_zarr_meta._serve.client import CoreClient, FiltersClient

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: Largest request body accepted (a POST search with a filter or an intersects geometry).
MAX_BODY_BYTES = 1 << 20

#: The CQL2 classes the rewriting of :mod:`cql` covers (arrays only in part: not claimed).
_FILTER_CLASSES = [
    FilterConformanceClasses.FILTER,
    FilterConformanceClasses.SEARCH,
    FilterConformanceClasses.ITEMS,
    FilterConformanceClasses.CQL2_TEXT,
    FilterConformanceClasses.CQL2_JSON,
    FilterConformanceClasses.BASIC_CQL2,
    FilterConformanceClasses.ADVANCED_COMPARISON_OPERATORS,
    FilterConformanceClasses.BASIC_SPATIAL_FUNCTIONS,
    FilterConformanceClasses.BASIC_SPATIAL_FUNCTIONS_PLUS,
    FilterConformanceClasses.SPATIAL_FUNCTIONS,
    FilterConformanceClasses.TEMPORAL_FUNCTIONS,
    FilterConformanceClasses.CASE_INSENSITIVE_COMPARISON,
    FilterConformanceClasses.ACCENT_INSENSITIVE_COMPARISON,
]


#: Sort extension 1.0 (``sortby`` on item search and item lists; no sortables endpoint).
_SORT_CLASSES = [
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
]


class _FilterPost(BaseModel):
    """The filter members of a POST search: CQL2 JSON, or CQL2 text as pystac-client sends it."""

    filter_expr: dict[str, Any] | str | None = Field(None, alias="filter")
    filter_crs: str | None = Field(None, alias="filter-crs")
    filter_lang: Literal["cql2-json", "cql2-text"] | None = Field(None, alias="filter-lang")


@attr.s
class _SearchFilter(FilterExtension):
    POST = _FilterPost


class _BodyLimit:
    """Refuses request bodies larger than ``limit`` bytes with 413 (before they are read)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = JSONResponse(
                {"code": "RequestTooLarge", "description": f"request body over {self.limit} bytes"}, 413
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ValueError(f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def create_app(uri: str, *, title: str | None = None, **options: Any) -> Any:
    """An ASGI application (FastAPI) serving the ``meta`` group of ``uri`` as a STAC API.

    ``options`` are the read options of :func:`sedonadb_zarr_meta.open_meta` (``group``,
    ``branch``/``tag``/``snapshot``, ``storage_options``, …). The store is opened once and kept
    between requests; every search is SQL over it (see :mod:`sedonadb_zarr_meta._serve.search`).

    Examples:
        >>> import uvicorn
        >>> app = create_app("catalogue.zarr")  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
    """
    catalogue = Catalogue(uri, options)
    name = os.path.basename(str(uri).rstrip("/")) or "catalogue"
    settings = ApiSettings(
        stac_fastapi_title=title or f"STAC API of {name}",
        stac_fastapi_description=f"STAC items of the Zarr meta group {name}, searched with SQL",
        stac_fastapi_landing_id="zarr-meta",
        stac_fastapi_version=_version(),
    )
    extensions = [
        _SearchFilter(client=FiltersClient(catalogue=catalogue), conformance_classes=_FILTER_CLASSES),
        SortExtension(conformance_classes=_SORT_CLASSES),
        FieldsExtension(),
        TokenPaginationExtension(),
    ]
    api = StacApi(
        settings=settings,
        client=CoreClient(catalogue=catalogue),
        extensions=extensions,
        search_get_request_model=create_get_request_model(extensions, BaseSearchGetRequest),
        search_post_request_model=create_post_request_model(extensions, BaseSearchPostRequest),
        items_get_request_model=create_get_request_model(extensions, ItemCollectionUri),
    )
    app = api.app
    # Endpoints return their JSON as it is: FastAPI's generic encoding of a page of items cost
    # a third of a search's time (the documented stac-fastapi setting).
    add_direct_response(app)
    app.add_middleware(_BodyLimit)
    app.state.catalogue = catalogue
    return app


def _version() -> str:
    from sedonadb_zarr_meta import __version__

    return __version__
