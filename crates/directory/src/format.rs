//! Human-readable sizes for tables and error messages.

const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// Formats a byte count with a binary unit and one decimal, e.g. `7.6 GiB`;
/// counts below 1 KiB are shown exactly (`512 B`).
pub fn format_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Stop before a value would round up to "1024.0" of the smaller unit.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_largest_fitting_binary_unit() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(16 << 20), "16.0 MiB");
        assert_eq!(format_bytes(8_160_000_000), "7.6 GiB");
        assert_eq!(format_bytes(64 << 40), "64.0 TiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn never_shows_1024_of_a_unit() {
        assert_eq!(format_bytes((1 << 20) - 1), "1.0 MiB");
    }
}
