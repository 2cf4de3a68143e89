//! The user format of job descriptions (TOML, or the same structure in
//! JSON): decoding with errors that name the field, and the canonical JSON
//! encoding.
//!
//! Both formats are first read into a `serde_json::Value` tree and then
//! walked by hand rather than through `#[derive(Deserialize)]`: that way
//! every error (an unknown key, a negative number, a bad unit) carries the
//! full path of the field and a message written for people.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::array::ArrayRange;
use crate::duration::parse_duration;
use crate::error::{SpecError, quote};
use crate::id::JobId;
use crate::signal::{parse_signal, signal_name};
use crate::size::parse_size;
use crate::spec::{
    ARGS_MAX, CHECKPOINT_FILES_MAX, CORES_MAX, COUNT_MAX, CheckpointSpec, DEPENDENCIES_MAX,
    JobSpec, MAX_RESTARTS_DEFAULT, MAX_RESTARTS_MAX, PRIORITY_MAX, PRIORITY_MIN, Resources,
    RestartPolicy, check_memory, check_signal, check_walltime, env_field, int_rule,
};

const TOP_KEYS: &[&str] = &[
    "name",
    "executable",
    "args",
    "env",
    "stdin",
    "stdout",
    "stderr",
    "workdir",
    "resources",
    "count",
    "per_node",
    "constraints",
    "vo",
    "group",
    "priority",
    "restart",
    "max_restarts",
    "after_ok",
    "after_any",
    "array",
    "checkpoint",
    "reservation",
];
const RESOURCE_KEYS: &[&str] = &["cores", "memory", "walltime"];
const CHECKPOINT_KEYS: &[&str] = &["exit_code", "signal", "files"];

// ---------------------------------------------------------------- reading

/// Parses TOML into a value tree. A date or time becomes its text, so that
/// `walltime = 01:30:00` (a TOML local time) reads like `"01:30:00"`; where
/// a date makes no sense, the field's own check refuses it.
pub(crate) fn toml_document(text: &str) -> Result<Value, SpecError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let before = text.get(..span.start).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                // The text at the error (the key, for a duplicate key).
                let found = text.get(span).unwrap_or("").trim();
                if found.is_empty() || found.contains('\n') || found.chars().count() > 40 {
                    format!("line {line}, column {column}: ")
                } else {
                    format!("line {line}, column {column} (`{found}`): ")
                }
            })
            .unwrap_or_default();
        SpecError::new("", format!("{at}{}", e.message().trim()))
    })?;
    toml_to_json("", toml::Value::Table(table))
}

fn toml_to_json(path: &str, value: toml::Value) -> Result<Value, SpecError> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::Number(i.into()),
        toml::Value::Float(f) => Value::Number(
            Number::from_f64(f).ok_or_else(|| SpecError::new(path, "must be a finite number"))?,
        ),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(&format!("{path}[{i}]"), v))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| {
                    let field = child(path, &k);
                    Ok((k, toml_to_json(&field, v)?))
                })
                .collect::<Result<_, SpecError>>()?,
        ),
    })
}

/// Parses JSON into a value tree, refusing duplicate keys (which
/// `serde_json::Value` would silently collapse to the last one).
pub(crate) fn json_document(text: &str) -> Result<Value, SpecError> {
    serde_json::from_str::<Strict>(text)
        .map(|s| s.0)
        .map_err(|e| SpecError::new("", e.to_string()))
}

/// A JSON value whose objects have no duplicate keys.
struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {}", quote(&key))));
            }
            let Strict(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// `path.key`, with a hostile key cut short.
fn child(path: &str, key: &str) -> String {
    let mut shown: String = key.chars().take(64).collect();
    if shown.len() < key.len() {
        shown.push_str("...");
    }
    if path.is_empty() {
        shown
    } else {
        format!("{path}.{shown}")
    }
}

/// What a value is, for "must be X (got Y)".
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// A table being decoded: its keys are checked against the known ones up
/// front, then taken one by one.
struct Table {
    path: String,
    map: Map<String, Value>,
}

impl Table {
    fn new(path: &str, value: Value, known: &[&str]) -> Result<Table, SpecError> {
        let Value::Object(map) = value else {
            let what = if path.is_empty() {
                "a job description must be a table (a JSON object)".to_owned()
            } else {
                format!("must be a table (got {})", kind(&value))
            };
            return Err(SpecError::new(path, what));
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = match closest(key, known) {
                    Some(k) => format!("did you mean `{k}`? "),
                    None => String::new(),
                };
                return Err(SpecError::new(
                    child(path, key),
                    format!("unknown key; {hint}known keys here: {}", known.join(", ")),
                ));
            }
        }
        Ok(Table {
            path: path.to_owned(),
            map,
        })
    }

    /// The value of `key` and its path; a JSON `null` counts as absent.
    fn take(&mut self, key: &str) -> Option<(String, Value)> {
        match self.map.remove(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some((child(&self.path, key), value)),
        }
    }
}

/// The known key nearest to a misspelt one, if it is close.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    if key.len() > 64 {
        return None;
    }
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

fn string(path: &str, value: Value) -> Result<String, SpecError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(SpecError::new(
            path,
            format!("must be a string (got {}); quote it", kind(&other)),
        )),
    }
}

/// An integer from `min` to `max`; the message says the range either way.
fn int_in(path: &str, value: &Value, min: i128, max: i128) -> Result<i128, SpecError> {
    let rule = int_rule(min, max);
    let n = match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(SpecError::new(path, format!("{rule} (got {n})"))),
        None => Err(SpecError::new(
            path,
            format!("{rule} (got {})", kind(value)),
        )),
    }
}

fn u32_in(path: &str, value: &Value, min: u32, max: u32) -> Result<u32, SpecError> {
    // In range, so the conversion cannot fail.
    int_in(path, value, min.into(), max.into()).map(|n| n as u32)
}

fn string_list(path: &str, value: Value, max: usize) -> Result<Vec<(String, String)>, SpecError> {
    let Value::Array(items) = value else {
        return Err(SpecError::new(
            path,
            format!("must be a list of strings (got {})", kind(&value)),
        ));
    };
    if items.len() > max {
        return Err(SpecError::new(
            path,
            format!("{} entries, more than {max}", items.len()),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("{path}[{i}]");
            Ok((string(&field, item)?, field))
        })
        .collect()
}

fn size(path: &str, value: Value) -> Result<u64, SpecError> {
    let bytes = match value {
        Value::String(text) => parse_size(&text).map_err(|e| e.at(path))?,
        Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
        other => {
            return Err(SpecError::new(
                path,
                format!(
                    "must be a positive size: a number of bytes or a string such as \"2GiB\" (got {})",
                    match &other {
                        Value::Number(n) if n.as_i64().is_some() => n.to_string(),
                        _ => kind(&other).to_owned(),
                    }
                ),
            ));
        }
    };
    check_memory(path, bytes)?;
    Ok(bytes)
}

fn duration(path: &str, value: Value) -> Result<u64, SpecError> {
    let secs = match value {
        Value::String(text) => parse_duration(&text).map_err(|e| e.at(path))?,
        Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
        other => {
            return Err(SpecError::new(
                path,
                format!(
                    "must be a positive duration: seconds or a string such as \"1h30m\" or \"01:30:00\" (got {})",
                    match &other {
                        Value::Number(n) if n.as_i64().is_some() => n.to_string(),
                        _ => kind(&other).to_owned(),
                    }
                ),
            ));
        }
    };
    check_walltime(path, secs)?;
    Ok(secs)
}

fn job_ids(path: &str, value: Value) -> Result<Vec<JobId>, SpecError> {
    string_list(path, value, DEPENDENCIES_MAX)?
        .into_iter()
        .map(|(text, field)| JobId::parse(&text).map_err(|e| e.at(field)))
        .collect()
}

/// Decodes a value tree in the user format. Does not call `validate`, but
/// checks what the Rust types cannot hold (negative numbers, units).
pub(crate) fn decode(document: Value) -> Result<JobSpec, SpecError> {
    let mut top = Table::new("", document, TOP_KEYS)?;
    let executable = match top.take("executable") {
        Some((path, v)) => string(&path, v)?,
        None => {
            return Err(SpecError::new(
                "executable",
                "missing: say which program to run, e.g. executable = \"/usr/bin/python3\"",
            ));
        }
    };
    let mut spec = JobSpec::new(executable);
    if let Some((path, v)) = top.take("name") {
        spec.name = string(&path, v)?;
    }
    if let Some((path, v)) = top.take("args") {
        spec.args = string_list(&path, v, ARGS_MAX)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
    }
    if let Some((path, v)) = top.take("env") {
        let Value::Object(map) = v else {
            return Err(SpecError::new(
                path,
                format!("must be a table of NAME = \"value\" (got {})", kind(&v)),
            ));
        };
        for (name, value) in map {
            let value = string(&env_field(&name), value)?;
            spec.env.insert(name, value);
        }
    }
    for (key, slot) in [
        ("stdin", &mut spec.stdin),
        ("stdout", &mut spec.stdout),
        ("stderr", &mut spec.stderr),
        ("workdir", &mut spec.workdir),
        ("constraints", &mut spec.constraints),
        ("vo", &mut spec.vo),
        ("group", &mut spec.group),
        ("reservation", &mut spec.reservation),
    ] {
        if let Some((path, v)) = top.take(key) {
            *slot = Some(string(&path, v)?);
        }
    }
    if let Some((path, v)) = top.take("resources") {
        spec.resources = resources(&path, v)?;
    }
    if let Some((path, v)) = top.take("count") {
        spec.count = u32_in(&path, &v, 1, COUNT_MAX)?;
    }
    if let Some((path, v)) = top.take("per_node") {
        spec.per_node = Some(u32_in(&path, &v, 1, COUNT_MAX)?);
    }
    if let Some((path, v)) = top.take("priority") {
        spec.priority = int_in(&path, &v, PRIORITY_MIN.into(), PRIORITY_MAX.into())? as i32;
    }
    spec.restart = restart(top.take("restart"), top.take("max_restarts"))?;
    if let Some((path, v)) = top.take("after_ok") {
        spec.after_ok = job_ids(&path, v)?;
    }
    if let Some((path, v)) = top.take("after_any") {
        spec.after_any = job_ids(&path, v)?;
    }
    if let Some((path, v)) = top.take("array") {
        let text = string(&path, v).map_err(|e| {
            SpecError::new(e.field, "must be a string such as \"1-100\" or \"1-100:2\"")
        })?;
        spec.array = Some(ArrayRange::parse(&text).map_err(|e| e.at(path))?);
    }
    if let Some((path, v)) = top.take("checkpoint") {
        spec.checkpoint = Some(checkpoint(&path, v)?);
    }
    // A group names its VO: `/physics/cms` belongs to `physics`.
    if spec.vo.is_none()
        && let Some(vo) = spec
            .group
            .as_deref()
            .and_then(|g| g.strip_prefix('/'))
            .and_then(|g| g.split('/').next())
            .filter(|vo| !vo.is_empty())
    {
        spec.vo = Some(vo.to_owned());
    }
    Ok(spec)
}

fn resources(path: &str, value: Value) -> Result<Resources, SpecError> {
    let mut table = Table::new(path, value, RESOURCE_KEYS)?;
    let mut r = Resources::default();
    if let Some((path, v)) = table.take("cores") {
        r.cores = u32_in(&path, &v, 1, CORES_MAX)?;
    }
    if let Some((path, v)) = table.take("memory") {
        r.memory_bytes = size(&path, v)?;
    }
    if let Some((path, v)) = table.take("walltime") {
        r.walltime_secs = Some(duration(&path, v)?);
    }
    Ok(r)
}

fn restart(
    policy: Option<(String, Value)>,
    max: Option<(String, Value)>,
) -> Result<RestartPolicy, SpecError> {
    let policy = match policy {
        None => None,
        Some((path, v)) => Some(match string(&path, v).as_deref() {
            Ok("never") => "never",
            Ok("on-node-failure") => "on-node-failure",
            _ => {
                return Err(SpecError::new(
                    path,
                    "must be \"never\" or \"on-node-failure\"",
                ));
            }
        }),
    };
    match (policy, max) {
        (None | Some("never"), None) => Ok(RestartPolicy::Never),
        (None | Some("never"), Some((path, _))) => Err(SpecError::new(
            path,
            "only goes with restart = \"on-node-failure\"",
        )),
        (_, None) => Ok(RestartPolicy::OnNodeFailure {
            max_restarts: MAX_RESTARTS_DEFAULT,
        }),
        (_, Some((path, v))) => Ok(RestartPolicy::OnNodeFailure {
            max_restarts: u32_in(&path, &v, 1, MAX_RESTARTS_MAX)?,
        }),
    }
}

fn checkpoint(path: &str, value: Value) -> Result<CheckpointSpec, SpecError> {
    let mut table = Table::new(path, value, CHECKPOINT_KEYS)?;
    let mut c = CheckpointSpec {
        exit_code: None,
        signal: None,
        files: Vec::new(),
    };
    if let Some((path, v)) = table.take("exit_code") {
        c.exit_code = Some(int_in(&path, &v, 1, 255)? as i32);
    }
    if let Some((path, v)) = table.take("signal") {
        let signal = match v {
            Value::String(name) => parse_signal(&name).map_err(|e| e.at(&path))?,
            other => int_in(&path, &other, 1, crate::signal::SIGNAL_MAX.into())? as i32,
        };
        check_signal(&path, signal)?;
        c.signal = Some(signal);
    }
    if let Some((path, v)) = table.take("files") {
        c.files = string_list(&path, v, CHECKPOINT_FILES_MAX)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
    }
    Ok(c)
}

// ---------------------------------------------------------------- writing

/// The canonical JSON form; field order is the declaration order here.
#[derive(Serialize)]
struct Wire<'a> {
    name: &'a str,
    executable: &'a str,
    args: &'a [String],
    env: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workdir: Option<&'a str>,
    resources: WireResources,
    count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_node: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    constraints: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vo: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    priority: i32,
    restart: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_restarts: Option<u32>,
    after_ok: Vec<String>,
    after_any: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    array: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<WireCheckpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation: Option<&'a str>,
}

#[derive(Serialize)]
struct WireResources {
    cores: u32,
    memory: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    walltime: Option<u64>,
}

#[derive(Serialize)]
struct WireCheckpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<WireSignal>,
    files: &'a [String],
}

/// A signal by name when it has one (names are the same on every Linux
/// architecture, numbers are not quite), else by number.
#[derive(Serialize)]
#[serde(untagged)]
enum WireSignal {
    Name(&'static str),
    Number(i32),
}

pub(crate) fn encode(spec: &JobSpec) -> String {
    let (restart, max_restarts) = match spec.restart {
        RestartPolicy::Never => ("never", None),
        RestartPolicy::OnNodeFailure { max_restarts } => ("on-node-failure", Some(max_restarts)),
    };
    let wire = Wire {
        name: &spec.name,
        executable: &spec.executable,
        args: &spec.args,
        env: &spec.env,
        stdin: spec.stdin.as_deref(),
        stdout: spec.stdout.as_deref(),
        stderr: spec.stderr.as_deref(),
        workdir: spec.workdir.as_deref(),
        resources: WireResources {
            cores: spec.resources.cores,
            memory: spec.resources.memory_bytes,
            walltime: spec.resources.walltime_secs,
        },
        count: spec.count,
        per_node: spec.per_node,
        constraints: spec.constraints.as_deref(),
        vo: spec.vo.as_deref(),
        group: spec.group.as_deref(),
        priority: spec.priority,
        restart,
        max_restarts,
        after_ok: spec.after_ok.iter().map(ToString::to_string).collect(),
        after_any: spec.after_any.iter().map(ToString::to_string).collect(),
        array: spec.array.map(|a| a.to_string()),
        checkpoint: spec.checkpoint.as_ref().map(|c| WireCheckpoint {
            exit_code: c.exit_code,
            signal: c.signal.map(|s| match signal_name(s) {
                Some(name) => WireSignal::Name(name),
                None => WireSignal::Number(s),
            }),
            files: &c.files,
        }),
        reservation: spec.reservation.as_deref(),
    };
    // Serializing plain strings, numbers and maps with string keys into a
    // String cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("core", "cores"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("core", RESOURCE_KEYS), Some("cores"));
        assert_eq!(closest("executabel", TOP_KEYS), Some("executable"));
        assert_eq!(closest("zzzzzz", TOP_KEYS), None);
    }

    #[test]
    fn json_duplicate_keys_are_refused() {
        let err = json_document(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(err.message.contains("duplicate key \"a\""), "{err}");
        let err = json_document(r#"{"x": {"b": 1, "b": 1}}"#).unwrap_err();
        assert!(err.message.contains("duplicate key"), "{err}");
        assert!(json_document(r#"{"a": [1, 2.5, null, true, "s"]}"#).is_ok());
    }

    #[test]
    fn toml_errors_say_where() {
        let err = toml_document("a = 1\nb = = 2\n").unwrap_err();
        assert!(err.field.is_empty());
        assert!(err.message.starts_with("line 2, column"), "{err}");
        let err = toml_document("a = 1\na = 2\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
        let doc = toml_document("[x]\nwhen = 1979-05-27\nt = 01:30:00\n").unwrap();
        assert_eq!(doc["x"]["when"], "1979-05-27");
        assert_eq!(doc["x"]["t"], "01:30:00");
        let err = toml_document("x = nan\n").unwrap_err();
        assert_eq!(err.field, "x");
    }
}
