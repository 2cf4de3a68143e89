//! Job descriptions end to end: the full TOML example, JSON, the canonical
//! form, every refusal naming its field, and the JSDL subset.

use std::collections::BTreeMap;

use crate::*;

const FULL: &str = r#"
name = "sim"
executable = "/usr/bin/python3"
args = ["run.py", "--steps", "10"]
stdin = "in.txt"
stdout = "out.txt"
stderr = "err.txt"
workdir = "/scratch/x"
count = 4
per_node = 2
constraints = "cores>=2 && arch==x86_64"
vo = "physics"
group = "/physics/cms"
priority = 10
restart = "on-node-failure"
max_restarts = 5
after_ok = ["n1.42"]
after_any = ["n1.40_3"]
array = "1-100:2"
reservation = "r-n1.3"

[env]
FOO = "bar"
_X1 = ""

[resources]
cores = 2
memory = "2GiB"
walltime = "1h30m"

[checkpoint]
exit_code = 85
signal = "SIGUSR2"
files = ["state.dat", "more/state.idx"]
"#;

fn full() -> JobSpec {
    JobSpec::parse(FULL, None).unwrap()
}

/// The field and message of the error a TOML document gives.
fn toml_error(text: &str) -> SpecError {
    match JobSpec::from_toml(text) {
        Ok(spec) => panic!("accepted {text:?} as {spec:?}"),
        Err(e) => e,
    }
}

fn refused(body: &str, field: &str, says: &str) {
    let text = format!("executable = \"/bin/true\"\n{body}\n");
    let err = toml_error(&text);
    assert_eq!(err.field, field, "{body:?}: {err}");
    assert!(err.message.contains(says), "{body:?}: {err}");
}

#[test]
fn the_full_example_reads_every_field() {
    let spec = full();
    assert_eq!(spec.name, "sim");
    assert_eq!(spec.executable, "/usr/bin/python3");
    assert_eq!(spec.args, ["run.py", "--steps", "10"]);
    assert_eq!(
        spec.env,
        BTreeMap::from([("FOO".into(), "bar".into()), ("_X1".into(), "".into())])
    );
    assert_eq!(spec.stdin.as_deref(), Some("in.txt"));
    assert_eq!(spec.stdout.as_deref(), Some("out.txt"));
    assert_eq!(spec.stderr.as_deref(), Some("err.txt"));
    assert_eq!(spec.workdir.as_deref(), Some("/scratch/x"));
    assert_eq!(
        spec.resources,
        Resources {
            cores: 2,
            memory_bytes: 2 << 30,
            walltime_secs: Some(5400)
        }
    );
    assert_eq!(spec.count, 4);
    assert_eq!(spec.per_node, Some(2));
    assert_eq!(
        spec.constraints.as_deref(),
        Some("cores>=2 && arch==x86_64")
    );
    assert_eq!(spec.vo.as_deref(), Some("physics"));
    assert_eq!(spec.group.as_deref(), Some("/physics/cms"));
    assert_eq!(spec.priority, 10);
    assert_eq!(
        spec.restart,
        RestartPolicy::OnNodeFailure { max_restarts: 5 }
    );
    assert_eq!(spec.after_ok, [JobId::new("n1", 42)]);
    assert_eq!(spec.after_any, [JobId::new("n1", 40).element(3)]);
    assert_eq!(spec.array, Some(ArrayRange::new(1, 100, 2).unwrap()));
    assert_eq!(
        spec.checkpoint,
        Some(CheckpointSpec {
            exit_code: Some(85),
            signal: Some(libc::SIGUSR2),
            files: vec!["state.dat".into(), "more/state.idx".into()],
        })
    );
    assert_eq!(spec.reservation.as_deref(), Some("r-n1.3"));
}

#[test]
fn defaults_fill_what_is_left_out() {
    let spec = JobSpec::parse("executable = \"/opt/app/bin/solve\"", None).unwrap();
    assert_eq!(spec, JobSpec::new("/opt/app/bin/solve"));
    assert_eq!(spec.name, "solve");
    assert_eq!(spec.count, 1);
    assert_eq!(spec.per_node, None);
    assert_eq!(spec.resources.cores, 1);
    assert_eq!(spec.resources.memory_bytes, 256 << 20);
    assert_eq!(spec.resources.walltime_secs, None);
    assert_eq!(spec.priority, 0);
    assert_eq!(spec.restart, RestartPolicy::Never);
    assert!(spec.args.is_empty() && spec.env.is_empty());
    assert_eq!(JobSpec::new("relative").name, "relative");
    // A TOML local time reads as a clock duration.
    let spec = JobSpec::from_toml("executable = \"a\"\n[resources]\nwalltime = 01:30:00").unwrap();
    assert_eq!(spec.resources.walltime_secs, Some(5400));
    let spec = JobSpec::from_toml("executable = \"a\"\nrestart = \"on-node-failure\"").unwrap();
    assert_eq!(
        spec.restart,
        RestartPolicy::OnNodeFailure { max_restarts: 3 }
    );
}

#[test]
fn json_reads_the_same_structure() {
    let json = r#"{
        "name": "sim", "executable": "/usr/bin/python3",
        "args": ["run.py", "--steps", "10"],
        "env": {"FOO": "bar", "_X1": ""},
        "stdin": "in.txt", "stdout": "out.txt", "stderr": "err.txt",
        "workdir": "/scratch/x",
        "resources": {"cores": 2, "memory": "2GiB", "walltime": 5400},
        "count": 4, "per_node": 2,
        "constraints": "cores>=2 && arch==x86_64",
        "vo": "physics", "group": "/physics/cms", "priority": 10,
        "restart": "on-node-failure", "max_restarts": 5,
        "after_ok": ["n1.42"], "after_any": ["n1.40_3"],
        "array": "1-100:2",
        "checkpoint": {"exit_code": 85, "signal": 12, "files": ["state.dat", "more/state.idx"]},
        "reservation": "r-n1.3",
        "stdin": null
    }"#;
    // `stdin` twice is a duplicate key, refused.
    let err = JobSpec::parse(json, None).unwrap_err();
    assert!(err.message.contains("duplicate key \"stdin\""), "{err}");
    let json = json.replace(",\n        \"stdin\": null", "");
    assert_eq!(JobSpec::parse(&json, None).unwrap(), full());
    // null counts as absent.
    let spec = JobSpec::from_json(r#"{"executable": "a", "stdin": null, "array": null}"#).unwrap();
    assert_eq!(spec, JobSpec::new("a"));
}

#[test]
fn canonical_json_round_trips() {
    let spec = full();
    let wire = spec.to_json();
    assert_eq!(JobSpec::from_json(&wire).unwrap(), spec);
    assert_eq!(JobSpec::parse(&wire, None).unwrap(), spec);
    assert!(wire.contains(r#""memory":2147483648"#), "{wire}");
    assert!(wire.contains(r#""walltime":5400"#), "{wire}");
    assert!(wire.contains(r#""signal":"USR2""#), "{wire}");
    assert!(wire.contains(r#""array":"1-100:2""#), "{wire}");
    // Stable: the same spec always gives the same text.
    assert_eq!(JobSpec::from_json(&wire).unwrap().to_json(), wire);

    assert_eq!(
        JobSpec::new("/bin/true").to_json(),
        r#"{"name":"true","executable":"/bin/true","args":[],"env":{},"resources":{"cores":1,"memory":268435456},"count":1,"priority":0,"restart":"never","after_ok":[],"after_any":[]}"#
    );

    let mut odd = JobSpec::new("/bin/x");
    odd.checkpoint = Some(CheckpointSpec {
        exit_code: None,
        signal: Some(40),
        files: vec![],
    });
    odd.array = Some(ArrayRange::new(5, 5, 3).unwrap());
    odd.name = "ünïcode \"quoted\" name".into();
    odd.args = vec!["a\nb".into(), "\u{1F600}".into()];
    odd.validate().unwrap();
    assert_eq!(JobSpec::from_json(&odd.to_json()).unwrap(), odd);
}

#[test]
fn structural_serde_round_trips_too() {
    let spec = full();
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<JobSpec>(&text).unwrap(), spec);
}

#[test]
fn format_detection() {
    assert_eq!(SpecFormat::detect("  <?xml"), SpecFormat::Jsdl);
    assert_eq!(SpecFormat::detect("\u{feff}\n{"), SpecFormat::Json);
    assert_eq!(SpecFormat::detect("# comment\n{"), SpecFormat::Toml);
    assert_eq!(SpecFormat::detect(""), SpecFormat::Toml);
    // An explicit format wins.
    assert!(JobSpec::parse("{\"executable\": \"a\"}", Some(SpecFormat::Toml)).is_err());
    assert!(JobSpec::parse("executable = \"a\"", Some(SpecFormat::Json)).is_err());
}

#[test]
fn bad_documents_are_refused_as_a_whole() {
    for text in [
        "",
        "   \n",
        "executable = ",
        "[resources\n",
        "{\"executable\": \"a\"",
        "[1, 2]",
    ] {
        let err = JobSpec::parse(text, None).unwrap_err();
        assert_eq!(err.field, "", "{text:?}: {err}");
    }
    let err = JobSpec::parse("executable = \"a\"\nexecutable = \"b\"\n", None).unwrap_err();
    assert!(
        err.message.starts_with("line 2, column 1 (`executable`)"),
        "{err}"
    );
    let huge = format!("executable = \"a\"\n#{}\n", "x".repeat(SPEC_TEXT_BYTES_MAX));
    let err = JobSpec::parse(&huge, None).unwrap_err();
    assert!(err.message.contains("bytes, more than"), "{err}");
    let err = JobSpec::from_json("[1]").unwrap_err();
    assert!(err.message.contains("must be a table"), "{err}");
}

#[test]
fn errors_name_the_field() {
    let err = toml_error("args = []\n");
    assert_eq!(err.field, "executable");
    assert!(err.message.contains("missing"));
    assert_eq!(toml_error("{}").field, "");
    assert_eq!(JobSpec::from_json("{}").unwrap_err().field, "executable");
    assert_eq!(
        JobSpec::from_json(r#"{"executable": null}"#)
            .unwrap_err()
            .field,
        "executable"
    );

    let cases: &[(&str, &str, &str)] = &[
        ("core = 2", "core", "unknown key"),
        (
            "executabel = \"x\"",
            "executabel",
            "did you mean `executable`",
        ),
        (
            "[resources]\ncore = 2",
            "resources.core",
            "did you mean `cores`",
        ),
        (
            "[resources]\ncores = -2",
            "resources.cores",
            "must be a positive integer",
        ),
        (
            "[resources]\ncores = 0",
            "resources.cores",
            "positive integer, at most 1024 (got 0)",
        ),
        ("[resources]\ncores = 2000", "resources.cores", "(got 2000)"),
        (
            "[resources]\ncores = \"2\"",
            "resources.cores",
            "(got a string)",
        ),
        (
            "[resources]\ncores = 1.5",
            "resources.cores",
            "(got a decimal number)",
        ),
        ("resources = 4", "resources", "must be a table"),
        (
            "[resources]\nmemory = \"-1GiB\"",
            "resources.memory",
            "negative",
        ),
        (
            "[resources]\nmemory = -5",
            "resources.memory",
            "must be a positive size",
        ),
        (
            "[resources]\nmemory = 0",
            "resources.memory",
            "must be from 1MiB to 64TiB",
        ),
        (
            "[resources]\nmemory = \"lots\"",
            "resources.memory",
            "is not a size",
        ),
        (
            "[resources]\nmemory = \"2XB\"",
            "resources.memory",
            "unknown unit",
        ),
        (
            "[resources]\nmemory = \"512KiB\"",
            "resources.memory",
            "(got 512KiB)",
        ),
        (
            "[resources]\nmemory = \"100TiB\"",
            "resources.memory",
            "64TiB",
        ),
        (
            "[resources]\nmemory = 1.5",
            "resources.memory",
            "positive size",
        ),
        (
            "[resources]\nwalltime = 0",
            "resources.walltime",
            "from 1s to 31d",
        ),
        (
            "[resources]\nwalltime = \"32d\"",
            "resources.walltime",
            "(got 32d)",
        ),
        (
            "[resources]\nwalltime = \"soon\"",
            "resources.walltime",
            "not a duration",
        ),
        (
            "[resources]\nwalltime = -1",
            "resources.walltime",
            "positive duration",
        ),
        ("count = 0", "count", "positive integer, at most 10000"),
        ("count = 10001", "count", "(got 10001)"),
        ("per_node = 0", "per_node", "positive integer"),
        (
            "priority = 1001",
            "priority",
            "from -1000 to 1000 (got 1001)",
        ),
        ("priority = -1001", "priority", "from -1000 to 1000"),
        (
            "restart = \"always\"",
            "restart",
            "\"never\" or \"on-node-failure\"",
        ),
        (
            "restart = true",
            "restart",
            "\"never\" or \"on-node-failure\"",
        ),
        ("max_restarts = 3", "max_restarts", "only goes with restart"),
        (
            "restart = \"never\"\nmax_restarts = 3",
            "max_restarts",
            "only goes with",
        ),
        (
            "restart = \"on-node-failure\"\nmax_restarts = 0",
            "max_restarts",
            "positive integer",
        ),
        (
            "restart = \"on-node-failure\"\nmax_restarts = 101",
            "max_restarts",
            "at most 100",
        ),
        ("[env]\n1FOO = \"x\"", "env.1FOO", "not a variable name"),
        ("[env]\n\"A-B\" = \"x\"", "env.A-B", "not a variable name"),
        ("[env]\nXOS_RANK = \"1\"", "env.XOS_RANK", "set by the node"),
        ("[env]\nFOO = 1", "env.FOO", "must be a string"),
        ("[env]\nFOO = \"a\\u0000b\"", "env.FOO", "NUL"),
        ("env = [\"FOO=1\"]", "env", "must be a table"),
        ("args = \"x\"", "args", "must be a list of strings"),
        ("args = [\"a\", 1]", "args[1]", "must be a string"),
        ("args = [\"a\\u0000\"]", "args[0]", "NUL"),
        ("name = \"\"", "name", "1 to 128 characters"),
        ("name = \"a/b\"", "name", "'/'"),
        ("name = \"a\\tb\"", "name", "control character"),
        ("stdout = \"\"", "stdout", "empty"),
        ("workdir = \"/x\\u0000\"", "workdir", "NUL"),
        (
            "constraints = \"cores>=4 && mem>==8GiB\"",
            "constraints",
            "at 15 (`>==`)",
        ),
        (
            "constraints = \"speed>3\"",
            "constraints",
            "unknown attribute",
        ),
        (
            "constraints = \"cores>=1 limit 0\"",
            "constraints",
            "at 15 (`0`)",
        ),
        (
            "count = 4\nper_node = 2\nconstraints = \"limit 1\"",
            "constraints",
            "needs at least 2",
        ),
        ("vo = \"Physics\"", "vo", "not a valid name"),
        ("group = \"physics/cms\"", "group", "not a group path"),
        ("group = \"/physics//cms\"", "group", "not a valid name"),
        (
            "vo = \"physics\"\ngroup = \"/bio/x\"",
            "group",
            "is a group of VO \"bio\"",
        ),
        ("after_ok = [\"bad\"]", "after_ok[0]", "is not a job id"),
        ("after_ok = \"n1.4\"", "after_ok", "must be a list"),
        (
            "after_ok = [\"n1.4\"]\nafter_any = [\"n1.4\"]",
            "after_any[0]",
            "already listed",
        ),
        (
            "after_ok = [\"n1.4\", \"n1.4\"]",
            "after_ok[1]",
            "already listed",
        ),
        ("array = \"5-1\"", "array", "before it starts"),
        ("array = 5", "array", "must be a string"),
        ("array = \"1-200000\"", "array", "more than 100000"),
        ("[checkpoint]", "checkpoint", "exit_code, signal or both"),
        (
            "[checkpoint]\nexit_code = 0",
            "checkpoint.exit_code",
            "positive integer, at most 255",
        ),
        (
            "[checkpoint]\nexit_code = 256",
            "checkpoint.exit_code",
            "(got 256)",
        ),
        (
            "[checkpoint]\nsignal = \"KILL\"",
            "checkpoint.signal",
            "cannot be caught",
        ),
        (
            "[checkpoint]\nsignal = 19",
            "checkpoint.signal",
            "SIGSTOP cannot be caught",
        ),
        (
            "[checkpoint]\nsignal = \"FOO\"",
            "checkpoint.signal",
            "is not a signal",
        ),
        (
            "[checkpoint]\nsignal = 65",
            "checkpoint.signal",
            "at most 64",
        ),
        (
            "[checkpoint]\nexit_code = 85\nfiles = [\"../x\"]",
            "checkpoint.files[0]",
            "without '..'",
        ),
        (
            "[checkpoint]\nexit_code = 85\nfiles = [\"a\", \"/x\"]",
            "checkpoint.files[1]",
            "relative",
        ),
        (
            "[checkpoint]\nexit_code = 85\nfiles = [\"a\", \"a\"]",
            "checkpoint.files[1]",
            "twice",
        ),
        (
            "[checkpoint]\nexit_code = 85\nfile = []",
            "checkpoint.file",
            "did you mean `files`",
        ),
        (
            "reservation = \"a b\"",
            "reservation",
            "not a reservation id",
        ),
        (
            "[resources]\nwhen = 1979-05-27",
            "resources.when",
            "unknown key",
        ),
        (
            "[resources]\nwalltime = 1979-05-27",
            "resources.walltime",
            "not a duration",
        ),
    ];
    for (body, field, says) in cases {
        refused(body, field, says);
    }
}

#[test]
fn executable_rules() {
    for (text, says) in [
        ("executable = \"\"", "empty"),
        ("executable = \"/opt/\"", "directory"),
        ("executable = \"a\\u0000\"", "NUL"),
        ("executable = 5", "must be a string"),
    ] {
        let err = toml_error(text);
        assert_eq!(err.field, "executable", "{text}");
        assert!(err.message.contains(says), "{text}: {err}");
    }
    let long = format!("executable = \"/{}\"", "a".repeat(PATH_BYTES_MAX));
    assert!(toml_error(&long).message.contains("more than 4096"));
    // A control character in the executable does not make the default name
    // invalid.
    let spec = JobSpec::from_json(r#"{"executable": "/bin/a\u0007b"}"#).unwrap();
    assert_eq!(spec.name, "a?b");
    // A long executable name is cut to a valid job name.
    let spec = JobSpec::new(format!("/x/{}", "n".repeat(300)));
    assert_eq!(spec.name.chars().count(), NAME_CHARS_MAX);
    spec.validate().unwrap();
}

#[test]
fn a_group_implies_its_vo() {
    let spec = JobSpec::from_toml("executable = \"a\"\ngroup = \"/physics/cms\"").unwrap();
    assert_eq!(spec.vo.as_deref(), Some("physics"));
    let mut spec = spec;
    spec.vo = None;
    assert_eq!(spec.validate().unwrap_err().field, "group");
}

#[test]
fn size_limits_on_args_and_env() {
    let mut spec = JobSpec::new("/bin/echo");
    spec.args = vec!["x".into(); ARGS_MAX + 1];
    assert_eq!(spec.validate().unwrap_err().field, "args");
    spec.args = vec!["x".repeat(ARG_BYTES_MAX + 1)];
    assert_eq!(spec.validate().unwrap_err().field, "args[0]");
    spec.args = vec!["x".repeat(ARG_BYTES_MAX); 4];
    spec.validate().unwrap_err();
    let err = spec.validate().unwrap_err();
    assert!(err.message.contains("together"), "{err}");
    spec.args = vec!["x".repeat(ARG_BYTES_MAX - 1); 3];
    spec.validate().unwrap();
    spec.env.insert("BIG".into(), "y".repeat(ARG_BYTES_MAX));
    assert_eq!(spec.validate().unwrap_err().field, "env.BIG");
    spec.env.insert("BIG".into(), "y".repeat(ARG_BYTES_MAX - 4));
    assert!(spec.validate().unwrap_err().message.contains("together"));
    let mut spec = JobSpec::new("/bin/echo");
    spec.env
        .insert("N".repeat(ENV_NAME_BYTES_MAX + 1), "v".into());
    let err = spec.validate().unwrap_err();
    assert!(err.field.ends_with("..."), "{err}");
}

#[test]
fn validate_catches_specs_built_in_code() {
    let ok = JobSpec::new("/bin/true");
    ok.validate().unwrap();
    let check = |change: &dyn Fn(&mut JobSpec), field: &str| {
        let mut spec = ok.clone();
        change(&mut spec);
        let err = spec.validate().unwrap_err();
        assert_eq!(err.field, field, "{err}");
    };
    check(&|s| s.per_node = Some(0), "per_node");
    check(&|s| s.count = 0, "count");
    check(&|s| s.resources.cores = 0, "resources.cores");
    check(&|s| s.resources.memory_bytes = 0, "resources.memory");
    check(
        &|s| s.resources.walltime_secs = Some(0),
        "resources.walltime",
    );
    check(&|s| s.priority = i32::MIN, "priority");
    check(
        &|s| s.restart = RestartPolicy::OnNodeFailure { max_restarts: 0 },
        "max_restarts",
    );
    check(
        &|s| s.after_ok = vec![JobId::new("Bad Home", 1)],
        "after_ok[0]",
    );
    check(
        &|s| s.after_any = vec![JobId::new("n1", 1); DEPENDENCIES_MAX + 1],
        "after_ok",
    );
    check(
        &|s| {
            s.array = Some(ArrayRange {
                start: 1,
                end: 2,
                step: 0,
            })
        },
        "array",
    );
    check(
        &|s| {
            s.checkpoint = Some(CheckpointSpec {
                exit_code: Some(-1),
                signal: None,
                files: vec![],
            })
        },
        "checkpoint.exit_code",
    );
    check(
        &|s| {
            s.checkpoint = Some(CheckpointSpec {
                exit_code: None,
                signal: Some(libc::SIGKILL),
                files: vec![],
            })
        },
        "checkpoint.signal",
    );
    check(
        &|s| {
            s.checkpoint = Some(CheckpointSpec {
                exit_code: Some(85),
                signal: None,
                files: vec!["f".into(); CHECKPOINT_FILES_MAX + 1],
            })
        },
        "checkpoint.files",
    );
    check(&|s| s.reservation = Some(String::new()), "reservation");
    check(&|s| s.name = "n".repeat(NAME_CHARS_MAX + 1), "name");
}

#[test]
fn array_elements() {
    let spec = full();
    let element = spec.with_array_index(7);
    assert_eq!(element.name, "sim[7]");
    assert_eq!(element.array, None);
    assert!(!element.env.contains_key("XOS_ARRAY_INDEX"));
    assert_eq!(element.after_ok, spec.after_ok);
    element.validate().unwrap();

    let mut long = JobSpec::new("/bin/x");
    long.name = "n".repeat(NAME_CHARS_MAX);
    let element = long.with_array_index(u32::MAX);
    assert_eq!(element.name.chars().count(), NAME_CHARS_MAX);
    assert!(element.name.ends_with("[4294967295]"));
    element.validate().unwrap();
}

// ---------------------------------------------------------------- JSDL

/// A JSDL document as an XtreemOS user would write it: an MPI-style job of
/// 8 CPUs in 2-core processes on two named hosts, with an extension element
/// of another namespace that is skipped.
const JSDL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- A parallel solver run. -->
<jsdl:JobDefinition xmlns:jsdl="http://schemas.ggf.org/jsdl/2005/11/jsdl"
    xmlns:jsdl-posix="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix"
    xmlns:site="urn:example:site-extensions" id="solver-run">
  <jsdl:JobDescription>
    <jsdl:JobIdentification>
      <jsdl:JobName> heat-solver </jsdl:JobName>
      <jsdl:Description>Heat equation on a 4096^2 grid</jsdl:Description>
      <jsdl:JobAnnotation>campaign-7</jsdl:JobAnnotation>
    </jsdl:JobIdentification>
    <jsdl:Application>
      <jsdl:ApplicationName>heat</jsdl:ApplicationName>
      <jsdl-posix:POSIXApplication>
        <jsdl-posix:Executable>/opt/heat/bin/solve</jsdl-posix:Executable>
        <jsdl-posix:Argument>--grid</jsdl-posix:Argument>
        <jsdl-posix:Argument>4096</jsdl-posix:Argument>
        <jsdl-posix:Argument>a &amp; b</jsdl-posix:Argument>
        <jsdl-posix:Input>grid.in</jsdl-posix:Input>
        <jsdl-posix:Output>solve.out</jsdl-posix:Output>
        <jsdl-posix:Error>solve.err</jsdl-posix:Error>
        <jsdl-posix:WorkingDirectory>/scratch/heat</jsdl-posix:WorkingDirectory>
        <jsdl-posix:Environment name="OMP_NUM_THREADS">2</jsdl-posix:Environment>
        <jsdl-posix:Environment name="MODE">fast</jsdl-posix:Environment>
        <jsdl-posix:WallTimeLimit>7200</jsdl-posix:WallTimeLimit>
      </jsdl-posix:POSIXApplication>
    </jsdl:Application>
    <jsdl:Resources>
      <jsdl:CandidateHosts>
        <jsdl:HostName>node-a</jsdl:HostName>
        <jsdl:HostName>node-b</jsdl:HostName>
      </jsdl:CandidateHosts>
      <jsdl:OperatingSystem>
        <jsdl:OperatingSystemType>
          <jsdl:OperatingSystemName>LINUX</jsdl:OperatingSystemName>
        </jsdl:OperatingSystemType>
      </jsdl:OperatingSystem>
      <jsdl:CPUArchitecture>
        <jsdl:CPUArchitectureName>x86_64</jsdl:CPUArchitectureName>
      </jsdl:CPUArchitecture>
      <jsdl:IndividualCPUCount>
        <jsdl:Exact>2.0</jsdl:Exact>
      </jsdl:IndividualCPUCount>
      <jsdl:TotalCPUCount>
        <jsdl:LowerBoundedRange>8</jsdl:LowerBoundedRange>
      </jsdl:TotalCPUCount>
      <jsdl:TotalPhysicalMemory>
        <jsdl:Range>
          <jsdl:LowerBound>4294967296</jsdl:LowerBound>
          <jsdl:UpperBound>8589934592</jsdl:UpperBound>
        </jsdl:Range>
      </jsdl:TotalPhysicalMemory>
      <site:Queue>long</site:Queue>
    </jsdl:Resources>
  </jsdl:JobDescription>
</jsdl:JobDefinition>
"#;

#[test]
fn jsdl_maps_the_common_subset() {
    let spec = JobSpec::parse(JSDL, None).unwrap();
    assert_eq!(spec.name, "heat-solver");
    assert_eq!(spec.executable, "/opt/heat/bin/solve");
    assert_eq!(spec.args, ["--grid", "4096", "a & b"]);
    assert_eq!(spec.stdin.as_deref(), Some("grid.in"));
    assert_eq!(spec.stdout.as_deref(), Some("solve.out"));
    assert_eq!(spec.stderr.as_deref(), Some("solve.err"));
    assert_eq!(spec.workdir.as_deref(), Some("/scratch/heat"));
    assert_eq!(spec.env["OMP_NUM_THREADS"], "2");
    assert_eq!(spec.env["MODE"], "fast");
    assert_eq!(spec.resources.walltime_secs, Some(7200));
    assert_eq!(spec.resources.cores, 2);
    assert_eq!(spec.count, 4, "8 CPUs in units of 2 cores");
    assert_eq!(spec.resources.memory_bytes, 1 << 30, "4 GiB over 4 units");
    assert_eq!(
        spec.constraints.as_deref(),
        Some("name in [node-a, node-b] && arch==x86_64")
    );
    // The JSDL job travels like any other.
    assert_eq!(JobSpec::from_json(&spec.to_json()).unwrap(), spec);
}

fn jsdl(resources: &str, posix: &str) -> String {
    format!(
        r#"<jsdl:JobDefinition xmlns:jsdl="http://schemas.ggf.org/jsdl/2005/11/jsdl"
    xmlns:p="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix">
  <jsdl:JobDescription>
    <jsdl:Application><p:POSIXApplication>
      <p:Executable>/bin/app</p:Executable>{posix}
    </p:POSIXApplication></jsdl:Application>
    <jsdl:Resources>{resources}</jsdl:Resources>
  </jsdl:JobDescription>
</jsdl:JobDefinition>"#
    )
}

#[test]
fn jsdl_minimal_and_ranges() {
    let spec = JobSpec::from_jsdl(&jsdl("", "")).unwrap();
    assert_eq!(spec, JobSpec::new("/bin/app"));

    let count = |range: &str| {
        JobSpec::from_jsdl(&jsdl(
            &format!("<jsdl:TotalCPUCount>{range}</jsdl:TotalCPUCount>"),
            "",
        ))
        .map(|s| s.count)
    };
    assert_eq!(count("<jsdl:Exact>6</jsdl:Exact>"), Ok(6));
    assert_eq!(count("<jsdl:Exact epsilon=\"0.5\">6</jsdl:Exact>"), Ok(6));
    assert_eq!(
        count("<jsdl:LowerBoundedRange>2.5</jsdl:LowerBoundedRange>"),
        Ok(3)
    );
    assert_eq!(
        count("<jsdl:LowerBoundedRange exclusiveBound=\"true\">4</jsdl:LowerBoundedRange>"),
        Ok(5)
    );
    assert_eq!(
        count(
            "<jsdl:LowerBoundedRange>2</jsdl:LowerBoundedRange><jsdl:UpperBoundedRange>9</jsdl:UpperBoundedRange>"
        ),
        Ok(2)
    );
    let err = count("<jsdl:UpperBoundedRange>9</jsdl:UpperBoundedRange>").unwrap_err();
    assert!(
        err.field.ends_with("TotalCPUCount/UpperBoundedRange"),
        "{err}"
    );
    let err = count("<jsdl:Exact>2</jsdl:Exact><jsdl:Exact>4</jsdl:Exact>").unwrap_err();
    assert!(err.message.contains("alternative"), "{err}");
    let err = count("<jsdl:Exact>-2</jsdl:Exact>").unwrap_err();
    assert!(err.field.ends_with("TotalCPUCount/Exact"), "{err}");
    assert!(count("<jsdl:Exact>lots</jsdl:Exact>").is_err());
    assert!(count("").is_err());
    // More units than a job may have.
    let err = count("<jsdl:Exact>20000</jsdl:Exact>").unwrap_err();
    assert_eq!(err.field, "JobDescription/Resources/TotalCPUCount", "{err}");
    assert!(err.message.contains("at most 10000 (got 20000)"), "{err}");

    let memory = JobSpec::from_jsdl(&jsdl(
        "<jsdl:IndividualPhysicalMemory><jsdl:Exact>1073741824</jsdl:Exact></jsdl:IndividualPhysicalMemory>\
         <jsdl:TotalCPUCount><jsdl:Exact>4</jsdl:Exact></jsdl:TotalCPUCount>",
        "",
    ))
    .unwrap();
    assert_eq!((memory.count, memory.resources.memory_bytes), (4, 1 << 30));
    let err = JobSpec::from_jsdl(&jsdl(
        "<jsdl:IndividualPhysicalMemory><jsdl:Exact>1000</jsdl:Exact></jsdl:IndividualPhysicalMemory>",
        "",
    ))
    .unwrap_err();
    assert!(
        err.field.ends_with("Resources/IndividualPhysicalMemory"),
        "{err}"
    );
    assert!(err.message.contains("1MiB"), "{err}");
}

#[test]
fn jsdl_refuses_what_it_cannot_honour_naming_the_element() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "<jsdl:FileSystem name=\"scratch\"><jsdl:MountPoint>/s</jsdl:MountPoint></jsdl:FileSystem>",
            "",
            "JobDescription/Resources/FileSystem",
        ),
        (
            "<jsdl:ExclusiveExecution>true</jsdl:ExclusiveExecution>",
            "",
            "JobDescription/Resources/ExclusiveExecution",
        ),
        (
            "<jsdl:TotalResourceCount><jsdl:Exact>2</jsdl:Exact></jsdl:TotalResourceCount>",
            "",
            "JobDescription/Resources/TotalResourceCount",
        ),
        (
            "",
            "<p:MemoryLimit>1000000</p:MemoryLimit>",
            "JobDescription/Application/POSIXApplication/MemoryLimit",
        ),
        (
            "",
            "<p:UserName>root</p:UserName>",
            "JobDescription/Application/POSIXApplication/UserName",
        ),
        (
            "<jsdl:OperatingSystem><jsdl:OperatingSystemType><jsdl:OperatingSystemName>WINNT</jsdl:OperatingSystemName></jsdl:OperatingSystemType></jsdl:OperatingSystem>",
            "",
            "JobDescription/Resources/OperatingSystem/OperatingSystemType/OperatingSystemName",
        ),
        (
            "<jsdl:OperatingSystem><jsdl:OperatingSystemVersion>5</jsdl:OperatingSystemVersion></jsdl:OperatingSystem>",
            "",
            "JobDescription/Resources/OperatingSystem/OperatingSystemVersion",
        ),
        (
            "<jsdl:CPUArchitecture><jsdl:CPUArchitectureName>other</jsdl:CPUArchitectureName></jsdl:CPUArchitecture>",
            "",
            "JobDescription/Resources/CPUArchitecture/CPUArchitectureName",
        ),
        (
            "<jsdl:CandidateHosts><jsdl:HostName>a b</jsdl:HostName></jsdl:CandidateHosts>",
            "",
            "JobDescription/Resources/CandidateHosts/HostName",
        ),
        (
            "<jsdl:CandidateHosts/>",
            "",
            "JobDescription/Resources/CandidateHosts",
        ),
        (
            "",
            "<p:Input filesystemName=\"scratch\">in</p:Input>",
            "JobDescription/Application/POSIXApplication/Input",
        ),
        (
            "",
            "<p:Environment>x</p:Environment>",
            "JobDescription/Application/POSIXApplication/Environment",
        ),
        (
            "",
            "<p:Environment name=\"A\">1</p:Environment><p:Environment name=\"A\">2</p:Environment>",
            "JobDescription/Application/POSIXApplication/Environment",
        ),
        (
            "",
            "<p:Output>a</p:Output><p:Output>b</p:Output>",
            "JobDescription/Application/POSIXApplication/Output",
        ),
        (
            "",
            "<p:WallTimeLimit>0</p:WallTimeLimit>",
            "JobDescription/Application/POSIXApplication/WallTimeLimit",
        ),
        (
            "",
            "<p:WallTimeLimit>1.5</p:WallTimeLimit>",
            "JobDescription/Application/POSIXApplication/WallTimeLimit",
        ),
        (
            "",
            "<p:Argument><p:Argument/></p:Argument>",
            "JobDescription/Application/POSIXApplication/Argument",
        ),
        (
            "",
            "<Argument>x</Argument>",
            "JobDescription/Application/POSIXApplication/Argument",
        ),
        (
            "<jsdl:IndividualCPUCount xmlns:jsdl=\"http://schemas.ggf.org/jsdl/2005/11/jsdl-posix\"><jsdl:Exact>1</jsdl:Exact></jsdl:IndividualCPUCount>",
            "",
            "JobDescription/Resources/IndividualCPUCount",
        ),
    ];
    for (resources, posix, field) in cases {
        let err = JobSpec::from_jsdl(&jsdl(resources, posix)).unwrap_err();
        assert_eq!(err.field, *field, "{resources}{posix}: {err}");
        assert!(err.message.contains("(line "), "{err}");
    }
    // Validation after mapping names the JobSpec field.
    let err = JobSpec::from_jsdl(&jsdl("", "<p:Environment name=\"XOS_X\">1</p:Environment>"))
        .unwrap_err();
    assert_eq!(err.field, "env.XOS_X");
}

#[test]
fn jsdl_document_level_errors() {
    let ns = "xmlns:jsdl=\"http://schemas.ggf.org/jsdl/2005/11/jsdl\"";
    let p = "xmlns:p=\"http://schemas.ggf.org/jsdl/2005/11/jsdl-posix\"";
    let cases: &[(String, &str, &str)] = &[
        ("<a".into(), "", "not well-formed XML"),
        (
            "<JobDefinition/>".into(),
            "",
            "not JobDefinition in namespace",
        ),
        (
            "<!DOCTYPE x [<!ENTITY a \"b\">]><x/>".into(),
            "",
            "not well-formed XML",
        ),
        (
            format!("<jsdl:JobDefinition {ns}/>"),
            "JobDescription",
            "missing",
        ),
        (
            format!("<jsdl:JobDefinition {ns}><jsdl:JobDescription/></jsdl:JobDefinition>"),
            "JobDescription/Application",
            "missing",
        ),
        (
            format!(
                "<jsdl:JobDefinition {ns}><jsdl:JobDescription><jsdl:Application/></jsdl:JobDescription></jsdl:JobDefinition>"
            ),
            "JobDescription/Application",
            "POSIXApplication",
        ),
        (
            format!(
                "<jsdl:JobDefinition {ns} {p}><jsdl:JobDescription><jsdl:Application><p:POSIXApplication/></jsdl:Application></jsdl:JobDescription></jsdl:JobDefinition>"
            ),
            "JobDescription/Application/POSIXApplication/Executable",
            "missing",
        ),
        (
            format!(
                "<jsdl:JobDefinition {ns}><jsdl:JobDescription><jsdl:DataStaging/></jsdl:JobDescription></jsdl:JobDefinition>"
            ),
            "JobDescription/DataStaging",
            "not supported",
        ),
        (
            format!(
                "<jsdl:JobDefinition {ns}><jsdl:JobDescription><jsdl:JobIdentification><jsdl:JobProject>x</jsdl:JobProject></jsdl:JobIdentification></jsdl:JobDescription></jsdl:JobDefinition>"
            ),
            "JobDescription/JobIdentification/JobProject",
            "not supported",
        ),
        (
            format!(
                "<jsdl:JobDefinition {ns}><jsdl:JobDescription/><jsdl:JobDescription/></jsdl:JobDefinition>"
            ),
            "JobDescription",
            "twice",
        ),
    ];
    for (text, field, says) in cases {
        let err = JobSpec::parse(text, Some(SpecFormat::Jsdl)).unwrap_err();
        assert_eq!(err.field, *field, "{text}: {err}");
        assert!(err.message.contains(says), "{text}: {err}");
    }
}

/// Mutated documents never panic, and whatever is accepted round-trips
/// through the canonical form.
#[test]
fn mutations_never_panic_and_accepted_specs_round_trip() {
    let json = full().to_json();
    let seeds: [&str; 3] = [FULL, &json, JSDL];
    let pieces = [
        "",
        "\"",
        "=",
        "-",
        "[",
        "]",
        "{",
        "}",
        "<",
        ">",
        "/",
        "0",
        "-1",
        "é",
        "\u{0}",
        "\n",
        ":",
        "1e99",
        "99999999999999999999",
        "GiB",
        "XOS_",
        "..",
        "&&",
        "limit 0",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let mut accepted = 0;
    for round in 0..3000 {
        let mut text = seeds[round % seeds.len()].to_owned();
        for _ in 0..1 + next(3) {
            let mut at = next(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + next(8)).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.replace_range(at..end, pieces[next(pieces.len())]);
        }
        if let Ok(spec) = JobSpec::parse(&text, None) {
            accepted += 1;
            spec.validate().unwrap();
            assert_eq!(JobSpec::from_json(&spec.to_json()).unwrap(), spec, "{text}");
        }
    }
    assert!(accepted > 50, "only {accepted} mutations were accepted");
}
