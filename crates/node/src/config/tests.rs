use super::*;

const GOOD: &str = r#"
name = "n1"
data_dir = "/tmp/x"
roles = ["core", "resource"]

[listen]
rpc = "127.0.0.1:7100"
http = "127.0.0.1:9100"
"#;

fn check_error(text: &str, expected: &[&str]) {
    let err = NodeConfig::parse(text, "/etc/xtreem/xosd.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/etc/xtreem/xosd.toml"), "{err}");
    for part in expected {
        assert!(err.contains(part), "expected {part:?} in: {err}");
    }
}

#[test]
fn a_good_config_parses_with_defaults() {
    let c = NodeConfig::parse(GOOD, "x").unwrap();
    assert_eq!(c.name.as_str(), "n1");
    assert_eq!(c.roles, vec![Role::Core, Role::Resource]);
    assert_eq!(c.heartbeat_interval, Duration::from_secs(2));
    assert_eq!(c.node_cert_lifetime, Duration::from_secs(86400));
    assert_eq!(c.worker_threads, 2);
}

#[test]
fn the_runtime_worker_threads_are_set_and_bounded() {
    let c = NodeConfig::parse(&format!("{GOOD}\n[runtime]\nworker_threads = 1\n"), "x").unwrap();
    assert_eq!(c.worker_threads, 1);
    check_error(
        &format!("{GOOD}\n[runtime]\nworker_threads = 0\n"),
        &[":11:", "key `runtime.worker_threads`", "expected 1 to 256"],
    );
    check_error(
        &format!("{GOOD}\n[runtime]\nthreads = 4\n"),
        &["unknown field `threads`", "worker_threads"],
    );
}

#[test]
fn an_unknown_key_names_file_line_and_key() {
    check_error(
        &GOOD.replace("http =", "htp ="),
        &[":8:", "unknown field `htp`", "expected", "`http`"],
    );
}

#[test]
fn a_bad_value_names_the_key_and_what_is_expected() {
    check_error(
        &GOOD.replace("7100\"", "99999\""),
        &[":7:", "key `listen.rpc`", "invalid socket address"],
    );
    check_error(
        &GOOD.replace("\"resource\"", "\"gpu\""),
        &[":4:", "key `roles`", "unknown variant `gpu`", "core"],
    );
    check_error(
        &GOOD.replace("\"n1\"", "\"N_1\""),
        &[":2:", "key `name`", "invalid node name"],
    );
    check_error(
        &format!("{GOOD}\n[fabric]\nheartbeat_interval = \"soon\"\n"),
        &[
            ":11:",
            "key `fabric.heartbeat_interval`",
            "expected a duration",
        ],
    );
    check_error(
        &GOOD.replace("[\"core\", \"resource\"]", "[]"),
        &[":4:", "expected at least one"],
    );
}

#[test]
fn the_jobs_state_dir_must_be_absolute() {
    check_error(
        &format!("{GOOD}\n[jobs]\nstate_dir = \"run/units\"\n"),
        &[":11:", "key `jobs.state_dir`", "expected an absolute path"],
    );
    let c = NodeConfig::parse(&format!("{GOOD}\n[jobs]\nstate_dir = \"/run/x\"\n"), "x").unwrap();
    assert_eq!(c.jobs.state_dir, Some(PathBuf::from("/run/x")));
    assert_eq!(NodeConfig::parse(GOOD, "x").unwrap().jobs.state_dir, None);
}

#[test]
fn the_jobs_retention_is_a_duration_of_at_least_a_second() {
    assert_eq!(
        NodeConfig::parse(GOOD, "x").unwrap().jobs.retention,
        Duration::from_secs(7 * 24 * 3600)
    );
    let c = NodeConfig::parse(&format!("{GOOD}\n[jobs]\nretention = \"36h\"\n"), "x").unwrap();
    assert_eq!(c.jobs.retention, Duration::from_secs(36 * 3600));
    check_error(
        &format!("{GOOD}\n[jobs]\nretention = \"0s\"\n"),
        &["key `jobs.retention`", "at least \"1s\""],
    );
    check_error(
        &format!("{GOOD}\n[jobs]\nretention = \"a week\"\n"),
        &["retention", "expected a duration"],
    );
}

#[test]
fn a_member_without_join_is_refused() {
    check_error(&GOOD.replace("\"core\", ", ""), &["needs a [join] table"]);
}

#[test]
fn a_wildcard_listener_needs_advertise() {
    check_error(
        &GOOD.replace("127.0.0.1:7100", "0.0.0.0:7100"),
        &["advertise"],
    );
}
