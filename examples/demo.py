"""Demo: a generated catalogue of ~100k STAC-like items in a Zarr store,
queried with spatial SQL in SedonaDB — a spatial filter and a spatial join
against a GeoParquet file of regions.

Run with ``bash ci/demo.sh`` (sets everything up) or, in a prepared
environment, ``python examples/demo.py [--rows N] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import geopandas
import numpy as np
import pyarrow as pa
import sedonadb
import shapely
from sedonadb_zarr_meta import ZarrMetaSpec, register, write_meta

COLLECTIONS = np.array(["sentinel-2-l2a", "landsat-c2-l2", "naip"])


def make_catalogue(path: Path, n: int, seed: int = 42) -> str:
    """Write n STAC-like items as a `meta` group with per-chunk statistics."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-180, 175, n)
    y = rng.uniform(-60, 75, n)
    size = rng.uniform(0.5, 3.0, n)
    bbox = shapely.to_wkb(shapely.box(x, y, np.minimum(x + size, 180), np.minimum(y + size, 85)))
    date = np.datetime64("2024-01-01", "ms") + rng.integers(0, 365 * 86_400_000, n).astype("timedelta64[ms]")
    items = pa.table(
        {
            "id": [f"item-{i:07d}" for i in range(n)],
            "collection": COLLECTIONS[rng.integers(0, 3, n)],
            "date": date,
            "cloud_cover": rng.uniform(0, 100, n).astype("float32"),
            "bbox": pa.array(list(bbox), pa.binary()),
        }
    )
    # Spatially sorted chunks with statistics: selective queries skip chunks.
    return write_meta(items, path, chunk_size=10_000, sort=True)


def make_regions(path: Path) -> Path:
    """A GeoParquet file of a few rectangular regions (geopandas)."""
    regions = geopandas.GeoDataFrame(
        {"region": ["Europe", "Africa", "South America", "North America", "Asia"]},
        geometry=[
            shapely.box(-10, 35, 40, 70),
            shapely.box(-18, -35, 50, 35),
            shapely.box(-82, -55, -35, 12),
            shapely.box(-168, 15, -52, 72),
            shapely.box(40, 5, 150, 75),
        ],
        crs="OGC:CRS84",
    )
    regions.to_parquet(path)
    return path


def show(title: str, df) -> pa.Table:
    start = time.perf_counter()
    table = pa.table(df)
    elapsed = time.perf_counter() - start
    print(f"\n--- {title} ({table.num_rows} rows, {elapsed * 1000:.0f} ms)")
    print(table.to_pandas().to_string(index=False, max_rows=20))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="zarr-meta-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)

    store = make_catalogue(workdir / "catalogue.zarr", args.rows)
    regions = make_regions(workdir / "regions.parquet")
    print(f"catalogue: {store} ({args.rows} items)\nregions:   {regions}")

    con = sedonadb.connect()
    register(con)
    items = con.read_format(ZarrMetaSpec(), store)
    print("\nschema:")
    for field in items.schema.names:
        print(f"  {field}: {str(items.schema.field(field).type).removeprefix('SedonaType ')}")
    items.to_view("items")
    con.read_parquet(str(regions)).to_view("regions")

    show(
        "items over the Alps in July, cloud cover < 20% (SQL table function)",
        con.sql(
            f"""
            SELECT id, collection, date, round(cloud_cover, 1) AS cloud_cover
            FROM sd_read_zarr_meta('{store}') AS m
            WHERE ST_Intersects(m.bbox, ST_SetSRID(ST_GeomFromText(
                    'POLYGON((5 44, 16 44, 16 48, 5 48, 5 44))'), 4326))
              AND date >= TIMESTAMP '2024-07-01' AND date < TIMESTAMP '2024-08-01'
              AND cloud_cover < 20
            ORDER BY date
            """
        ),
    )
    show(
        "items per region and collection (spatial join with GeoParquet)",
        con.sql(
            """
            SELECT r.region, i.collection, count(*) AS items,
                   round(avg(i.cloud_cover), 1) AS mean_cloud_cover
            FROM items i JOIN regions r ON ST_Intersects(i.bbox, r.geometry)
            GROUP BY r.region, i.collection
            ORDER BY r.region, i.collection
            """
        ),
    )


if __name__ == "__main__":
    main()
