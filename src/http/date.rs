//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate out, the three historic forms in.
//!
//! Everything here works on whole seconds of UTC and a proleptic Gregorian
//! calendar; leap seconds are not modelled (a `:60` second is accepted on input
//! and simply counts as the first second of the next minute).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fields::trim;

/// Seconds in one civil day.
const SECS_PER_DAY: i64 = 86_400;
/// Days in one 400-year Gregorian cycle.
const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01 (the start of the March-based era 0) to 1970-01-01.
const EPOCH_OFFSET_DAYS: i64 = 719_468;

/// Short day names, indexed from Sunday.
const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
/// Long day names (rfc850-date), indexed from Sunday.
const LONG_DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
/// Month names, indexed from January.
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down UTC instant, as read from or written to a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    /// Full year, e.g. 1994.
    year: i64,
    /// Month, 1..=12.
    month: u32,
    /// Day of the month, 1..=31.
    day: u32,
    /// Hour, 0..=23.
    hour: u32,
    /// Minute, 0..=59.
    minute: u32,
    /// Second, 0..=60.
    second: u32,
}

/// Formats `t` as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
///
/// Sub-second precision is dropped; instants before 1970 format as the epoch.
pub(crate) fn format_http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // u64::MAX / 86400 is far below i64::MAX, so these casts are lossless.
    let days = (secs / SECS_PER_DAY as u64) as i64;
    let of_day = (secs % SECS_PER_DAY as u64) as u32;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4 from Sunday).
    let weekday = (days + 4).rem_euclid(7) as usize;
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAY_NAMES[weekday],
        day,
        MONTH_NAMES[(month - 1) as usize],
        year,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// Formats `t` as the common log format's time, e.g. `10/Oct/2000:13:55:36 +0000` (UTC).
pub(crate) fn format_clf_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / SECS_PER_DAY as u64) as i64;
    let of_day = (secs % SECS_PER_DAY as u64) as u32;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        day,
        MONTH_NAMES[(month - 1) as usize],
        year,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// Parses an HTTP date in any of the forms RFC 9110 requires recipients to accept:
/// IMF-fixdate, rfc850-date and asctime-date.
///
/// Surrounding spaces and tabs are ignored. Names are matched case-sensitively,
/// as the grammar specifies. The day name is checked to be a real day name but
/// not checked against the date. Anything malformed or out of range gives `None`.
pub(crate) fn parse_http_date(v: &[u8]) -> Option<SystemTime> {
    parse_http_date_in(v, current_year())
}

/// [`parse_http_date`] with the current year supplied, which only matters for
/// the two-digit years of rfc850-date.
fn parse_http_date_in(v: &[u8], this_year: i64) -> Option<SystemTime> {
    let v = trim(v);
    let civil = parse_imf_fixdate(v)
        .or_else(|| parse_rfc850(v, this_year))
        .or_else(|| parse_asctime(v))?;
    to_system_time(civil)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf_fixdate(v: &[u8]) -> Option<Civil> {
    if v.len() != 29 || &v[3..5] != b", " || v[7] != b' ' || v[11] != b' ' {
        return None;
    }
    if v[16] != b' ' || &v[25..] != b" GMT" {
        return None;
    }
    name_index(&DAY_NAMES, &v[..3])?;
    let day = digits(&v[5..7])?;
    let month = month_number(&v[8..11])?;
    let year = i64::from(digits(&v[12..16])?);
    civil(year, month, day, parse_time(&v[17..25])?)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn parse_rfc850(v: &[u8], this_year: i64) -> Option<Civil> {
    let comma = v.iter().position(|&b| b == b',')?;
    name_index(&LONG_DAY_NAMES, &v[..comma])?;
    // After the day name: ", 06-Nov-94 08:49:37 GMT", exactly 24 bytes.
    let rest = &v[comma..];
    if rest.len() != 24 || &rest[..2] != b", " || rest[4] != b'-' || rest[8] != b'-' {
        return None;
    }
    if rest[11] != b' ' || &rest[20..] != b" GMT" {
        return None;
    }
    let day = digits(&rest[2..4])?;
    let month = month_number(&rest[5..8])?;
    let two_digit = i64::from(digits(&rest[9..11])?);
    let year = expand_two_digit_year(two_digit, this_year);
    civil(year, month, day, parse_time(&rest[12..20])?)
}

/// `Sun Nov  6 08:49:37 1994` (the day is space-padded or two digits).
fn parse_asctime(v: &[u8]) -> Option<Civil> {
    if v.len() != 24 || v[3] != b' ' || v[7] != b' ' || v[10] != b' ' || v[19] != b' ' {
        return None;
    }
    name_index(&DAY_NAMES, &v[..3])?;
    let month = month_number(&v[4..7])?;
    let day = match v[8] {
        b' ' => digits(&v[9..10])?,
        _ => digits(&v[8..10])?,
    };
    let time = parse_time(&v[11..19])?;
    let year = i64::from(digits(&v[20..24])?);
    civil(year, month, day, time)
}

/// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the
/// future means the most recent past year with the same last two digits. The
/// result therefore lies in `this_year - 49 ..= this_year + 50`.
fn expand_two_digit_year(two_digit: i64, this_year: i64) -> i64 {
    let lowest = this_year - 49;
    lowest + (two_digit - lowest).rem_euclid(100)
}

/// `08:49:37` into its three fields (ranges are checked by [`validate`]).
fn parse_time(v: &[u8]) -> Option<(u32, u32, u32)> {
    if v.len() != 8 || v[2] != b':' || v[5] != b':' {
        return None;
    }
    Some((digits(&v[..2])?, digits(&v[3..5])?, digits(&v[6..])?))
}

/// A date and a time of day, if they name a real instant.
fn civil(
    year: i64,
    month: u32,
    day: u32,
    (hour, minute, second): (u32, u32, u32),
) -> Option<Civil> {
    validate(Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// Checks every field's range, including the length of the month.
fn validate(c: Civil) -> Option<Civil> {
    let fields_ok = (1..=12).contains(&c.month)
        && c.day >= 1
        && c.day <= days_in_month(c.year, c.month)
        && c.hour <= 23
        && c.minute <= 59
        && c.second <= 60;
    fields_ok.then_some(c)
}

/// The instant a validated [`Civil`] names.
fn to_system_time(c: Civil) -> Option<SystemTime> {
    let days = days_from_civil(c.year, c.month, c.day);
    let secs = days * SECS_PER_DAY
        + i64::from(c.hour) * 3600
        + i64::from(c.minute) * 60
        + i64::from(c.second);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// The instant of a calendar date and time of day (UTC), if it is a real
/// one — for dates that do not come in HTTP's forms (a certificate's
/// validity).
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) fn instant_of(
    year: i64,
    month: u32,
    day: u32,
    time: (u32, u32, u32),
) -> Option<SystemTime> {
    to_system_time(civil(year, month, day, time)?)
}

/// The year now, by the system clock (1970 if the clock is before the epoch).
fn current_year() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_from_days((secs / SECS_PER_DAY as u64) as i64).0
}

/// Whether `year` is a Gregorian leap year.
fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1..=12) of `year`.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
///
/// Counts years from March, so the leap day falls at the end of the counted
/// year and every month but February has a fixed position within it.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let march_year = if month <= 2 { year - 1 } else { year };
    let era = march_year.div_euclid(400);
    let year_of_era = march_year.rem_euclid(400);
    // Months counted from March: Mar = 0 .. Feb = 11.
    let march_month = i64::from((month + 9) % 12);
    let day_of_year = (153 * march_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_OFFSET_DAYS
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + EPOCH_OFFSET_DAYS;
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted.rem_euclid(DAYS_PER_ERA);
    // Remove the leap days (one every 4 years, none every 100, one every 400)
    // so that dividing by 365 gives the year within the era.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    // Both are in small ranges (1..=31 and 1..=12) by construction.
    (year, month as u32, day as u32)
}

/// The position of `name` in `names`, if it is one of them exactly.
fn name_index(names: &[&str], name: &[u8]) -> Option<usize> {
    names.iter().position(|n| n.as_bytes() == name)
}

/// A month name as its number, 1..=12.
fn month_number(name: &[u8]) -> Option<u32> {
    // At most 12, so the cast is lossless.
    name_index(&MONTH_NAMES, name).map(|i| i as u32 + 1)
}

/// A short run of ASCII digits (at most 4 here) as a number.
fn digits(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 9 {
        return None;
    }
    v.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// The `Date` header value, formatted once per second, and read from the
/// clock only when a turn of the loop answers an HTTP request (a loop busy
/// with WebSocket frames never asks).
#[derive(Debug)]
pub(crate) struct DateCache {
    secs: u64,
    pub text: String,
    /// A new turn began since the clock was last read.
    stale: bool,
}

impl DateCache {
    pub fn new() -> Self {
        let mut d = DateCache {
            secs: u64::MAX,
            text: String::new(),
            stale: false,
        };
        d.update(SystemTime::now());
        d
    }

    /// A new turn of the loop: the next response reads the clock again.
    pub fn expire(&mut self) {
        self.stale = true;
    }

    /// Brings the text up to date if the turn changed.
    pub fn refresh(&mut self) {
        if self.stale {
            self.stale = false;
            self.update(SystemTime::now());
        }
    }

    /// Reformats when the second has changed.
    fn update(&mut self, now: SystemTime) {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.secs = secs;
            self.text = format_http_date(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn secs(t: SystemTime) -> i64 {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }

    const RFC_INSTANT: u64 = 784_111_777;

    #[test]
    fn formats_known_instants() {
        for (secs, text) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (RFC_INSTANT, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(format_http_date(at(secs)), text, "{secs}");
        }
    }

    #[test]
    fn sub_seconds_are_dropped_and_pre_epoch_is_the_epoch() {
        let t = at(RFC_INSTANT) + Duration::from_millis(999);
        assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        let before = UNIX_EPOCH - Duration::from_secs(86_400 * 400);
        assert_eq!(format_http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn rfc_examples_parse_to_the_same_instant() {
        let expected = Some(at(RFC_INSTANT));
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(parse_http_date(b"Sun Nov 06 08:49:37 1994"), expected);
        assert_eq!(
            parse_http_date(b" \t Sun, 06 Nov 1994 08:49:37 GMT\t "),
            expected
        );
    }

    #[test]
    fn round_trips_many_instants() {
        // Every day from 1970 to past 2100 at a varying time of day, plus
        // scattered instants up to year 9999.
        let mut t = 0u64;
        while t < 4_200_000_000 {
            let s = format_http_date(at(t));
            assert_eq!(parse_http_date(s.as_bytes()), Some(at(t)), "{s}");
            t += 86_400 + 3_607;
        }
        let mut t = 0u64;
        while t < 253_402_300_800 {
            let s = format_http_date(at(t));
            assert_eq!(parse_http_date(s.as_bytes()), Some(at(t)), "{s}");
            t += 9_876_543_211;
        }
    }

    #[test]
    fn day_counts_agree_with_a_naive_count() {
        let mut days = 0i64;
        for year in 1970..2500 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), days);
                    assert_eq!(civil_from_days(days), (year, month, day));
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn leap_days() {
        assert!(parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT").is_some());
        assert!(parse_http_date(b"Thu, 29 Feb 2024 12:00:00 GMT").is_some());
        assert!(parse_http_date(b"Mon, 29 Feb 2100 00:00:00 GMT").is_none());
        assert!(parse_http_date(b"Fri, 29 Feb 2019 00:00:00 GMT").is_none());
        assert!(parse_http_date(b"Sat, 31 Jun 2019 00:00:00 GMT").is_none());
        assert!(parse_http_date(b"Sun, 30 Jun 2019 00:00:00 GMT").is_some());
    }

    #[test]
    fn pre_epoch_dates_parse() {
        let t = parse_http_date(b"Wed, 31 Dec 1969 23:59:59 GMT").unwrap();
        assert_eq!(secs(t), -1);
        let t = parse_http_date(b"Mon, 01 Jan 1900 00:00:00 GMT").unwrap();
        assert_eq!(secs(t), -2_208_988_800);
    }

    #[test]
    fn leap_second_counts_as_the_next_minute() {
        let t = parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT").unwrap();
        assert_eq!(format_http_date(t), "Sun, 01 Jan 2017 00:00:00 GMT");
    }

    #[test]
    fn two_digit_years_follow_the_fifty_year_rule() {
        assert_eq!(expand_two_digit_year(94, 2025), 1994);
        assert_eq!(expand_two_digit_year(75, 2025), 2075);
        assert_eq!(expand_two_digit_year(76, 2025), 1976);
        assert_eq!(expand_two_digit_year(0, 2025), 2000);
        assert_eq!(expand_two_digit_year(0, 2099), 2100);
        assert_eq!(expand_two_digit_year(49, 2099), 2149);
        assert_eq!(expand_two_digit_year(50, 2099), 2050);
        let t = parse_http_date_in(b"Thursday, 01-Jan-70 00:00:00 GMT", 2000);
        assert_eq!(t, Some(UNIX_EPOCH));
        // 1970 is 55 years before 2025, 2070 only 45 after: 2070 it is.
        let t = parse_http_date_in(b"Wednesday, 01-Jan-70 00:00:00 GMT", 2025).unwrap();
        assert_eq!(format_http_date(t), "Wed, 01 Jan 2070 00:00:00 GMT");
        let t = parse_http_date_in(b"Friday, 01-Jan-77 00:00:00 GMT", 2025).unwrap();
        assert_eq!(format_http_date(t), "Sat, 01 Jan 1977 00:00:00 GMT");
        let t = parse_http_date_in(b"Monday, 01-Jan-74 00:00:00 GMT", 2025).unwrap();
        assert_eq!(format_http_date(t), "Mon, 01 Jan 2074 00:00:00 GMT");
    }

    #[test]
    fn rejects_malformed_dates() {
        let bad: &[&[u8]] = &[
            b"",
            b" ",
            b"GMT",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 06 Nov 1994 08:49:37 gmt",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 94 08:49:37 GMT",
            b"Sun, 06 Nov 1994 8:49:37 GMT",
            b"Sun,  06 Nov 1994 08:49:37 GMT",
            b"Sun 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06-Nov-1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT junk",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"sun, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nox 1994 08:49:37 GMT",
            b"Sun, 06 NOV 1994 08:49:37 GMT",
            b"Sun, 00 Nov 1994 08:49:37 GMT",
            b"Sun, 32 Jan 1994 08:49:37 GMT",
            b"Sun, 31 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1994 08:60:37 GMT",
            b"Sun, 06 Nov 1994 08:49:61 GMT",
            b"Sun, 06 Nov 1994 08:49-37 GMT",
            b"Sun, 06 Nov 1994 08:4a:37 GMT",
            b"Sun, +6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov -994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT\0",
            b"Sun, 06 Nov 1994\n08:49:37 GMT",
            b"Sunday, 06-Nov-94 08:49:37",
            b"Sun, 06-Nov-94 08:49:37 GMT",
            b"Sundae, 06-Nov-94 08:49:37 GMT",
            b"Sunday, 06 Nov 94 08:49:37 GMT",
            b"Sunday, 06-Nov-941 08:49:37 GMT",
            b"Sunday 06-Nov-94 08:49:37 GMT",
            b"Sunday, 31-Apr-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 94",
            b"Sun Nov 6 08:49:37 1994",
            b"Sun Nov   6 08:49:37 1994",
            b"Sun Nov  6 08:49:37 1994 GMT",
            b"Sun Nov 31 08:49:37 1994",
            b"Sun Nov  0 08:49:37 1994",
            b"Sunday Nov  6 08:49:37 1994",
            b"\xff\xfe\xfd, 06 Nov 1994 08:49:37 GMT",
            b",,,,,,,,,,,,,,,,,,,,,,,,,,,,,",
            b"1994-11-06T08:49:37Z",
            b"784111777",
        ];
        for v in bad {
            assert_eq!(parse_http_date(v), None, "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn rejects_every_truncation_and_never_panics() {
        let valid: &[&[u8]] = &[
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Wednesday, 09-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
        ];
        for v in valid {
            assert!(parse_http_date(v).is_some());
            for cut in 0..v.len() {
                let head = &v[..cut];
                let tail = &v[cut + 1..];
                // Truncated from either end (unless only whitespace went missing).
                if trim(head) != trim(v) {
                    assert_eq!(parse_http_date(head), None, "{head:?}");
                }
                if trim(tail) != trim(v) {
                    assert_eq!(parse_http_date(tail), None, "{tail:?}");
                }
                // Every byte replaced by every other byte: must not panic.
                for b in 0..=255u8 {
                    let mut m = v.to_vec();
                    m[cut] = b;
                    let _ = parse_http_date(&m);
                }
            }
        }
    }
}
