//! Bounding boxes of WKB geometries (for chunk and row pruning).

/// `[xmin, ymin, xmax, ymax]`.
pub type BBox = [f64; 4];

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
    match crate::geometry::wkb_check::extent(buf) {
        Ok(Some(b)) => Extent::Box(b),
        Ok(None) => Extent::Empty,
        Err(_) => Extent::Unknown,
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
