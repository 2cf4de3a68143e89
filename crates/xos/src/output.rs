//! Human tables and `--json`.

use serde::Serialize;

/// Prints rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// "3s ago", "2h ago", "never".
pub fn ago(unix: u64, now: u64) -> String {
    if unix == 0 {
        return "never".into();
    }
    let secs = now.saturating_sub(unix);
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string() + " ago"
}

/// "in 23h 59m".
pub fn until(unix: u64, now: u64) -> String {
    if unix == 0 {
        return "-".into();
    }
    if unix <= now {
        return "expired".into();
    }
    let secs = unix - now;
    // Minutes are enough for a human reading certificate expiry.
    let rounded = if secs > 3600 { secs - secs % 60 } else { secs };
    format!(
        "in {}",
        humantime::format_duration(std::time::Duration::from_secs(rounded))
    )
}
