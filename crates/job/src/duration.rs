//! Durations as users write them (`90s`, `15m`, `1h30m`, `2d`, `01:30:00`)
//! and back, in whole seconds.

use crate::error::{SpecError, quote};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Parses a duration into seconds. Accepted forms:
///
/// - a number of seconds: `5400`;
/// - numbers with units `d`, `h`, `m`, `s`, largest first, each at most
///   once, optionally separated by spaces: `90s`, `15m`, `1h30m`, `2d 12h`;
/// - clock forms as batch systems write them: `MM:SS`, `HH:MM:SS` and
///   `D-HH:MM:SS` (`01:30:00` is 1h30m; hours may exceed 23 without days).
///
/// The error has an empty field; callers set it with [`SpecError::at`].
pub fn parse_duration(text: &str) -> Result<u64, SpecError> {
    let trimmed = text.trim();
    let result = if trimmed.contains(':') {
        clock(trimmed)
    } else if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        number(trimmed)
    } else {
        with_units(trimmed)
    };
    result.ok_or_else(|| {
        let why = if trimmed.starts_with('-') {
            "is negative; a duration must be positive"
        } else {
            "is not a duration; write seconds (5400), units (90s, 15m, 1h30m, 2d) or HH:MM:SS"
        };
        SpecError::new("", format!("{} {why}", quote(text)))
    })
}

fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn with_units(text: &str) -> Option<u64> {
    let units = [('d', DAY), ('h', HOUR), ('m', MINUTE), ('s', 1)];
    let mut next_unit = 0;
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit())?;
        let value = number(&rest[..digits_end])?;
        let unit = rest[digits_end..].chars().next()?;
        let position = units[next_unit..].iter().position(|(u, _)| *u == unit)?;
        let factor = units[next_unit + position].1;
        next_unit += position + 1;
        total = total.checked_add(value.checked_mul(factor)?)?;
        rest = rest[digits_end + 1..].trim_start();
    }
    Some(total)
}

fn clock(text: &str) -> Option<u64> {
    let (days, clock) = match text.split_once('-') {
        Some((d, c)) => (Some(number(d)?), c),
        None => (None, text),
    };
    let fields: Vec<&str> = clock.split(':').collect();
    let fields: Vec<u64> = fields.into_iter().map(number).collect::<Option<_>>()?;
    let (hours, minutes, seconds) = match (days, fields.as_slice()) {
        (None, [m, s]) => (0, *m, *s),
        (_, [h, m, s]) => (*h, *m, *s),
        _ => return None,
    };
    if seconds >= 60 || (fields.len() == 3 && minutes >= 60) || (days.is_some() && hours >= 24) {
        return None;
    }
    days.unwrap_or(0)
        .checked_mul(DAY)?
        .checked_add(hours.checked_mul(HOUR)?)?
        .checked_add(minutes.checked_mul(MINUTE)?)?
        .checked_add(seconds)
}

/// Formats seconds with units, largest first, leaving out zero parts:
/// `1h30m`, `1m30s`, `2d`, `0s`. [`parse_duration`] reads it back.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, factor) in [("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1)] {
        let n = rest / factor;
        rest %= factor;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let cases: &[(&str, u64)] = &[
            ("5400", 5400),
            ("0", 0),
            ("90s", 90),
            ("15m", 900),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("2d", 2 * DAY),
            ("2d12h", 2 * DAY + 12 * HOUR),
            ("1d1h1m1s", DAY + HOUR + MINUTE + 1),
            ("01:30:00", 5400),
            ("48:00:00", 2 * DAY),
            ("5:07", 307),
            ("90:00", 5400),
            ("1-12:00:00", DAY + 12 * HOUR),
            (" 10m ", 600),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn refuses_disorder_repeats_and_garbage() {
        for bad in [
            "",
            "h",
            "1x",
            "30m1h",
            "1h1h",
            "1.5h",
            "-5",
            "-1h",
            "1:60:00",
            "1:2:3:4",
            "1-24:00:00",
            "1-1:00",
            "1:",
            ":30",
            "1 h",
            "10m x",
            "1-2-3:00:00",
            "abc",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(
            parse_duration("-5")
                .unwrap_err()
                .message
                .contains("negative")
        );
        assert!(parse_duration(&format!("{}d", u64::MAX)).is_err());
        assert!(parse_duration("99999999999999999999999").is_err());
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(90), "1m30s");
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(2 * DAY), "2d");
        assert_eq!(format_duration(DAY + 1), "1d1s");
        for n in [0, 1, 59, 60, 3599, 3600, 86399, 31 * DAY, u64::MAX] {
            assert_eq!(parse_duration(&format_duration(n)), Ok(n), "{n}");
        }
    }
}
