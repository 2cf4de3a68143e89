//! [`JobSpec`]: what to run, where and how, with the rules every job
//! description must satisfy ([`JobSpec::validate`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use xtreem_directory::Query;

use crate::array::ArrayRange;
use crate::duration::format_duration;
use crate::error::{SpecError, quote};
use crate::id::JobId;
use crate::signal::{SIGNAL_MAX, signal_name};
use crate::size::format_size;
use crate::{jsdl, surface};

/// Longest job description accepted by [`JobSpec::parse`], in bytes.
pub const SPEC_TEXT_BYTES_MAX: usize = 1024 * 1024;
/// Longest job name, in characters.
pub const NAME_CHARS_MAX: usize = 128;
/// Longest path (executable, stdin, working directory, ...), in bytes.
pub const PATH_BYTES_MAX: usize = 4096;
/// Most arguments.
pub const ARGS_MAX: usize = 4096;
/// Longest argument, and longest `NAME=value` environment string, in bytes
/// (Linux's `MAX_ARG_STRLEN`).
pub const ARG_BYTES_MAX: usize = 128 * 1024;
/// Most environment variables.
pub const ENV_VARS_MAX: usize = 4096;
/// Longest environment variable name, in bytes.
pub const ENV_NAME_BYTES_MAX: usize = 256;
/// Most bytes of arguments and environment together (each string counted
/// with its terminating NUL, as the kernel does), so that a description
/// always fits in one RPC message.
pub const ARGS_ENV_BYTES_MAX: usize = 512 * 1024;
/// Environment variables starting with this are set by the node (rank,
/// size, host list, array index) and refused in a description.
pub const RESERVED_ENV_PREFIX: &str = "XOS_";
/// Cores per unit.
pub const CORES_MAX: u32 = 1024;
/// Memory per unit.
pub const MEMORY_BYTES_MIN: u64 = 1 << 20;
pub const MEMORY_BYTES_MAX: u64 = 64 << 40;
pub const MEMORY_BYTES_DEFAULT: u64 = 256 << 20;
/// Longest wall time: 31 days.
pub const WALLTIME_SECS_MAX: u64 = 31 * 24 * 3600;
/// Most units (processes) of one job.
pub const COUNT_MAX: u32 = 10_000;
pub const PRIORITY_MIN: i32 = -1000;
pub const PRIORITY_MAX: i32 = 1000;
/// Most restarts after node failures.
pub const MAX_RESTARTS_MAX: u32 = 100;
/// The restart budget when `restart = "on-node-failure"` says no number.
pub const MAX_RESTARTS_DEFAULT: u32 = 3;
/// Most dependencies (`after_ok` and `after_any` together).
pub const DEPENDENCIES_MAX: usize = 1000;
/// Most checkpoint files.
pub const CHECKPOINT_FILES_MAX: usize = 64;
/// Longest reservation id, in bytes.
pub const RESERVATION_BYTES_MAX: usize = 128;
/// Longest VO name and group path segment (the VO service's rule).
pub const VO_NAME_BYTES_MAX: usize = 63;

/// A job description, checked by [`JobSpec::validate`].
///
/// Read one with [`JobSpec::parse`] (TOML, JSON or JSDL), send it with
/// [`JobSpec::to_json`] and read what arrives with [`JobSpec::from_json`];
/// the crate documentation describes the format.
///
/// The derived `Serialize`/`Deserialize` give the structural form of the
/// Rust fields (for the node's own storage, e.g. postcard); it is not the
/// user format, and deserializing it does not validate. For anything that
/// crossed a trust boundary use [`JobSpec::from_json`], or call
/// [`JobSpec::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// 1 to 128 printable characters without `/`; defaults to the file name
    /// of the executable.
    pub name: String,
    /// Absolute, or relative to the working directory; at most 4096 bytes,
    /// no NUL.
    pub executable: String,
    /// At most 4096, each at most 128 KiB, no NUL.
    pub args: Vec<String>,
    /// Names `[A-Za-z_][A-Za-z0-9_]*`, not starting with `XOS_`.
    pub env: BTreeMap<String, String>,
    /// Paths relative to the working directory, or absolute.
    pub stdin: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Where the units start; `None` lets the node choose (a scratch
    /// directory of the job).
    pub workdir: Option<String>,
    /// What each unit needs.
    pub resources: Resources,
    /// Units (processes) to start, 1 to 10,000. Each unit gets its rank,
    /// the size and the host list from the node (`XOS_` variables).
    pub count: u32,
    /// Most units on one node; `None` = any number.
    pub per_node: Option<u32>,
    /// A directory query the chosen nodes must match, e.g.
    /// `cores>=2 && arch==x86_64`.
    pub constraints: Option<String>,
    /// The VO to run as, and optionally a group of it (`/physics/cms`,
    /// whose first segment is the VO).
    pub vo: Option<String>,
    pub group: Option<String>,
    /// -1000 to 1000; higher runs first.
    pub priority: i32,
    pub restart: RestartPolicy,
    /// Start only after these jobs succeeded (`after_ok`) or ended in any
    /// way (`after_any`). An array job id stands for all its elements.
    pub after_ok: Vec<JobId>,
    pub after_any: Vec<JobId>,
    /// Run one job per index instead (see [`JobSpec::with_array_index`]).
    pub array: Option<ArrayRange>,
    pub checkpoint: Option<CheckpointSpec>,
    /// Run inside this reservation.
    pub reservation: Option<String>,
}

/// What each unit of a job needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// 1 to 1024; default 1.
    pub cores: u32,
    /// 1 MiB to 64 TiB; default 256 MiB.
    pub memory_bytes: u64,
    /// 1 second to 31 days; `None` = no limit but the node's.
    pub walltime_secs: Option<u64>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cores: 1,
            memory_bytes: MEMORY_BYTES_DEFAULT,
            walltime_secs: None,
        }
    }
}

/// What happens to a job whose node fails (a job that fails by itself is
/// never restarted). The default is [`RestartPolicy::Never`]: rerunning a
/// job that may have had side effects must be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Never,
    /// Start the lost units again elsewhere, at most `max_restarts` times
    /// (1 to 100) over the job's life.
    OnNodeFailure { max_restarts: u32 },
}

/// Self-checkpointing, as HTCondor does it: the program saves its state in
/// `files` and either exits with `exit_code` (meaning "checkpointed, run me
/// again") or is sent `signal` when the node wants it to checkpoint (before
/// its wall time ends, before it is moved). At least one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSpec {
    /// 1 to 255.
    pub exit_code: Option<i32>,
    /// 1 to 64, not KILL or STOP (they cannot be caught).
    pub signal: Option<i32>,
    /// Relative paths in the working directory, without `..`; at most 64.
    pub files: Vec<String>,
}

/// The formats [`JobSpec::parse`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    Toml,
    Json,
    Jsdl,
}

impl SpecFormat {
    /// JSDL when the text starts with `<`, JSON with `{`, TOML otherwise
    /// (leading white space and a byte order mark aside).
    pub fn detect(text: &str) -> SpecFormat {
        match text
            .trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n'])
            .as_bytes()
            .first()
        {
            Some(b'<') => SpecFormat::Jsdl,
            Some(b'{') => SpecFormat::Json,
            _ => SpecFormat::Toml,
        }
    }
}

impl JobSpec {
    /// A job running `executable` with every other field at its default.
    pub fn new(executable: impl Into<String>) -> JobSpec {
        let executable = executable.into();
        JobSpec {
            name: default_name(&executable),
            executable,
            args: Vec::new(),
            env: BTreeMap::new(),
            stdin: None,
            stdout: None,
            stderr: None,
            workdir: None,
            resources: Resources::default(),
            count: 1,
            per_node: None,
            constraints: None,
            vo: None,
            group: None,
            priority: 0,
            restart: RestartPolicy::Never,
            after_ok: Vec::new(),
            after_any: Vec::new(),
            array: None,
            checkpoint: None,
            reservation: None,
        }
    }

    /// Reads and validates a description; `format: None` detects it (see
    /// [`SpecFormat::detect`]).
    pub fn parse(text: &str, format: Option<SpecFormat>) -> Result<JobSpec, SpecError> {
        match format.unwrap_or_else(|| SpecFormat::detect(text)) {
            SpecFormat::Toml => JobSpec::from_toml(text),
            SpecFormat::Json => JobSpec::from_json(text),
            SpecFormat::Jsdl => JobSpec::from_jsdl(text),
        }
    }

    pub fn from_toml(text: &str) -> Result<JobSpec, SpecError> {
        check_text_size(text)?;
        let spec = surface::decode(surface::toml_document(text)?)?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn from_json(text: &str) -> Result<JobSpec, SpecError> {
        check_text_size(text)?;
        let spec = surface::decode(surface::json_document(text)?)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads the JSDL 1.0 subset described in the crate documentation.
    pub fn from_jsdl(text: &str) -> Result<JobSpec, SpecError> {
        check_text_size(text)?;
        let spec = jsdl::decode(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// The canonical JSON form: the user format with every field written
    /// out (memory in bytes, wall time in seconds, signals by name), keys in
    /// a fixed order, no white space. `from_json(&to_json(x)) == x` for a
    /// valid `x`.
    pub fn to_json(&self) -> String {
        surface::encode(self)
    }

    /// The job of one element of an array job: no `array`, and the name
    /// suffixed with `[index]` (cut first if needed so that it stays within
    /// 128 characters). The node, not this, sets `XOS_ARRAY_INDEX`.
    pub fn with_array_index(&self, index: u32) -> JobSpec {
        let suffix = format!("[{index}]");
        let keep = NAME_CHARS_MAX.saturating_sub(suffix.chars().count());
        let base: String = self.name.chars().take(keep).collect();
        JobSpec {
            name: format!("{base}{suffix}"),
            array: None,
            ..self.clone()
        }
    }

    /// Every rule a description must satisfy; the first broken one is
    /// returned, naming its field as the user format spells it.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_path("executable", &self.executable)?;
        if self.executable.ends_with('/') {
            return Err(SpecError::new(
                "executable",
                "names a directory (ends with '/')",
            ));
        }
        check_name(&self.name)?;
        self.check_args_env()?;
        for (field, path) in [
            ("stdin", &self.stdin),
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
            ("workdir", &self.workdir),
        ] {
            if let Some(path) = path {
                check_path(field, path)?;
            }
        }
        check_resources(&self.resources)?;
        check_int("count", self.count, 1, COUNT_MAX)?;
        if let Some(per_node) = self.per_node {
            check_int("per_node", per_node, 1, COUNT_MAX)?;
        }
        if let Some(constraints) = &self.constraints {
            self.check_constraints(constraints)?;
        }
        self.check_vo_group()?;
        check_int("priority", self.priority, PRIORITY_MIN, PRIORITY_MAX)?;
        if let RestartPolicy::OnNodeFailure { max_restarts } = self.restart {
            check_int("max_restarts", max_restarts, 1, MAX_RESTARTS_MAX)?;
        }
        self.check_dependencies()?;
        if let Some(array) = &self.array {
            array.check().map_err(|e| e.at("array"))?;
        }
        if let Some(checkpoint) = &self.checkpoint {
            check_checkpoint(checkpoint)?;
        }
        if let Some(reservation) = &self.reservation {
            check_reservation(reservation)?;
        }
        Ok(())
    }

    fn check_args_env(&self) -> Result<(), SpecError> {
        if self.args.len() > ARGS_MAX {
            return Err(SpecError::new(
                "args",
                format!("{} arguments, more than {ARGS_MAX}", self.args.len()),
            ));
        }
        let mut total = 0usize;
        for (i, arg) in self.args.iter().enumerate() {
            let field = format!("args[{i}]");
            check_no_nul(&field, arg)?;
            if arg.len() > ARG_BYTES_MAX {
                return Err(SpecError::new(
                    field,
                    format!("{} bytes, more than {ARG_BYTES_MAX}", arg.len()),
                ));
            }
            total += arg.len() + 1;
        }
        if self.env.len() > ENV_VARS_MAX {
            return Err(SpecError::new(
                "env",
                format!("{} variables, more than {ENV_VARS_MAX}", self.env.len()),
            ));
        }
        for (name, value) in &self.env {
            let field = env_field(name);
            check_env_name(&field, name)?;
            check_no_nul(&field, value)?;
            let bytes = name.len() + 1 + value.len();
            if bytes > ARG_BYTES_MAX {
                return Err(SpecError::new(
                    field,
                    format!("NAME=value is {bytes} bytes, more than {ARG_BYTES_MAX}"),
                ));
            }
            total += bytes + 1;
        }
        if total > ARGS_ENV_BYTES_MAX {
            return Err(SpecError::new(
                "args",
                format!(
                    "arguments and environment together are {total} bytes, more than {ARGS_ENV_BYTES_MAX}"
                ),
            ));
        }
        Ok(())
    }

    fn check_constraints(&self, text: &str) -> Result<(), SpecError> {
        let query = Query::parse(text).map_err(|e| SpecError::new("constraints", e.to_string()))?;
        let Some(limit) = query.limit() else {
            return Ok(());
        };
        if limit == 0 {
            return Err(SpecError::new(
                "constraints",
                "`limit 0` leaves no node to run on",
            ));
        }
        if let Some(per_node) = self.per_node.filter(|p| *p > 0) {
            let needed = self.count.div_ceil(per_node) as usize;
            if limit < needed {
                return Err(SpecError::new(
                    "constraints",
                    format!(
                        "`limit {limit}` allows {limit} node(s), but count = {} with per_node = {per_node} needs at least {needed}",
                        self.count
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_vo_group(&self) -> Result<(), SpecError> {
        if let Some(vo) = &self.vo {
            check_vo_name("vo", vo)?;
        }
        let Some(group) = &self.group else {
            return Ok(());
        };
        let Some(rest) = group.strip_prefix('/') else {
            return Err(SpecError::new(
                "group",
                format!(
                    "{} is not a group path; write it from the VO down, like /physics/cms",
                    quote(group)
                ),
            ));
        };
        for segment in rest.split('/') {
            check_vo_name("group", segment)?;
        }
        let group_vo = rest.split('/').next().unwrap_or("");
        match &self.vo {
            None => Err(SpecError::new(
                "group",
                "a group needs its VO; set `vo` as well",
            )),
            Some(vo) if vo != group_vo => Err(SpecError::new(
                "group",
                format!(
                    "{} is a group of VO {}, not of {}",
                    quote(group),
                    quote(group_vo),
                    quote(vo)
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    fn check_dependencies(&self) -> Result<(), SpecError> {
        let total = self.after_ok.len() + self.after_any.len();
        if total > DEPENDENCIES_MAX {
            return Err(SpecError::new(
                "after_ok",
                format!("{total} dependencies, more than {DEPENDENCIES_MAX}"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (list, ids) in [("after_ok", &self.after_ok), ("after_any", &self.after_any)] {
            for (i, id) in ids.iter().enumerate() {
                let field = format!("{list}[{i}]");
                id.validate().map_err(|e| e.at(&field))?;
                if !seen.insert(id) {
                    return Err(SpecError::new(
                        field,
                        format!(
                            "job {id} is already listed; a job appears once in after_ok and after_any together"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The name a job gets when it has none: the executable's file name, with
/// control characters replaced and cut to [`NAME_CHARS_MAX`].
pub(crate) fn default_name(executable: &str) -> String {
    let file = executable.rsplit('/').next().unwrap_or(executable);
    file.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(NAME_CHARS_MAX)
        .collect()
}

fn check_text_size(text: &str) -> Result<(), SpecError> {
    if text.len() > SPEC_TEXT_BYTES_MAX {
        return Err(SpecError::new(
            "",
            format!(
                "the description is {} bytes, more than {SPEC_TEXT_BYTES_MAX}",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() {
        return Err(SpecError::new("", "the description is empty"));
    }
    Ok(())
}

/// The wording of an integer range: "must be a positive integer, at most
/// 1024" or "must be an integer from -1000 to 1000".
pub(crate) fn int_rule(min: i128, max: i128) -> String {
    match min {
        1 => format!("must be a positive integer, at most {max}"),
        _ => format!("must be an integer from {min} to {max}"),
    }
}

pub(crate) fn check_int<T: Into<i128>>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), SpecError> {
    let (value, min, max) = (value.into(), min.into(), max.into());
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("{} (got {value})", int_rule(min, max)),
        ))
    }
}

fn check_name(name: &str) -> Result<(), SpecError> {
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_CHARS_MAX {
        return Err(SpecError::new(
            "name",
            format!("must be 1 to {NAME_CHARS_MAX} characters (got {chars})"),
        ));
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(SpecError::new(
            "name",
            format!(
                "{} contains a control character or '/'; use printable characters",
                quote(name)
            ),
        ));
    }
    Ok(())
}

fn check_no_nul(field: &str, text: &str) -> Result<(), SpecError> {
    if text.contains('\0') {
        return Err(SpecError::new(field, "contains a NUL character"));
    }
    Ok(())
}

fn check_path(field: &str, path: &str) -> Result<(), SpecError> {
    if path.is_empty() {
        return Err(SpecError::new(field, "is empty"));
    }
    if path.len() > PATH_BYTES_MAX {
        return Err(SpecError::new(
            field,
            format!("{} bytes, more than {PATH_BYTES_MAX}", path.len()),
        ));
    }
    check_no_nul(field, path)
}

/// `env.NAME`, with a hostile name cut short.
pub(crate) fn env_field(name: &str) -> String {
    let shown: String = name.chars().take(64).collect();
    if shown.len() < name.len() {
        format!("env.{shown}...")
    } else {
        format!("env.{shown}")
    }
}

fn check_env_name(field: &str, name: &str) -> Result<(), SpecError> {
    let mut bytes = name.bytes();
    let valid = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= ENV_NAME_BYTES_MAX;
    if !valid {
        return Err(SpecError::new(
            field,
            format!(
                "{} is not a variable name: use letters, digits and '_', not starting with a digit, at most {ENV_NAME_BYTES_MAX} bytes",
                quote(name)
            ),
        ));
    }
    if name.starts_with(RESERVED_ENV_PREFIX) {
        return Err(SpecError::new(
            field,
            format!(
                "names starting with {RESERVED_ENV_PREFIX} are set by the node (rank, size, host list, array index)"
            ),
        ));
    }
    Ok(())
}

fn check_resources(r: &Resources) -> Result<(), SpecError> {
    check_int("resources.cores", r.cores, 1, CORES_MAX)?;
    check_memory("resources.memory", r.memory_bytes)?;
    if let Some(secs) = r.walltime_secs {
        check_walltime("resources.walltime", secs)?;
    }
    Ok(())
}

pub(crate) fn check_memory(field: &str, bytes: u64) -> Result<(), SpecError> {
    if (MEMORY_BYTES_MIN..=MEMORY_BYTES_MAX).contains(&bytes) {
        return Ok(());
    }
    Err(SpecError::new(
        field,
        format!(
            "must be from {} to {} (got {})",
            format_size(MEMORY_BYTES_MIN),
            format_size(MEMORY_BYTES_MAX),
            format_size(bytes)
        ),
    ))
}

pub(crate) fn check_walltime(field: &str, secs: u64) -> Result<(), SpecError> {
    if (1..=WALLTIME_SECS_MAX).contains(&secs) {
        return Ok(());
    }
    Err(SpecError::new(
        field,
        format!(
            "must be from 1s to {} (got {})",
            format_duration(WALLTIME_SECS_MAX),
            format_duration(secs)
        ),
    ))
}

/// The VO service's rule for VO and group names.
fn check_vo_name(field: &str, name: &str) -> Result<(), SpecError> {
    let valid = !name.is_empty()
        && name.len() <= VO_NAME_BYTES_MAX
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
        && !name.starts_with(['-', '.']);
    if valid {
        return Ok(());
    }
    Err(SpecError::new(
        field,
        format!(
            "{} is not a valid name: use 1-{VO_NAME_BYTES_MAX} of a-z, 0-9, '-', '_', '.', not starting with '-' or '.'",
            quote(name)
        ),
    ))
}

pub(crate) fn check_signal(field: &str, signal: i32) -> Result<(), SpecError> {
    check_int(field, signal, 1, SIGNAL_MAX)?;
    if signal == libc::SIGKILL || signal == libc::SIGSTOP {
        return Err(SpecError::new(
            field,
            format!(
                "SIG{} cannot be caught, so the program could not checkpoint on it",
                signal_name(signal).unwrap_or("?")
            ),
        ));
    }
    Ok(())
}

fn check_checkpoint(c: &CheckpointSpec) -> Result<(), SpecError> {
    if c.exit_code.is_none() && c.signal.is_none() {
        return Err(SpecError::new(
            "checkpoint",
            "set exit_code, signal or both: how else would the node know when the program checkpointed?",
        ));
    }
    if let Some(code) = c.exit_code {
        check_int("checkpoint.exit_code", code, 1, 255)?;
    }
    if let Some(signal) = c.signal {
        check_signal("checkpoint.signal", signal)?;
    }
    if c.files.len() > CHECKPOINT_FILES_MAX {
        return Err(SpecError::new(
            "checkpoint.files",
            format!("{} files, more than {CHECKPOINT_FILES_MAX}", c.files.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, file) in c.files.iter().enumerate() {
        let field = format!("checkpoint.files[{i}]");
        check_path(&field, file)?;
        if file.starts_with('/') || file.split('/').any(|part| part == "..") {
            return Err(SpecError::new(
                field,
                format!(
                    "{} must be a path inside the working directory: relative, without '..'",
                    quote(file)
                ),
            ));
        }
        if !seen.insert(file) {
            return Err(SpecError::new(
                field,
                format!("{} is listed twice", quote(file)),
            ));
        }
    }
    Ok(())
}

fn check_reservation(id: &str) -> Result<(), SpecError> {
    let valid = !id.is_empty()
        && id.len() <= RESERVATION_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        return Ok(());
    }
    Err(SpecError::new(
        "reservation",
        format!(
            "{} is not a reservation id: use 1-{RESERVATION_BYTES_MAX} of A-Z, a-z, 0-9, '-', '_', '.'",
            quote(id)
        ),
    ))
}
