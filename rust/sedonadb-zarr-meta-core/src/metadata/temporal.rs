//! NumPy `datetime64`/`timedelta64` (any unit, any `scale_factor`) to Arrow
//! timestamps and durations.
//!
//! Arrow has only s/ms/us/ns, so units coarser than a second are converted to
//! seconds (calendar-aware for years and months) and units finer than a
//! nanosecond are truncated to nanoseconds. NaT (`i64::MIN`) becomes null.

use arrow_schema::TimeUnit;

/// NumPy's "not a time" sentinel.
pub const NAT: i64 = i64::MIN;

/// A NumPy time unit as named in Zarr metadata (`"ms"`, `"D"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumpyUnit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
    Picosecond,
    Femtosecond,
    Attosecond,
}

impl NumpyUnit {
    /// Parse the unit spelling used by NumPy and Zarr (`generic` is rejected).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Y" => Self::Year,
            "M" => Self::Month,
            "W" => Self::Week,
            "D" => Self::Day,
            "h" => Self::Hour,
            "m" => Self::Minute,
            "s" => Self::Second,
            "ms" => Self::Millisecond,
            "us" | "μs" => Self::Microsecond,
            "ns" => Self::Nanosecond,
            "ps" => Self::Picosecond,
            "fs" => Self::Femtosecond,
            "as" => Self::Attosecond,
            _ => return None,
        })
    }
}

/// A stored time value does not fit Arrow's 64-bit range after conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// How stored integers become Arrow values of `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeConversion {
    pub unit: TimeUnit,
    kind: Scale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// value * factor
    Mul(i64),
    /// value * factor / divisor (sub-nanosecond units)
    MulDiv(i64, i64),
    /// value * factor calendar months since 1970-01
    Months(i64),
}

impl TimeConversion {
    /// Conversion for `unit` with `scale_factor`; `calendar` is false for
    /// durations, where years and months have no fixed length.
    pub fn new(unit: NumpyUnit, scale_factor: i64, calendar: bool) -> Option<Self> {
        use NumpyUnit::*;
        let (unit, kind) = match unit {
            Second => (TimeUnit::Second, Scale::Mul(scale_factor)),
            Millisecond => (TimeUnit::Millisecond, Scale::Mul(scale_factor)),
            Microsecond => (TimeUnit::Microsecond, Scale::Mul(scale_factor)),
            Nanosecond => (TimeUnit::Nanosecond, Scale::Mul(scale_factor)),
            Minute => (TimeUnit::Second, Scale::Mul(scale_factor.checked_mul(60)?)),
            Hour => (TimeUnit::Second, Scale::Mul(scale_factor.checked_mul(3_600)?)),
            Day => (TimeUnit::Second, Scale::Mul(scale_factor.checked_mul(86_400)?)),
            Week => (TimeUnit::Second, Scale::Mul(scale_factor.checked_mul(604_800)?)),
            Picosecond => (TimeUnit::Nanosecond, Scale::MulDiv(scale_factor, 1_000)),
            Femtosecond => (TimeUnit::Nanosecond, Scale::MulDiv(scale_factor, 1_000_000)),
            Attosecond => (TimeUnit::Nanosecond, Scale::MulDiv(scale_factor, 1_000_000_000)),
            Month if calendar => (TimeUnit::Second, Scale::Months(scale_factor)),
            Year if calendar => (TimeUnit::Second, Scale::Months(scale_factor.checked_mul(12)?)),
            Month | Year => return None,
        };
        Some(Self { unit, kind })
    }

    /// Convert one stored value; `Ok(None)` for NaT.
    #[inline]
    pub fn convert(&self, v: i64) -> Result<Option<i64>, Overflow> {
        if v == NAT {
            return Ok(None);
        }
        let out = match self.kind {
            Scale::Mul(1) => Some(v),
            Scale::Mul(f) => v.checked_mul(f),
            Scale::MulDiv(f, d) => v.checked_mul(f).map(|x| x.div_euclid(d)),
            Scale::Months(f) => v.checked_mul(f).and_then(months_to_seconds),
        };
        out.map(Some).ok_or(Overflow)
    }

    /// True when stored values are already Arrow values (a plain copy).
    pub fn is_identity(&self) -> bool {
        self.kind == Scale::Mul(1)
    }
}

/// Seconds since the epoch of the first instant of the month `months` after 1970-01.
fn months_to_seconds(months: i64) -> Option<i64> {
    let year = 1970i64.checked_add(months.div_euclid(12))?;
    let month = months.rem_euclid(12) + 1;
    days_from_civil(year, month, 1).checked_mul(86_400)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_scale_factors() {
        let ms = TimeConversion::new(NumpyUnit::Millisecond, 1, true).unwrap();
        assert_eq!(ms.unit, TimeUnit::Millisecond);
        assert_eq!(ms.convert(5), Ok(Some(5)));
        assert_eq!(ms.convert(NAT), Ok(None));
        let ten_ms = TimeConversion::new(NumpyUnit::Millisecond, 10, true).unwrap();
        assert_eq!(ten_ms.convert(5), Ok(Some(50)));
        let day = TimeConversion::new(NumpyUnit::Day, 1, true).unwrap();
        assert_eq!(day.unit, TimeUnit::Second);
        assert_eq!(day.convert(1), Ok(Some(86_400)));
        let ps = TimeConversion::new(NumpyUnit::Picosecond, 1, true).unwrap();
        assert_eq!(ps.convert(2_500), Ok(Some(2)));
        assert_eq!(ps.convert(-1), Ok(Some(-1)));
        assert_eq!(day.convert(i64::MAX / 2), Err(Overflow));
    }

    #[test]
    fn calendar_units() {
        let month = TimeConversion::new(NumpyUnit::Month, 1, true).unwrap();
        // 2024-03-01 is 650 months after 1970-01.
        assert_eq!(month.convert(650), Ok(Some(1_709_251_200)));
        assert_eq!(month.convert(-1), Ok(Some(-31 * 86_400)));
        let year = TimeConversion::new(NumpyUnit::Year, 1, true).unwrap();
        assert_eq!(year.convert(30), Ok(Some(946_684_800))); // 2000-01-01
        assert!(TimeConversion::new(NumpyUnit::Year, 1, false).is_none());
    }
}
