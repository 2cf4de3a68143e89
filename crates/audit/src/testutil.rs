//! Helpers shared by the unit tests: build a log, then edit it as an
//! attacker or a crash would.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::{AuditEvent, AuditLog, Decision};

/// Event number `i`; odd ones are denials.
pub fn event(i: u64) -> AuditEvent {
    let decision = if i % 2 == 1 {
        Decision::Deny
    } else {
        Decision::Allow
    };
    AuditEvent::new(format!("user{i}"), "vo.join", "vo/physics", decision)
        .with_detail(json!({ "i": i, "why": "test" }))
}

/// A fresh log of `n` records in `dir`.
pub fn log_with(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("audit.log");
    let log = AuditLog::open(&path, "node-1").unwrap();
    for i in 1..=n {
        log.append(event(i)).unwrap();
    }
    path
}

pub fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}
