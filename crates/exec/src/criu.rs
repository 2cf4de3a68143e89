//! Whether CRIU (checkpoint/restore in userspace) can be used on this host.

use std::path::PathBuf;
use std::process::{Command, Stdio};

const SEARCH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
];

/// Runs `criu check` if criu is installed: `Ok` if it passes, else `Err`
/// with its output, or "criu not installed".
pub fn criu_available() -> Result<(), String> {
    let Some(criu) = SEARCH
        .iter()
        .map(|d| PathBuf::from(d).join("criu"))
        .find(|p| p.is_file())
    else {
        return Err("criu not installed".into());
    };
    let out = Command::new(&criu)
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", criu.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if text.is_empty() {
        text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    if text.is_empty() {
        text = format!("criu check failed ({})", out.status);
    }
    Err(text)
}
