//! Strict structural validation of WKB (ISO and EWKB), so a malformed value is
//! reported by this reader with its store, array and row instead of failing
//! later inside a host with a message naming neither.
//!
//! Checked: byte order, known geometry types and dimensions, every count
//! against the bytes that remain (before allocating anything), children of
//! multi-geometries of the right type, linestrings of 0 or ≥ 2 points, rings
//! of 0 or ≥ 4 points that end where they start, nesting at most [`MAX_DEPTH`] deep, and no trailing
//! bytes. Coordinates are not interpreted (NaN is `POINT EMPTY`).

/// Deepest nesting of geometry collections accepted.
pub const MAX_DEPTH: usize = 32;

const NAMES: [&str; 8] = [
    "",
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
];

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// `[xmin, ymin, xmax, ymax]` of the coordinates read so far (NaN ones
    /// skipped), when the walk also computes the extent.
    extent: Option<[f64; 4]>,
    track: bool,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], String> {
        if n > self.remaining() {
            return Err(format!("truncated {what} at byte {}", self.pos));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u32(&mut self, little: bool, what: &str) -> Result<u32, String> {
        let b: [u8; 4] = self.take(4, what)?.try_into().map_err(|_| format!("truncated {what}"))?;
        Ok(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    /// A count of items of at least `item_bytes` bytes each, checked against what remains.
    fn count(&mut self, little: bool, item_bytes: usize, what: &str) -> Result<usize, String> {
        let at = self.pos;
        let n = self.u32(little, what)? as usize;
        if n.saturating_mul(item_bytes) > self.remaining() {
            return Err(format!(
                "{what} {n} at byte {at} exceeds the {} bytes that remain",
                self.remaining()
            ));
        }
        Ok(n)
    }

    fn points(&mut self, little: bool, dims: usize, what: &str) -> Result<usize, String> {
        let n = self.count(little, dims * 8, what)?;
        self.coords(n, little, dims, what)?;
        Ok(n)
    }

    /// Take `n` points of `dims` doubles, adding their x/y to the extent when tracked.
    fn coords(&mut self, n: usize, little: bool, dims: usize, what: &str) -> Result<(), String> {
        let start = self.pos;
        self.take(n * dims * 8, what)?;
        if self.track {
            add_points(&mut self.extent, &self.bytes[start..self.pos], dims * 8, little);
        }
        Ok(())
    }

    /// One geometry; `expected` is the base type a multi-geometry's child must have.
    fn geometry(&mut self, depth: usize, expected: Option<u32>) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("geometry collections nested deeper than {MAX_DEPTH} levels"));
        }
        let at = self.pos;
        let little = match self.take(1, "byte order")?[0] {
            0 => false,
            1 => true,
            other => return Err(format!("byte order {other} at byte {at} (expected 0 or 1)")),
        };
        let code = self.u32(little, "geometry type")?;
        let (z, m, srid) = (code & 0x8000_0000 != 0, code & 0x4000_0000 != 0, code & 0x2000_0000 != 0);
        let iso = code & 0x0FFF_FFFF;
        let (base, iso_dim) = (iso % 1000, iso / 1000);
        if !(1..=7).contains(&base) || iso_dim > 3 || ((z || m) && iso_dim != 0) {
            return Err(format!("unknown geometry type code {code} at byte {at}"));
        }
        if srid {
            self.take(4, "SRID")?;
        }
        let dims = 2 + usize::from(z || iso_dim == 1 || iso_dim == 3) + usize::from(m || iso_dim >= 2);
        if let Some(parent) = expected {
            if base != parent {
                return Err(format!(
                    "a {} holds a {} at byte {at}",
                    NAMES[parent as usize + 3],
                    NAMES[base as usize]
                ));
            }
        }
        match base {
            1 => self.coords(1, little, dims, "point")?,
            2 => {
                if self.points(little, dims, "LineString point count")? == 1 {
                    return Err(format!("LineString at byte {at} has 1 point (needs 0 or at least 2)"));
                }
            }
            3 => {
                let rings = self.count(little, 4, "Polygon ring count")?;
                for _ in 0..rings {
                    let start = self.pos + 4;
                    let n = self.points(little, dims, "ring point count")?;
                    if (1..4).contains(&n) {
                        return Err(format!("Polygon ring at byte {at} has {n} points (needs at least 4)"));
                    }
                    let width = dims * 8;
                    if n > 0 && self.bytes[start..start + width] != self.bytes[self.pos - width..self.pos] {
                        return Err(format!(
                            "Polygon ring at byte {at} is not closed (first and last points differ)"
                        ));
                    }
                }
            }
            _ => {
                let parts = self.count(little, 5, "part count")?;
                let child = match base {
                    4..=6 => Some(base - 3),
                    _ => None,
                };
                for _ in 0..parts {
                    self.geometry(depth + 1, child)?;
                }
            }
        }
        Ok(())
    }
}

/// The shapes most catalogues hold, checked in one step: a little-endian 2-D
/// point, or a little-endian 2-D polygon of one closed ring (footprints and
/// boxes). `None` for anything else, which takes the full walk; the walk
/// accepts exactly what this accepts, with the same extent.
#[inline]
fn simple(bytes: &[u8], track: bool) -> Option<Option<[f64; 4]>> {
    let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    if bytes.first() != Some(&1) {
        return None;
    }
    let coords = match word(1)? {
        1 if bytes.len() == 21 => &bytes[5..],
        3 if word(5)? == 1 => {
            let n = word(9)? as usize;
            if n < 4 || bytes.len() != n.checked_mul(16)?.checked_add(13)? {
                return None;
            }
            let ring = &bytes[13..];
            if ring[..16] != ring[ring.len() - 16..] {
                return None;
            }
            ring
        }
        _ => return None,
    };
    let mut extent = None;
    if track {
        add_points(&mut extent, coords, 16, true);
    }
    Some(extent)
}

/// Grow `extent` by the x/y of each point in `points` (`width` bytes each,
/// x and y first), skipping points with a NaN coordinate (`POINT EMPTY`).
fn add_points(extent: &mut Option<[f64; 4]>, points: &[u8], width: usize, little: bool) {
    let f = |b: &[u8]| {
        let b: [u8; 8] = b.try_into().expect("8 bytes");
        if little {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        }
    };
    for point in points.chunks_exact(width) {
        let (x, y) = (f(&point[..8]), f(&point[8..16]));
        if x.is_nan() || y.is_nan() {
            continue;
        }
        *extent = Some(match *extent {
            None => [x, y, x, y],
            Some([a, b, c, d]) => [a.min(x), b.min(y), c.max(x), d.max(y)],
        });
    }
}

/// Walk `bytes` as exactly one well-formed WKB geometry, returning its extent
/// when `track` (`None` for an empty geometry).
fn walk(bytes: &[u8], track: bool) -> Result<Option<[f64; 4]>, String> {
    if let Some(extent) = simple(bytes, track) {
        return Ok(extent);
    }
    let mut reader = Reader { bytes, pos: 0, extent: None, track };
    reader.geometry(0, None).map_err(|e| format!("invalid WKB: {e}"))?;
    if reader.remaining() != 0 {
        return Err(format!("invalid WKB: {} trailing bytes after the geometry", reader.remaining()));
    }
    Ok(reader.extent)
}

/// Check that `bytes` is exactly one well-formed WKB geometry.
pub fn validate(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, false).map(|_| ())
}

/// The `[xmin, ymin, xmax, ymax]` of the x/y coordinates of one well-formed
/// WKB geometry (NaN coordinates skipped; `None` when it has none), in the
/// same single pass that validates it. Interior rings count too: for a valid
/// polygon they lie inside the exterior one.
pub fn extent(bytes: &[u8]) -> Result<Option<[f64; 4]>, String> {
    walk(bytes, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn u(v: u32) -> [u8; 4] {
        v.to_le_bytes()
    }

    fn point(x: f64, y: f64) -> Vec<u8> {
        le(&[&[1], &u(1), &x.to_le_bytes(), &y.to_le_bytes()])
    }

    /// A closed ring of `n` points (the last repeats the first).
    fn ring(n: u32) -> Vec<u8> {
        let mut out = u(n).to_vec();
        for i in 0..n {
            let x = if i + 1 == n { 0.0 } else { f64::from(i) };
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&(x * 2.0).to_le_bytes());
        }
        out
    }

    #[test]
    fn accepts_valid_geometries() {
        validate(&point(1.0, 2.0)).unwrap();
        validate(&point(f64::NAN, f64::NAN)).unwrap(); // POINT EMPTY
        let polygon = le(&[&[1], &u(3), &u(1), &ring(5)]);
        validate(&polygon).unwrap();
        validate(&le(&[&[1], &u(3), &u(0)])).unwrap(); // POLYGON EMPTY
        let multi = le(&[&[1], &u(6), &u(2), &polygon, &polygon]);
        validate(&multi).unwrap();
        let collection = le(&[&[1], &u(7), &u(2), &point(0.0, 0.0), &multi]);
        validate(&collection).unwrap();
        // Big endian, ISO Z and EWKB Z with SRID.
        let mut be = vec![0u8];
        be.extend_from_slice(&1u32.to_be_bytes());
        be.extend_from_slice(&1f64.to_be_bytes());
        be.extend_from_slice(&2f64.to_be_bytes());
        validate(&be).unwrap();
        validate(&le(&[&[1], &u(1001), &[0; 24]])).unwrap();
        validate(&le(&[&[1], &u(0xA000_0001), &u(4326), &[0; 24]])).unwrap();
    }

    #[test]
    fn extents_in_the_validating_pass() {
        let polygon = le(&[&[1], &u(3), &u(1), &ring(5)]);
        assert_eq!(extent(&polygon).unwrap(), Some([0.0, 0.0, 3.0, 6.0]));
        // NaN coordinates (POINT EMPTY) add nothing; an empty geometry has no extent.
        let collection = le(&[&[1], &u(7), &u(2), &point(f64::NAN, f64::NAN), &point(-1.0, 9.0)]);
        assert_eq!(extent(&collection).unwrap(), Some([-1.0, 9.0, -1.0, 9.0]));
        assert_eq!(extent(&point(f64::NAN, f64::NAN)).unwrap(), None);
        assert_eq!(extent(&le(&[&[1], &u(3), &u(0)])).unwrap(), None);
        // Big endian with Z: only x and y count.
        let mut be = vec![0u8];
        be.extend_from_slice(&1001u32.to_be_bytes());
        for v in [4.0f64, -2.0, 100.0] {
            be.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(extent(&be).unwrap(), Some([4.0, -2.0, 4.0, -2.0]));
        assert!(extent(&le(&[&point(1.0, 2.0), &[0]])).is_err());
    }

    #[test]
    fn the_simple_shapes_agree_with_the_full_walk() {
        let polygon = le(&[&[1], &u(3), &u(1), &ring(5)]);
        let cases = [
            point(1.0, 2.0),
            point(f64::NAN, f64::NAN),
            polygon.clone(),
            le(&[&[1], &u(3), &u(1), &ring(3)]),       // too few points
            le(&[&[1], &u(3), &u(1), &ring(5), &[0]]), // trailing byte
            polygon[..polygon.len() - 1].to_vec(),     // truncated
            le(&[&[1], &u(3), &u(1), &u(4), &[0; 48], &[1; 16]]), // open ring
            le(&[&[1], &u(3), &u(1), &u(0x1000_0001), &[0; 64]]), // count past the end
            le(&[&[1], &u(1), &[0; 17]]),              // point with a trailing byte
        ];
        for bytes in cases {
            let full = {
                let mut reader = Reader { bytes: &bytes, pos: 0, extent: None, track: true };
                reader.geometry(0, None).ok().filter(|_| reader.remaining() == 0).map(|_| reader.extent)
            };
            assert_eq!(extent(&bytes).ok(), full, "{bytes:?}");
            if let Some(fast) = simple(&bytes, true) {
                assert_eq!(Some(fast), full, "{bytes:?}");
            }
        }
        assert!(simple(&polygon, false).is_some());
    }

    #[test]
    fn rejects_each_malformation() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (le(&[&[1], &u(99), &[0; 16]]), "unknown geometry type code 99"),
            (le(&[&[1], &u(4001), &[0; 16]]), "unknown geometry type code"),
            (le(&[&[7], &u(1), &[0; 16]]), "byte order 7"),
            (le(&[&[1], &u(6), &u(1), &point(1.0, 2.0)]), "a MultiPolygon holds a Point"),
            (le(&[&[1], &u(3), &u(1), &ring(2)]), "has 2 points (needs at least 4)"),
            (le(&[&[1], &u(3), &u(1), &u(4), &[0; 48], &[1; 16]]), "not closed"),
            (le(&[&[1], &u(2), &ring(1)]), "has 1 point"),
            (le(&[&[1], &u(2), &u(0x7fff_ffff), &[0; 32]]), "exceeds the 32 bytes that remain"),
            (le(&[&[1], &u(1), &[0; 7]]), "truncated point"),
            (le(&[&point(1.0, 2.0), &[0]]), "1 trailing bytes"),
            (Vec::new(), "truncated byte order"),
        ];
        for (bytes, expected) in cases {
            let e = validate(&bytes).unwrap_err();
            assert!(e.contains(expected), "{e} (expected {expected})");
        }
        let mut deep = Vec::new();
        for _ in 0..40 {
            deep.extend_from_slice(&le(&[&[1], &u(7), &u(1)]));
        }
        deep.extend_from_slice(&point(0.0, 0.0));
        assert!(validate(&deep).unwrap_err().contains("nested deeper"));
    }
}
