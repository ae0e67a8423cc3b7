//! RFC 3339 timestamps as Hubble prints them (`2021-10-04T14:28:38.735173594Z`), converted to and
//! from nanoseconds since the Unix epoch without going through a calendar library.

/// Parses an RFC 3339 timestamp (`Z` or a numeric offset, 0 to 9 fraction digits) into
/// nanoseconds since the Unix epoch. Returns `None` for anything else.
pub fn parse_rfc3339_nanos(s: &[u8]) -> Option<i64> {
    // Fixed prefix: YYYY-MM-DDTHH:MM:SS
    if s.len() < 20 {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v: i64 = 0;
        for &c in &s[range] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't' | b' ') || s[13] != b':' {
        return None;
    }
    if s[16] != b':' {
        return None;
    }
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    let hour = digits(11..13)?;
    let minute = digits(14..16)?;
    let second = digits(17..19)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Leap seconds (60) are accepted and folded into the next second, as Go does.
    if second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n.min(9)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match s.get(i)? {
        b'Z' | b'z' if i + 1 == s.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == s.len() && s[i + 3] == b':' => {
            let h = digits(i + 1..i + 3)?;
            let m = digits(i + 4..i + 6)?;
            let off = h * 3600 + m * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 UTC with exactly nine fraction digits,
/// the form the analysis contract prescribes.
pub fn format_rfc3339_nanos(nanos: i64) -> String {
    let mut out = String::with_capacity(30);
    write_rfc3339_nanos(&mut out, nanos);
    out
}

/// Appends the RFC 3339 form of `nanos` (see [`format_rfc3339_nanos`]) to `out`.
pub fn write_rfc3339_nanos(out: &mut String, nanos: i64) {
    out.push_str(std::str::from_utf8(&rfc3339_nanos_bytes(nanos)).expect("ASCII digits and separators"));
}

/// The RFC 3339 form of `nanos` (see [`format_rfc3339_nanos`]), thirty bytes: reports print
/// one timestamp per call and one per request, and the formatting machinery had cost more than
/// the rest of a call's JSON.
pub fn rfc3339_nanos_bytes(nanos: i64) -> [u8; 30] {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // i64 nanoseconds span the years 1677 to 2262: always four digits.
    debug_assert!((1000..=9999).contains(&y));
    let mut buf = [0u8; 30];
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for k in (at..at + width).rev() {
            buf[k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y, 4);
    put(5, m, 2);
    put(8, d, 2);
    put(11, sod / 3600, 2);
    put(14, (sod / 60) % 60, 2);
    put(17, sod % 60, 2);
    put(20, frac, 9);
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (29, b'Z')] {
        buf[at] = separator;
    }
    buf
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hubble_forms() {
        let t = parse_rfc3339_nanos(b"2021-10-04T14:28:38.735173594Z").unwrap();
        assert_eq!(t, 1_633_357_718_735_173_594);
        let t6 = parse_rfc3339_nanos(b"2021-11-10T10:41:26.095357Z").unwrap();
        assert_eq!(t6 % 1_000_000_000, 95_357_000);
        let t0 = parse_rfc3339_nanos(b"1970-01-01T00:00:00Z").unwrap();
        assert_eq!(t0, 0);
        let off = parse_rfc3339_nanos(b"1970-01-01T01:00:00+01:00").unwrap();
        assert_eq!(off, 0);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b"yesterday"[..],
            b"2021-13-04T14:28:38Z",
            b"2021-10-04T14:28:38",
            b"2021-10-04T14:28:38.Z",
            b"2021-10-04T14:28:38.1Zx",
            b"2021-1a-04T14:28:38Z",
        ] {
            assert_eq!(parse_rfc3339_nanos(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn round_trips() {
        for s in ["2026-11-25T10:00:00.123456789Z", "1999-12-31T23:59:59.000000001Z"] {
            let n = parse_rfc3339_nanos(s.as_bytes()).unwrap();
            assert_eq!(format_rfc3339_nanos(n), s);
        }
    }

    #[test]
    fn formats_like_the_general_formatter() {
        let general = |nanos: i64| {
            let secs = nanos.div_euclid(1_000_000_000);
            let frac = nanos.rem_euclid(1_000_000_000);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z", sod / 3600, (sod / 60) % 60, sod % 60)
        };
        let samples = [0, -1, 1, 999_999_999, 1_764_064_800_009_405_547, i64::MAX, i64::MIN];
        for nanos in samples.into_iter().chain((0..2000).map(|k| k * 4_611_686_018_427_387 - 4_611_686_018_427_387_000))
        {
            assert_eq!(format_rfc3339_nanos(nanos), general(nanos), "{nanos}");
        }
    }
}
