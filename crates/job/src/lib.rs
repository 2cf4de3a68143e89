//! Jobs of Xtreem's application execution manager: how users describe
//! them, how they are named, and the pure logic the home node applies to
//! them (placement ranking, accounting summaries). No IO.
//!
//! # The job description
//!
//! Users write TOML; the same structure in JSON is accepted, and so is the
//! common subset of JSDL 1.0 (see [`jsdl`]). [`JobSpec::parse`] tells them
//! apart by the first character (`<` JSDL, `{` JSON, else TOML). A complete
//! example, with every key:
//!
//! ```
//! use xtreem_job::{JobSpec, RestartPolicy};
//!
//! let text = r#"
//! name = "sim"                       # default: the executable's file name
//! executable = "/usr/bin/python3"    # required
//! args = ["run.py", "--steps", "10"]
//! stdin = "in.txt"                   # relative to workdir, or absolute
//! stdout = "out.txt"
//! stderr = "err.txt"
//! workdir = "/scratch/x"             # default: a scratch directory of the job
//! count = 4                          # units (processes); default 1
//! per_node = 2                       # at most 2 units on one node
//! constraints = "cores>=2 && arch==x86_64"   # a directory query
//! vo = "physics"                     # implied by group when left out
//! group = "/physics/cms"
//! priority = 10                      # -1000..=1000, default 0
//! restart = "on-node-failure"        # or "never" (the default)
//! max_restarts = 3                   # only with "on-node-failure"; default 3
//! after_ok = ["n1.42"]               # start when these succeeded
//! after_any = ["n1.40_3"]            # ... and these ended in any way
//! array = "1-100:2"                  # one job per index: 1, 3, ..., 99
//! reservation = "r-n1.3"
//!
//! [env]
//! FOO = "bar"                        # names starting with XOS_ are the node's
//!
//! [resources]                        # per unit
//! cores = 2                          # default 1
//! memory = "2GiB"                    # bytes or a size; default 256MiB
//! walltime = "1h30m"                 # seconds, 90s, 15m, 1h30m, 2d, HH:MM:SS
//!
//! [checkpoint]                       # HTCondor-style self-checkpointing
//! exit_code = 85                     # "I saved my state, run me again"
//! signal = "USR2"                    # sent to ask for a checkpoint
//! files = ["state.dat"]              # kept between runs
//! "#;
//! let spec = JobSpec::parse(text, None).unwrap();
//! assert_eq!(spec.resources.memory_bytes, 2 << 30);
//! assert_eq!(spec.resources.walltime_secs, Some(5400));
//! assert_eq!(spec.restart, RestartPolicy::OnNodeFailure { max_restarts: 3 });
//! assert_eq!(spec.array.unwrap().len(), 50);
//!
//! // The canonical JSON form travels between nodes and reads back equal.
//! let wire = spec.to_json();
//! assert_eq!(JobSpec::from_json(&wire).unwrap(), spec);
//!
//! // Errors name the field.
//! let err = JobSpec::parse("executable = \"a\"\n[resources]\ncores = -2\n", None).unwrap_err();
//! assert_eq!(err.field, "resources.cores");
//! assert_eq!(err.to_string(), "resources.cores: must be a positive integer, at most 1024 (got -2)");
//! let err = JobSpec::parse("executable = \"a\"\ncore = 2\n", None).unwrap_err();
//! assert_eq!(err.field, "core");
//! ```
//!
//! Rules beyond the example: unknown keys are refused (with a suggestion
//! for a misspelt one), so are dates and JSON duplicate keys; `name` is 1
//! to 128 printable characters without `/`; `count` is 1 to 10,000; cores 1
//! to 1024 per unit, memory 1 MiB to 64 TiB, wall time 1 s to 31 days;
//! `group` starts with `/` and its first segment is the VO; `constraints`
//! must parse as a directory query (the error gives the position and the
//! token) and its `limit`, if any, must leave enough nodes for
//! `count`/`per_node`; the checkpoint sets `exit_code` (1-255), `signal`
//! (a name such as `USR2`/`SIGUSR2` or a number; not KILL or STOP) or both,
//! and its files are relative paths without `..`. [`JobSpec::validate`]
//! holds them all, and the node runs it again on what arrives over the
//! network.
//!
//! In JSON, the same keys; `null` counts as absent:
//!
//! ```
//! # use xtreem_job::JobSpec;
//! let spec = JobSpec::parse(r#"{"executable": "/bin/hostname", "count": 8,
//!     "resources": {"memory": 1073741824, "walltime": "10m"}}"#, None).unwrap();
//! assert_eq!(spec.name, "hostname");
//! assert_eq!(spec.count, 8);
//! ```
//!
//! Each unit learns its rank, the job's size and the host list from
//! environment variables the node sets (`XOS_` names); an element of an
//! array job also learns its index. Ids: job `n1.42` (home node `n1`,
//! sequence 42), array element `n1.42_7`, unit `n1.42.3` (see [`JobId`],
//! [`UnitId`]).

mod acct;
mod array;
mod duration;
mod error;
mod id;
pub mod jsdl;
pub mod placement;
mod signal;
mod size;
mod spec;
mod surface;
#[cfg(test)]
mod tests;

pub use acct::{AcctFilter, AcctLine, UsageRecord, summarize};
pub use array::{ARRAY_ELEMENTS_MAX, ArrayRange};
pub use duration::{format_duration, parse_duration};
pub use error::SpecError;
pub use id::{JobId, UnitId};
pub use placement::{Candidate, rank};
pub use signal::{SIGNAL_MAX, parse_signal, signal_name};
pub use size::{format_size, parse_size};
pub use spec::{
    ARG_BYTES_MAX, ARGS_ENV_BYTES_MAX, ARGS_MAX, CHECKPOINT_FILES_MAX, CORES_MAX, COUNT_MAX,
    CheckpointSpec, DEPENDENCIES_MAX, ENV_NAME_BYTES_MAX, ENV_VARS_MAX, JobSpec,
    MAX_RESTARTS_DEFAULT, MAX_RESTARTS_MAX, MEMORY_BYTES_DEFAULT, MEMORY_BYTES_MAX,
    MEMORY_BYTES_MIN, NAME_CHARS_MAX, PATH_BYTES_MAX, PRIORITY_MAX, PRIORITY_MIN,
    RESERVATION_BYTES_MAX, RESERVED_ENV_PREFIX, Resources, RestartPolicy, SPEC_TEXT_BYTES_MAX,
    SpecFormat, VO_NAME_BYTES_MAX, WALLTIME_SECS_MAX,
};
