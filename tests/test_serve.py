"""``zarr-meta serve``: the STAC API driven by pystac-client, each answer checked against the
same query in SQL, and ingested items served back equal to their source (apart from links)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("stac_fastapi.api")
pytest.importorskip("cql2")
pystac_client = pytest.importorskip("pystac_client")

from sedonadb_zarr_meta import register, write_meta  # noqa: E402

from .conftest import BUCKET, cap_memory, s3_options  # noqa: E402
from .s3proxy import free_port  # noqa: E402

PLATFORMS = {"sentinel-2-l2a": ["sentinel-2a", "sentinel-2b"], "landsat-c2-l2": ["landsat-8", "landsat-9"]}
INSTRUMENTS = {"sentinel-2-l2a": ["msi"], "landsat-c2-l2": ["oli", "tirs"]}


def make_items(n: int = 90, seed: int = 3) -> list[dict[str, Any]]:
    """STAC items as real catalogues hold them: footprints, bboxes, eo:cloud_cover, lists,
    assets with roles, a few with a null or missing property and a 3-D bbox."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        collection = "sentinel-2-l2a" if i % 3 else "landsat-c2-l2"
        w, s = round(rng.uniform(-10, 25), 2), round(rng.uniform(35, 60), 2)
        e, nn = round(w + rng.uniform(0.5, 2), 2), round(s + rng.uniform(0.5, 2), 2)
        day, sec = 1 + rng.randrange(90), rng.randrange(86400)
        ms = rng.randrange(1000)
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1704067200 + (day - 1) * 86400 + sec))
        props: dict[str, Any] = {
            "datetime": f"{when}.{ms:03d}Z",
            "platform": rng.choice(PLATFORMS[collection]),
            "instruments": INSTRUMENTS[collection],
            "gsd": 10 if collection == "sentinel-2-l2a" else 30,
            "eo:cloud_cover": round(rng.uniform(0, 100), 1),
            "proj:epsg": 32600 + rng.randrange(1, 60),
        }
        if i % 11 == 0:
            props["eo:cloud_cover"] = None
        if i % 7 == 0:
            props["s2:tile"] = f"T{i:02d}ABC" if collection == "sentinel-2-l2a" else None
        item_id = f"{collection[:2].upper()}_{i:04d}"
        out.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
                "id": item_id,
                "collection": collection,
                "bbox": [w, s, e, nn],
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[w, s], [e, s], [e, nn], [w, nn], [w, s]]],
                },
                "properties": {k: v for k, v in props.items() if v is not None},
                "assets": {
                    "visual": {
                        "href": f"https://data.example.org/{collection}/{item_id}/TCI.tif",
                        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                        "roles": ["visual"],
                        "title": "True colour",
                    },
                    "thumbnail": {"href": f"https://data.example.org/{collection}/{item_id}/preview.jpg"},
                },
                "links": [{"rel": "self", "href": f"https://example.org/{item_id}.json"}],
            }
        )
    return out


ITEMS = make_items()


@contextlib.contextmanager
def serving(uri: str, *args: str) -> Iterator[str]:
    """``zarr-meta serve uri`` in a subprocess on 127.0.0.1; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sedonadb_zarr_meta",
            "serve",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=cap_memory,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stdout.read().decode()}")
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not start")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("serve") / "catalogue.zarr"
    return write_meta(ITEMS, path, chunk_size=16, sort=True, progress=False)


@pytest.fixture(scope="module")
def api(store: str) -> Iterator[str]:
    with serving(store) as url:
        yield url


@pytest.fixture(scope="module")
def sql(store: str):
    import sedonadb

    con = register(sedonadb.connect())
    # Results come in the group's order (by position) unless a search sorts them.
    table = f"""sd_read_zarr_meta('{store}', '{{"row_number": "_row"}}')"""

    def ids(where: str = "TRUE", order: str = "_row") -> list[str]:
        rows = con.sql(f"SELECT id FROM {table} WHERE {where} ORDER BY {order}").to_arrow_table()
        return rows.column("id").to_pylist()

    return ids


def _box(w: float, s: float, e: float, n: float) -> str:
    return f"ST_SetSRID(ST_GeomFromText('POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))'), 4326)"


SEARCHES = {
    "bbox": (
        {"bbox": [0, 40, 12, 50]},
        f"ST_Intersects(geometry, {_box(0, 40, 12, 50)})",
        "_row",
    ),
    "datetime": (
        {"datetime": "2024-02-01T00:00:00Z/2024-02-29T23:59:59Z"},
        "datetime >= '2024-02-01T00:00:00' AND datetime <= '2024-02-29T23:59:59'",
        "_row",
    ),
    "bbox-month": (
        {"bbox": [-5, 40, 20, 55], "datetime": "2024-01-01T00:00:00Z/2024-01-31T23:59:59Z"},
        f"ST_Intersects(geometry, {_box(-5, 40, 20, 55)}) AND datetime >= '2024-01-01' "
        "AND datetime <= '2024-01-31T23:59:59'",
        "_row",
    ),
    "collections": ({"collections": ["landsat-c2-l2"]}, "collection = 'landsat-c2-l2'", "_row"),
    "ids": ({"ids": ["SE_0001", "LA_0003", "nope"]}, "id IN ('SE_0001', 'LA_0003')", "_row"),
    "cql2-text": (
        {
            "filter": "\"eo:cloud_cover\" < 30 AND platform IN ('sentinel-2a', 'landsat-9')",
            "filter_lang": "cql2-text",
        },
        "\"eo:cloud_cover\" < 30 AND platform IN ('sentinel-2a', 'landsat-9')",
        "_row",
    ),
    "cql2-json": (
        {
            "filter": {
                "op": "and",
                "args": [
                    {"op": ">=", "args": [{"property": "properties.gsd"}, 30]},
                    {
                        "op": "s_intersects",
                        "args": [
                            {"property": "geometry"},
                            {
                                "type": "Polygon",
                                "coordinates": [[[0, 40], [15, 40], [15, 60], [0, 60], [0, 40]]],
                            },
                        ],
                    },
                ],
            },
            "filter_lang": "cql2-json",
        },
        f"gsd >= 30 AND ST_Intersects(geometry, {_box(0, 40, 15, 60)})",
        "_row",
    ),
    "cql2-temporal-like": (
        {
            "filter": "T_AFTER(datetime, TIMESTAMP('2024-03-01T00:00:00Z')) AND id LIKE 'SE%'",
            "filter_lang": "cql2-text",
        },
        "datetime > '2024-03-01T00:00:00' AND id LIKE 'SE%'",
        "_row",
    ),
    "cql2-array-casei": (
        {"filter": "A_CONTAINS(instruments, ('tirs')) AND CASEI(platform) = CASEI('LANDSAT-8')"},
        "collection = 'landsat-c2-l2' AND platform = 'landsat-8'",
        "_row",
    ),
    "sortby": (
        {
            "sortby": [{"field": "properties.eo:cloud_cover", "direction": "desc"}],
            "collections": ["sentinel-2-l2a"],
        },
        "collection = 'sentinel-2-l2a'",
        '"eo:cloud_cover" DESC NULLS LAST, _row',
    ),
    "sortby-datetime": ({"sortby": "+datetime"}, "TRUE", "datetime ASC NULLS LAST, _row"),
}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_searches_equal_the_same_sql(api, sql, name, method):
    params, where, order = SEARCHES[name]
    client = pystac_client.Client.open(api)
    search = client.search(method=method, limit=7, **params)
    got = [item.id for item in search.items()]
    expected = sql(where, order)
    assert got == expected
    assert len(expected) > 0 or name == "none"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_max_items_across_pages(api, sql, method):
    client = pystac_client.Client.open(api)
    pages = list(client.search(method=method, limit=10, max_items=25, collections=["sentinel-2-l2a"]).pages())
    assert [len(p.items) for p in pages] == [10, 10, 5]
    got = [i.id for p in pages for i in p.items]
    assert got == sql("collection = 'sentinel-2-l2a'")[:25]
    everything = [i.id for i in client.search(method=method, limit=13).items()]
    assert everything == sql() and len(everything) == len(ITEMS)


def _without_links(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "links"}


def test_ingested_items_come_back_equal_apart_from_links(api):
    client = pystac_client.Client.open(api)
    served = {i["id"]: i for i in client.search(limit=50).items_as_dicts()}
    assert set(served) == {i["id"] for i in ITEMS}
    for source in ITEMS:
        assert _without_links(served[source["id"]]) == _without_links(source)
    one = ITEMS[5]
    status, item = request(f"{api}/collections/{one['collection']}/items/{one['id']}")
    assert status == 200 and _without_links(item) == _without_links(one)
    rels = {link["rel"]: link["href"] for link in item["links"]}
    assert rels["self"] == f"{api}/collections/{one['collection']}/items/{one['id']}"
    assert rels["collection"] == rels["parent"] == f"{api}/collections/{one['collection']}"
    assert rels["root"] == f"{api}/"


def test_fields_include_and_exclude(api):
    client = pystac_client.Client.open(api)
    for method in ("GET", "POST"):
        got = list(
            client.search(
                method=method, ids=["SE_0001"], fields=["id", "properties.eo:cloud_cover", "-links"]
            ).items_as_dicts()
        )
        assert len(got) == 1
        assert got[0]["properties"] == {"eo:cloud_cover": ITEMS[1]["properties"]["eo:cloud_cover"]}
        assert "geometry" not in got[0] and "assets" not in got[0] and "links" not in got[0]
        got = list(
            client.search(method=method, ids=["SE_0001"], fields=["-assets", "-geometry"]).items_as_dicts()
        )
        assert "assets" not in got[0] and "geometry" not in got[0] and got[0]["properties"]["gsd"] == 10


def test_collections_landing_conformance_and_queryables(api, sql):
    client = pystac_client.Client.open(api)
    assert client.conforms_to("ITEM_SEARCH") and client.conforms_to("FILTER") and client.conforms_to("SORT")
    collections = {c.id: c for c in client.get_collections()}
    assert sorted(collections) == ["landsat-c2-l2", "sentinel-2-l2a"]
    s2 = [i for i in ITEMS if i["collection"] == "sentinel-2-l2a"]
    box = collections["sentinel-2-l2a"].extent.spatial.bboxes[0]
    assert box == [
        min(i["bbox"][0] for i in s2),
        min(i["bbox"][1] for i in s2),
        max(i["bbox"][2] for i in s2),
        max(i["bbox"][3] for i in s2),
    ]
    interval = collections["sentinel-2-l2a"].extent.temporal.intervals[0]
    times = sorted(i["properties"]["datetime"] for i in s2)
    assert [t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for t in interval] == [times[0], times[-1]]
    status, page = request(f"{api}/collections/landsat-c2-l2/items?limit=5")
    assert status == 200 and [f["id"] for f in page["features"]] == sql("collection = 'landsat-c2-l2'")[:5]
    assert any(link["rel"] == "next" for link in page["links"])
    status, q = request(f"{api}/queryables")
    assert status == 200
    assert q["properties"]["eo:cloud_cover"]["type"] == "number"
    assert q["properties"]["gsd"]["type"] == "integer"
    assert q["properties"]["datetime"]["format"] == "date-time"
    status, _ = request(f"{api}/collections/landsat-c2-l2/queryables")
    assert status == 200
    status, openapi = request(f"{api}/api")
    assert status == 200 and "/search" in openapi["paths"]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/search?bbox=1,2,3", None, 400, "bbox"),
        ("/search?bbox=10,60,20,50", None, 400, "bbox"),
        ("/search?datetime=yesterday", None, 400, "datetime"),
        ("/search?limit=0", None, 400, "limit"),
        ("/search?limit=-1", None, 400, "limit"),
        ("/search?filter=platform%20%3D%3D%3D%201", None, 400, "CQL2"),
        ("/search?sortby=geometry", None, 400, "sort"),
        (
            "/search",
            {
                "filter": {
                    "op": "<",
                    "args": [{"property": "platform"}, {"timestamp": "2024-01-01T00:00:00Z"}],
                }
            },
            400,
            "filter",
        ),
        ("/search?token=garbage", None, 400, "token"),
        ("/collections/nosuch", None, 404, "nosuch"),
        ("/collections/nosuch/items", None, 404, "nosuch"),
        ("/collections/landsat-c2-l2/items/nosuch", None, 404, "nosuch"),
    ],
)
def test_errors_are_json_with_the_right_status(api, path, body, status, words):
    got, answer = request(api + path, body)
    assert got == status
    assert words.lower() in json.dumps(answer).lower()


def test_unknown_properties_are_null_in_every_item(api, sql):
    client = pystac_client.Client.open(api)
    for method in ("GET", "POST"):
        assert list(client.search(method=method, filter="nosuch = 1").items()) == []
        got = [i.id for i in client.search(method=method, filter="nosuch IS NULL AND gsd = 30").items()]
        assert got == sql("gsd = 30")
    between = {"op": "between", "args": [{"property": "eo:cloud_cover"}, [0, 50]]}
    status, page = request(api + "/search", {"filter": between, "limit": 100})
    assert status == 200 and [f["id"] for f in page["features"]] == sql('"eo:cloud_cover" BETWEEN 0 AND 50')


def test_collection_documents_in_the_store_are_served(tmp_path):
    import zarr

    path = tmp_path / "documented.zarr"
    uri = write_meta(ITEMS[:30], path, chunk_size=16, progress=False)
    document = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": "sentinel-2-l2a",
        "title": "Sentinel-2 Level-2A",
        "description": "Bottom-of-atmosphere reflectance",
        "license": "proprietary",
        "keywords": ["sentinel", "copernicus"],
        "links": [
            {
                "rel": "license",
                "href": "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice",
            }
        ],
    }
    zarr.open_group(str(path), mode="a")["meta"].attrs["zarr_meta:collections"] = [document]
    with serving(uri) as url:
        status, got = request(f"{url}/collections/sentinel-2-l2a")
        assert status == 200
        for key in ("title", "description", "license", "keywords", "stac_version"):
            assert got[key] == document[key]
        s2 = [i for i in ITEMS[:30] if i["collection"] == "sentinel-2-l2a"]
        assert got["extent"]["spatial"]["bbox"][0][0] == min(i["bbox"][0] for i in s2)
        rels = [link["rel"] for link in got["links"]]
        assert rels.count("license") == 1 and rels.count("self") == 1 and "items" in rels
        status, other = request(f"{url}/collections/landsat-c2-l2")
        assert status == 200 and other["license"] == "other"


def test_create_app_is_the_same_application(store):
    import sedonadb_zarr_meta

    app = sedonadb_zarr_meta.create_app(store, title="Test catalogue")
    paths = set(app.openapi()["paths"])
    assert {"/search", "/collections/{collection_id}/items/{item_id}", "/queryables"} <= paths
    assert app.title == "Test catalogue"
    with pytest.raises(FileNotFoundError):
        sedonadb_zarr_meta.create_app(store + "-missing")


def test_limits_are_capped(api):
    status, page = request(api + "/search?limit=100000")
    assert status == 200 and len(page["features"]) == len(ITEMS)


def test_large_bodies_are_refused(api):
    import http.client

    # Refused from the declared length, before the body is read.
    host, port = api.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/search")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders()
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    assert response.status == 413 and "bytes" in answer["description"]


def test_deep_filters_are_refused(api):
    deep: Any = {"op": "=", "args": [{"property": "gsd"}, 10]}
    for _ in range(200):
        deep = {"op": "not", "args": [deep]}
    status, answer = request(api + "/search", {"filter": deep})
    assert status == 400 and "nested" in answer["description"]


def test_a_store_on_s3(s3, store, sql, tmp_path):
    opts = s3_options(s3)
    uri = write_meta(
        ITEMS, f"s3://{BUCKET}/serve.zarr", chunk_size=16, sort=True, storage_options=opts, progress=False
    )
    args = [f"--storage-option={k}={v}" for k, v in opts.items()]
    with serving(uri, *args) as url:
        client = pystac_client.Client.open(url)
        got = [i.id for i in client.search(bbox=[0, 40, 12, 50], limit=5).items()]
        assert got == sql(f"ST_Intersects(geometry, {_box(0, 40, 12, 50)})")
        status, landing = request(url + "/")
        assert status == 200 and opts["aws_secret_access_key"] not in json.dumps(landing)
        status, answer = request(url + "/search?filter=platform%3D%3D%3D1")
        assert status == 400 and opts["aws_secret_access_key"] not in json.dumps(answer)


def test_icechunk_pages_keep_their_snapshot_while_commits_land(tmp_path):
    pytest.importorskip("icechunk")
    path = tmp_path / "repo.icechunk"
    write_meta(ITEMS[:40], path, icechunk=True, chunk_size=16, message="first", progress=False)
    with serving(str(path), "--option", "branch=main") as url:
        status, page = request(f"{url}/search?limit=10")
        assert status == 200
        seen = [f["id"] for f in page["features"]]
        # A commit lands while the client pages: the pages that follow keep page 1's snapshot.
        write_meta(ITEMS[40:], path, icechunk=True, chunk_size=16, mode="a", message="more", progress=False)
        status, body = request(url + "/search", {"limit": 10})
        post_first = [f["id"] for f in body["features"]]
        while True:
            link = next((x for x in page["links"] if x["rel"] == "next"), None)
            if link is None:
                break
            status, page = request(link["href"])
            assert status == 200
            seen += [f["id"] for f in page["features"]]
        assert seen == [i["id"] for i in ITEMS[:40]]
        # A new search sees the commit, GET and POST alike.
        client = pystac_client.Client.open(url)
        later = [i.id for i in client.search(limit=25).items()]
        assert later == [i["id"] for i in ITEMS]
        assert post_first == later[:10]
        for bad in ("NOSUCHSNAPSHOT0000", "K7STK9Y0B21DHRZ3K19A"):
            status, answer = request(f"{url}/search?limit=10&token=" + _token_with_snapshot(bad))
            assert status == 400 and "snapshot" in answer["description"]


def _token_with_snapshot(snapshot: str) -> str:
    import base64

    body = {"k": ["zarr_meta:row"], "v": [9], "i": "LA_0009", "s": snapshot}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def test_paging_a_plain_store_follows_appends_and_refuses_a_rewrite(tmp_path):
    path = tmp_path / "plain.zarr"
    write_meta(ITEMS[:30], path, chunk_size=16, progress=False)
    with serving(str(path)) as url:
        status, page = request(f"{url}/search?limit=12")
        assert status == 200 and [f["id"] for f in page["features"]] == [i["id"] for i in ITEMS[:12]]
        # Items appended while a client pages come after the ones it has seen.
        write_meta(ITEMS[30:50], path, chunk_size=16, mode="a", progress=False)
        seen = [f["id"] for f in page["features"]]
        link = next(x for x in page["links"] if x["rel"] == "next")
        while link is not None:
            status, page = request(link["href"])
            assert status == 200
            seen += [f["id"] for f in page["features"]]
            link = next((x for x in page["links"] if x["rel"] == "next"), None)
        assert seen == [i["id"] for i in ITEMS[:50]]
        # A rewrite moves items to other positions: a page token from before it is refused,
        # never answered with a shifted page.
        status, page = request(f"{url}/search?limit=12")
        link = next(x for x in page["links"] if x["rel"] == "next")
        write_meta(list(reversed(ITEMS[:50])), path, chunk_size=16, mode="w", progress=False)
        status, answer = request(link["href"])
        assert status == 400 and "rewritten" in answer["description"], answer
        status, page = request(f"{url}/search?limit=12")
        assert [f["id"] for f in page["features"]] == [i["id"] for i in reversed(ITEMS[38:50])]
