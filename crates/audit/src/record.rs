//! One audit record: what a caller reports (`AuditEvent`), what the log
//! stores (`AuditRecord`), and the exact bytes that are hashed and written.
//!
//! A line is the canonical JSON of an `AuditRecord` with `hash` as its last
//! field. `hash` is SHA-256 over `prev` followed by that same JSON without
//! `hash` (the body). Checking a line rehashes its stored bytes instead of
//! re-serializing the parsed record: serde_json's default float parsing is
//! not guaranteed to round-trip, and a verifier must not report an untouched
//! record as altered because of it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{AuditError, Result};

/// Largest record line, without its newline. A bound keeps one careless
/// caller from bloating the log and lets readers hold one line in memory.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// `prev` of the first record: there is nothing before it to chain to.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was decided. `Done` is for actions carried out rather than judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Done,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Done => "done",
        })
    }
}

/// A decision as the deciding code reports it; the log adds sequence,
/// time, node and chain fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub decision: Decision,
    pub detail: Value,
}

impl AuditEvent {
    /// An event with an empty `detail` object.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        decision: Decision,
    ) -> AuditEvent {
        AuditEvent {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            decision,
            detail: Value::Object(Map::new()),
        }
    }

    pub fn with_detail(mut self, detail: Value) -> AuditEvent {
        self.detail = detail;
        self
    }
}

/// One line of the log. Field order here is the order on disk and in the
/// hash; changing it changes every hash, so it is part of the format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: u64,
    pub time_ms: u64,
    pub node: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub decision: Decision,
    pub detail: Value,
    pub prev: String,
    pub hash: String,
}

/// `AuditRecord` without `hash`, borrowed, in the same field order.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time_ms: u64,
    node: &'a str,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    decision: Decision,
    detail: &'a Value,
    prev: &'a str,
}

/// A record ready to write: `line` ends with a newline.
pub(crate) struct Encoded {
    pub record: AuditRecord,
    pub line: Vec<u8>,
}

/// Builds the record that follows `prev`, refusing it if its line would
/// exceed `MAX_RECORD_BYTES`.
pub(crate) fn encode(
    seq: u64,
    time_ms: u64,
    node: &str,
    event: AuditEvent,
    prev: &str,
) -> Result<Encoded> {
    let AuditEvent {
        actor,
        action,
        target,
        decision,
        detail,
    } = event;
    let detail = canonical(detail);
    let body = Body {
        seq,
        time_ms,
        node,
        actor: &actor,
        action: &action,
        target: &target,
        decision,
        detail: &detail,
        prev,
    };
    let body_bytes = match serde_json::to_vec(&body) {
        Ok(bytes) => bytes,
        Err(source) => return Err(AuditError::Encode { action, source }),
    };
    let hash = chain_hash(prev, &body_bytes);

    // The line is the body with `,"hash":"…"}` in place of its closing
    // brace, which is exactly how serde_json writes the full record; built
    // this way, the hashed bytes are the written bytes by construction.
    let Some((b'}', open_body)) = body_bytes.split_last() else {
        unreachable!("serde_json writes a struct as a JSON object");
    };
    let mut line = Vec::with_capacity(body_bytes.len() + hash.len() + 12);
    line.extend_from_slice(open_body);
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}");
    if line.len() > MAX_RECORD_BYTES {
        return Err(AuditError::TooLarge {
            action,
            bytes: line.len(),
            limit: MAX_RECORD_BYTES,
        });
    }
    line.push(b'\n');

    let record = AuditRecord {
        seq,
        time_ms,
        node: node.to_owned(),
        actor,
        action,
        target,
        decision,
        detail,
        prev: prev.to_owned(),
        hash,
    };
    Ok(Encoded { record, line })
}

/// Sorts object keys at every depth. serde_json's `Map` is sorted only when
/// its `preserve_order` feature is off, and any crate in the workspace may
/// turn that on (features are unified), so the order is made explicit here.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn chain_hash(prev: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// Why a single line cannot be trusted on its own, before any comparison
/// with its neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineFault {
    /// The line's `seq`, if one can be read from it at all.
    pub seq: Option<u64>,
    pub reason: String,
}

/// Parses one line (without its newline) and checks that its hash covers
/// its own bytes. Chain order (seq, prev) is the caller's business.
pub(crate) fn check_line(line: &[u8]) -> std::result::Result<AuditRecord, LineFault> {
    let record: AuditRecord = match serde_json::from_slice(line) {
        Ok(record) => record,
        Err(e) => {
            let reason = if line.iter().all(u8::is_ascii_whitespace) {
                "empty line".to_owned()
            } else if matches!(e.classify(), serde_json::error::Category::Data) {
                format!("not an audit record ({e})")
            } else {
                format!("not valid JSON ({e})")
            };
            return Err(LineFault {
                seq: loose_seq(line),
                reason,
            });
        }
    };
    let fault = |reason: &str| LineFault {
        seq: Some(record.seq),
        reason: reason.to_owned(),
    };

    let mut suffix = Vec::with_capacity(record.hash.len() + 12);
    suffix.extend_from_slice(b",\"hash\":\"");
    suffix.extend_from_slice(record.hash.as_bytes());
    suffix.extend_from_slice(b"\"}");
    let Some(open_body) = line.strip_suffix(suffix.as_slice()) else {
        return Err(fault(
            "hash is not the last field: the record was rewritten by something other than the audit log",
        ));
    };
    let mut body = Vec::with_capacity(open_body.len() + 1);
    body.extend_from_slice(open_body);
    body.push(b'}');
    if chain_hash(&record.prev, &body) != record.hash {
        return Err(fault("hash mismatch: the record was altered"));
    }
    Ok(record)
}

/// `seq` of a line that is JSON but not a valid record, to help the reader
/// find it.
fn loose_seq(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail: Value) -> AuditEvent {
        AuditEvent::new("alice", "vo.create", "vo/physics", Decision::Allow).with_detail(detail)
    }

    fn line_of(e: AuditEvent) -> Vec<u8> {
        encode(1, 1_700_000_000_000, "node-1", e, GENESIS_PREV)
            .unwrap()
            .line
    }

    #[test]
    fn line_is_the_serialized_record_and_checks_out() {
        let enc = encode(
            1,
            5,
            "node-1",
            event(json!({"b": 1, "a": [2]})),
            GENESIS_PREV,
        )
        .unwrap();
        let mut expected = serde_json::to_vec(&enc.record).unwrap();
        expected.push(b'\n');
        assert_eq!(enc.line, expected);
        let text = String::from_utf8(enc.line.clone()).unwrap();
        assert!(text.starts_with(r#"{"seq":1,"time_ms":5,"node":"node-1","actor":"alice","action":"vo.create","target":"vo/physics","decision":"allow","detail":{"a":[2],"b":1},"prev":"000"#), "{text}");
        assert_eq!(enc.record.hash.len(), 64);
        let checked = check_line(&enc.line[..enc.line.len() - 1]).unwrap();
        assert_eq!(checked, enc.record);
    }

    #[test]
    fn key_order_of_detail_does_not_change_the_hash() {
        let mut first = Map::new();
        first.insert("zeta".into(), json!({"y": 1, "x": 2}));
        first.insert("alpha".into(), json!(true));
        let mut second = Map::new();
        second.insert("alpha".into(), json!(true));
        second.insert("zeta".into(), json!({"x": 2, "y": 1}));
        assert_eq!(
            line_of(event(Value::Object(first))),
            line_of(event(Value::Object(second)))
        );
    }

    #[test]
    fn newlines_in_fields_stay_inside_one_line() {
        let e = AuditEvent::new("mallory\n{\"seq\":9}", "login", "x\ny", Decision::Deny);
        let line = line_of(e);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn floats_that_do_not_round_trip_still_verify() {
        // serde_json without `float_roundtrip` parses this value one ulp off
        // (it would re-serialize as 1.234567890123457e-300); stored bytes are
        // rehashed, so parsing precision cannot matter.
        let line = line_of(event(json!({"x": 1.2345678901234567e-300, "y": 0.1})));
        check_line(&line[..line.len() - 1]).unwrap();
    }

    #[test]
    fn oversized_record_is_refused() {
        let big = "x".repeat(MAX_RECORD_BYTES);
        let err = encode(1, 0, "n", event(json!({ "blob": big })), GENESIS_PREV)
            .err()
            .unwrap();
        assert!(matches!(err, AuditError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("65536-byte limit"), "{err}");
    }

    #[test]
    fn faults_are_named_in_words() {
        assert_eq!(check_line(b"").unwrap_err().reason, "empty line");
        let garbage = check_line(b"{\"seq\":3,").unwrap_err();
        assert!(garbage.reason.starts_with("not valid JSON"), "{garbage:?}");
        let other = check_line(br#"{"seq":4,"hello":1}"#).unwrap_err();
        assert!(other.reason.starts_with("not an audit record"), "{other:?}");
        assert_eq!(other.seq, Some(4));

        let line = line_of(event(json!({})));
        let text = String::from_utf8(line).unwrap();
        let altered = text.trim_end().replace("\"allow\"", "\"deny\"");
        let fault = check_line(altered.as_bytes()).unwrap_err();
        assert_eq!(fault.reason, "hash mismatch: the record was altered");
        assert_eq!(fault.seq, Some(1));

        let without_seq = text.trim_end().replacen("{\"seq\":1,", "{", 1);
        let reordered = format!("{},\"seq\":1}}", without_seq.strip_suffix('}').unwrap());
        let fault = check_line(reordered.as_bytes()).unwrap_err();
        assert!(
            fault.reason.contains("hash is not the last field"),
            "{fault:?}"
        );
    }
}
