//! Bounding boxes of WKB geometries (for chunk pruning), via geo-traits.

use geo_traits::{
    CoordTrait, GeometryCollectionTrait, GeometryTrait, GeometryType, LineStringTrait, MultiLineStringTrait,
    MultiPointTrait, MultiPolygonTrait, PointTrait, PolygonTrait,
};

/// `[xmin, ymin, xmax, ymax]`.
pub type BBox = [f64; 4];

#[derive(Default)]
struct Acc {
    b: Option<BBox>,
    unknown: bool,
}

impl Acc {
    fn add(&mut self, x: f64, y: f64) {
        if x.is_nan() || y.is_nan() {
            return;
        }
        self.b = Some(match self.b {
            None => [x, y, x, y],
            Some([a, b, c, d]) => [a.min(x), b.min(y), c.max(x), d.max(y)],
        });
    }
    fn coord(&mut self, c: &impl CoordTrait<T = f64>) {
        self.add(c.x(), c.y());
    }
    fn line(&mut self, l: &impl LineStringTrait<T = f64>) {
        for c in l.coords() {
            self.coord(&c);
        }
    }
    fn polygon(&mut self, p: &impl PolygonTrait<T = f64>) {
        // Interior rings lie inside the exterior one.
        if let Some(ring) = p.exterior() {
            self.line(&ring);
        }
    }
    fn geometry(&mut self, g: &impl GeometryTrait<T = f64>) {
        match g.as_type() {
            GeometryType::Point(p) => {
                if let Some(c) = p.coord() {
                    self.coord(&c);
                }
            }
            GeometryType::LineString(l) => self.line(l),
            GeometryType::Polygon(p) => self.polygon(p),
            GeometryType::MultiPoint(mp) => {
                for p in mp.points() {
                    if let Some(c) = p.coord() {
                        self.coord(&c);
                    }
                }
            }
            GeometryType::MultiLineString(ml) => {
                for l in ml.line_strings() {
                    self.line(&l);
                }
            }
            GeometryType::MultiPolygon(mp) => {
                for p in mp.polygons() {
                    self.polygon(&p);
                }
            }
            GeometryType::GeometryCollection(gc) => {
                for g in gc.geometries() {
                    self.geometry(&g);
                }
            }
            // WKB never encodes these; be conservative if one appears.
            _ => self.unknown = true,
        }
    }
}

/// Outcome of computing a geometry's extent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extent {
    /// The geometry has coordinates within this box.
    Box(BBox),
    /// The geometry is empty: it intersects nothing.
    Empty,
    /// The extent cannot be determined (treat as "may match anything").
    Unknown,
}

/// The extent of one WKB geometry.
pub fn wkb_extent(buf: &[u8]) -> Extent {
    let Ok(g) = wkb::reader::read_wkb(buf) else {
        return Extent::Unknown;
    };
    let mut acc = Acc::default();
    acc.geometry(&g);
    match (acc.unknown, acc.b) {
        (true, _) => Extent::Unknown,
        (false, Some(b)) => Extent::Box(b),
        (false, None) => Extent::Empty,
    }
}

/// Whether two boxes intersect (touching counts).
pub fn intersects(a: &BBox, b: &BBox) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents() {
        let mut poly = Vec::new();
        crate::geometry::wkt_to_wkb("POLYGON((0 0,2 0,2 3,0 3,0 0),(1 1,1.5 1,1.5 2,1 1))", &mut poly)
            .unwrap();
        assert_eq!(wkb_extent(&poly), Extent::Box([0.0, 0.0, 2.0, 3.0]));
        let mut gc = Vec::new();
        crate::geometry::wkt_to_wkb("GEOMETRYCOLLECTION(POINT(-1 5),LINESTRING(3 3,4 -2))", &mut gc).unwrap();
        assert_eq!(wkb_extent(&gc), Extent::Box([-1.0, -2.0, 4.0, 5.0]));
        let mut empty = Vec::new();
        crate::geometry::wkt_to_wkb("POLYGON EMPTY", &mut empty).unwrap();
        assert_eq!(wkb_extent(&empty), Extent::Empty);
        assert_eq!(wkb_extent(b"nope"), Extent::Unknown);
        assert!(intersects(&[0.0, 0.0, 1.0, 1.0], &[1.0, 1.0, 2.0, 2.0]));
        assert!(!intersects(&[0.0, 0.0, 1.0, 1.0], &[1.5, 0.0, 2.0, 2.0]));
    }
}
