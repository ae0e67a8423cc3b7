//! RFC 3339 timestamps as Hubble prints them (`2021-10-04T14:28:38.735173594Z`), converted to and
//! from nanoseconds since the Unix epoch without going through a calendar library.

/// Parses an RFC 3339 timestamp (`Z` or a numeric offset, 0 to 9 fraction digits) into
/// nanoseconds since the Unix epoch. Returns `None` for anything else.
pub fn parse_rfc3339_nanos(s: &[u8]) -> Option<i64> {
    parse_hubble_form(s).or_else(|| parse_any_form(s))
}

/// The general parser behind [`parse_rfc3339_nanos`].
fn parse_any_form(s: &[u8]) -> Option<i64> {
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
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 {
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

/// The form Hubble prints (`2021-10-04T14:28:38.735173594Z`: UTC, nine fraction digits) read at
/// fixed positions, the fraction eight digits at a time. Every line carries one or two
/// timestamps, and the general parser's digit loops had cost about 500 instructions each.
/// Anything else, an out-of-range field included, is left to the general parser (`None`).
#[inline]
fn parse_hubble_form(s: &[u8]) -> Option<i64> {
    let s: &[u8; 30] = s.try_into().ok()?;
    if s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':' || s[19] != b'.' || s[29] != b'Z'
    {
        return None;
    }
    let mut not_digits = 0u8;
    let mut digit = |i: usize| {
        let d = s[i].wrapping_sub(b'0');
        not_digits |= u8::from(d > 9);
        i64::from(d)
    };
    let year = digit(0) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3);
    let month = digit(5) * 10 + digit(6);
    let day = digit(8) * 10 + digit(9);
    let hour = digit(11) * 10 + digit(12);
    let minute = digit(14) * 10 + digit(15);
    let second = digit(17) * 10 + digit(18);
    let last = digit(28);
    let high = eight_digits(u64::from_le_bytes(s[20..28].try_into().expect("8 bytes")))?;
    if not_digits != 0
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let nanos = i64::from(high) * 10 + last;
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// The days in `month` (1 to 12) of `year`: a date past them (February 30) is not a date, not
/// one to roll over into the next month.
#[inline]
fn days_in_month(year: i64, month: i64) -> i64 {
    const DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    DAYS[((month - 1) & 15).min(11) as usize] + i64::from(month == 2 && leap)
}

/// Eight ASCII digits, loaded little-endian (the first digit in the low byte), as a number;
/// `None` if any byte is not a digit. The combining steps are the well-known SWAR reduction:
/// pairs, then quads, then the whole.
#[inline]
fn eight_digits(v: u64) -> Option<u32> {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    // A digit byte is 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    if (v & HIGH_NIBBLES) | ((v.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES) >> 4) != 0x3333_3333_3333_3333 {
        return None;
    }
    let v = v - 0x3030_3030_3030_3030;
    let pairs = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs * 100 + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some(((quads * 10_000 + (quads >> 32)) & 0xFFFF_FFFF) as u32)
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
            // Days past the month's end, in both forms: not rolled over into the next month.
            b"2026-02-30T00:00:00Z",
            b"2026-02-29T00:00:00.000000000Z",
            b"2100-02-29T00:00:00Z",
            b"2026-04-31T12:00:00.000000000Z",
        ] {
            assert_eq!(parse_rfc3339_nanos(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        for good in [&b"2024-02-29T00:00:00Z"[..], b"2000-02-29T00:00:00.000000000Z", b"2026-12-31T23:59:59Z"] {
            assert!(parse_rfc3339_nanos(good).is_some(), "{}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn reads_hubble_form_as_the_general_parser_does() {
        let samples = [0, 1, 999_999_999, 1_633_357_718_735_173_594, 951_782_400_000_000_000, i64::MAX];
        for nanos in samples.into_iter().chain((0..5000).map(|k| k * 1_844_674_407_370_955)) {
            let text = rfc3339_nanos_bytes(nanos);
            assert_eq!(parse_hubble_form(&text), Some(nanos), "{}", String::from_utf8_lossy(&text));
            assert_eq!(parse_any_form(&text), Some(nanos));
        }
        // Every position that must hold a digit, and every separator, spoiled in turn: the fast
        // path declines, and the answer is the general parser's.
        let good = *b"2024-02-29T23:59:60.123456789Z";
        for at in 0..good.len() {
            for bad in [b'/', b':', b'a', b'0' - 1, b'9' + 1, 0xC3, b' '] {
                let mut text = good;
                text[at] = bad;
                if text == good {
                    continue;
                }
                assert_eq!(parse_hubble_form(&text), None, "{}", String::from_utf8_lossy(&text));
                assert_eq!(parse_rfc3339_nanos(&text), parse_any_form(&text));
            }
        }
        // Out-of-range fields, and forms only the general parser reads.
        for text in [
            &b"2024-13-01T00:00:00.000000000Z"[..],
            b"2024-00-01T00:00:00.000000000Z",
            b"2024-01-32T00:00:00.000000000Z",
            b"2024-01-01T24:00:00.000000000Z",
            b"2024-01-01T00:60:00.000000000Z",
            b"2024-01-01T00:00:61.000000000Z",
            b"9999-12-31T23:59:59.999999999Z",
            b"2024-01-01t00:00:00.000000000Z",
            b"2024-01-01T00:00:00.000000000z",
            b"2024-01-01T00:00:00.00000000Z",
            b"2024-01-01T00:00:00.0000000000Z",
        ] {
            assert_eq!(parse_hubble_form(text), None, "{}", String::from_utf8_lossy(text));
        }
        assert_eq!(parse_rfc3339_nanos(b"2024-01-01t00:00:00.000000001z"), Some(1_704_067_200_000_000_001));
        assert_eq!(parse_rfc3339_nanos(b"9999-12-31T23:59:59.999999999Z"), None);
    }

    #[test]
    fn eight_digits_reads_every_digit_in_every_place() {
        for place in 0..8 {
            for d in 0..10u64 {
                let mut text = *b"00000000";
                text[place] = b'0' + d as u8;
                let want = d * 10u64.pow(7 - place as u32);
                assert_eq!(eight_digits(u64::from_le_bytes(text)), Some(want as u32));
            }
        }
        assert_eq!(eight_digits(u64::from_le_bytes(*b"99999999")), Some(99_999_999));
        assert_eq!(eight_digits(u64::from_le_bytes(*b"12345678")), Some(12_345_678));
        for bad in [b'/', b':', b'?', 0x39 + 0x80, 0xFF, 0] {
            for place in 0..8 {
                let mut text = *b"12345678";
                text[place] = bad;
                assert_eq!(eight_digits(u64::from_le_bytes(text)), None);
            }
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
