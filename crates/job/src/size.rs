//! Byte sizes as users write them (`2GiB`, `512M`, `1.5G`, `4000000000`)
//! and back.

use crate::error::{SpecError, quote};

const KIB: u128 = 1024;

/// Accepted units and their factors. Single letters are binary, as in most
/// batch systems (`4G` is 4 GiB); `KB`, `MB`, `GB`, `TB` are decimal.
const UNITS: [(&str, u128); 14] = [
    ("B", 1),
    ("KiB", KIB),
    ("MiB", KIB.pow(2)),
    ("GiB", KIB.pow(3)),
    ("TiB", KIB.pow(4)),
    ("K", KIB),
    ("M", KIB.pow(2)),
    ("G", KIB.pow(3)),
    ("T", KIB.pow(4)),
    ("KB", 1000),
    ("MB", 1000u128.pow(2)),
    ("GB", 1000u128.pow(3)),
    ("TB", 1000u128.pow(4)),
    ("", 1),
];

/// Most digits accepted after the decimal point.
const FRACTION_DIGITS_MAX: usize = 9;

/// Parses a byte size: a number of bytes (`1048576`) or a number with a unit
/// (`2GiB`, `512 MiB`, `1.5G`, `4GB`). Units: B, KiB, MiB, GiB, TiB and K,
/// M, G, T (1024-based), KB, MB, GB, TB (1000-based); they are
/// case-sensitive. A fraction is allowed with a unit larger than a byte and
/// rounds down to whole bytes. The error has an empty field; callers set it
/// with [`SpecError::at`].
pub fn parse_size(text: &str) -> Result<u64, SpecError> {
    let bad = |why: &str| {
        Err(SpecError::new(
            "",
            format!(
                "{} is not a size{why}; write a number of bytes or a number with a unit, such as 512MiB or 2GiB",
                quote(text)
            ),
        ))
    };
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(SpecError::new(
            "",
            format!("{} is negative; a size must be positive", quote(text)),
        ));
    }
    let number_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(number_end);
    let unit = unit.trim_start();
    let Some(&(_, factor)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return bad(&format!(
            " (unknown unit {}; use B, KiB, MiB, GiB, TiB, K, M, G, T, KB, MB, GB or TB)",
            quote(unit)
        ));
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty()
        || (number.contains('.') && fraction.is_empty())
        || fraction.contains('.')
        || fraction.len() > FRACTION_DIGITS_MAX
    {
        return bad("");
    }
    if !fraction.is_empty() && factor == 1 {
        return bad(" (a fraction of a byte)");
    }
    // At most 39 digits fit u128; anything past 20 overflows u64 anyway.
    if whole.len() > 20 {
        return too_large(text);
    }
    let whole: u128 = whole
        .parse()
        .map_err(|_| SpecError::new("", "bad digits"))?;
    let mut bytes = whole * factor;
    if !fraction.is_empty() {
        let digits: u128 = fraction
            .parse()
            .map_err(|_| SpecError::new("", "bad digits"))?;
        bytes += digits * factor / 10u128.pow(fraction.len() as u32);
    }
    u64::try_from(bytes).or_else(|_| too_large(text))
}

fn too_large(text: &str) -> Result<u64, SpecError> {
    Err(SpecError::new(
        "",
        format!("{} is too large for a size", quote(text)),
    ))
}

/// Formats a byte count exactly, in the largest binary unit that divides it:
/// `2GiB`, `1536MiB`, `1000B`. [`parse_size`] reads the result back to the
/// same number.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)] {
        let factor = 1u64 << (10 * factor);
        if bytes != 0 && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("1048576", 1 << 20),
            ("512B", 512),
            ("2GiB", 2 << 30),
            ("2 GiB", 2 << 30),
            (" 2G ", 2 << 30),
            ("512M", 512 << 20),
            ("1K", 1024),
            ("1KiB", 1024),
            ("3T", 3 << 40),
            ("1TiB", 1 << 40),
            ("4GB", 4_000_000_000),
            ("1KB", 1000),
            ("5MB", 5_000_000),
            ("2TB", 2_000_000_000_000),
            ("1.5GiB", 3 << 29),
            ("0.5K", 512),
            ("1.3GiB", 1_395_864_371),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn refuses_garbage_negative_and_overflow() {
        for bad in [
            "", "abc", "GiB", "2XB", "2gib", "1.", ".5G", "1.2.3G", "1.5", "1.5B", "-2GiB", "-1",
            "2 G B", "1e9",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.field.is_empty(), "{bad}");
            assert!(!err.message.is_empty(), "{bad}");
        }
        assert!(
            parse_size("-2GiB")
                .unwrap_err()
                .message
                .contains("negative")
        );
        assert!(
            parse_size("2XB")
                .unwrap_err()
                .message
                .contains("unknown unit")
        );
        assert!(
            parse_size("16777216T")
                .unwrap_err()
                .message
                .contains("too large")
        );
        assert!(parse_size(&"9".repeat(30)).is_err());
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("18446744073709551616").is_err());
    }

    #[test]
    fn formats_exactly_and_round_trips() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(1024), "1KiB");
        assert_eq!(format_size(1536 << 20), "1536MiB");
        assert_eq!(format_size(2 << 30), "2GiB");
        assert_eq!(format_size(64 << 40), "64TiB");
        for n in [0, 1, 1023, 1024, 4096, 3 << 29, 1 << 40, u64::MAX, 12345678] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
    }
}
