//! The `xos` command line as a user runs it: real binary, real daemons.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use xtreem_testkit::{Grid, NodeSpec, xosd_next_to_current_exe};

const XOS: &str = env!("CARGO_BIN_EXE_xos");

fn xos(config_dir: &Path, args: &[&str]) -> Output {
    Command::new(XOS)
        .args(args)
        .env("XOS_CONFIG_DIR", config_dir)
        .env_remove("XOS_ENDPOINT")
        .output()
        .expect("run xos")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xos-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_link_named_xps_runs_xos_ps() {
    let dir = temp_dir("alias");
    let link = dir.join("xps");
    std::os::unix::fs::symlink(XOS, &link).unwrap();
    // `xps --help` is `xos ps --help`.
    let out = Command::new(&link).arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Usage: xos ps"), "{}", text(&out));
    // Without credentials it fails as `xos ps` does, naming what to do.
    let out = Command::new(&link)
        .arg("-a")
        .env("XOS_CONFIG_DIR", dir.join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    // Under its own name the same binary is plain xos.
    let out = Command::new(XOS).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("xos "));
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = temp_dir("help");
    let top = xos(&dir, &["--help"]);
    assert!(top.status.success());
    assert!(text(&top).contains("Exit codes:"));
    for args in [
        &["site", "init", "--help"][..],
        &["site", "admin-credentials", "--help"],
        &["node", "join-token", "--help"],
        &["node", "list", "--help"],
        &["node", "remove", "--help"],
        &["node", "ping", "--help"],
        &["node", "status", "--help"],
        &["demo", "--help"],
        &["bench", "fabric", "--help"],
    ] {
        let out = xos(&dir, args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            text(&out).contains("Example:"),
            "no example in {args:?}:\n{}",
            text(&out)
        );
    }
}

#[test]
fn without_credentials_xos_says_what_to_do() {
    let dir = temp_dir("nocreds");
    let out = xos(&dir, &["node", "list"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(text(&out).contains("xos site init"), "{}", text(&out));
    let out = xos(
        &dir,
        &["site", "init", "lab", "--data-dir", dir.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("is xosd running"), "{}", text(&out));
}

#[tokio::test]
async fn an_administrator_runs_a_site_from_the_command_line() {
    let mut grid = Grid::new(xosd_next_to_current_exe().unwrap()).unwrap();
    let core = grid
        .add_node(NodeSpec::new("node-1", &["core"], grid.next_ip()))
        .unwrap();
    grid.start_core(core).await.unwrap();
    let admin = grid.root().join("cli-admin");
    let data = grid.node(core).data_dir();

    let out = xos(
        &admin,
        &["site", "init", "lab", "--data-dir", data.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let mode = std::fs::metadata(admin.join("admin.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let key = std::fs::metadata(data.join("ca/ca.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );

    let out = xos(&admin, &["node", "join-token", "--ttl", "10m"]);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("xjt1."), "{token}");

    let member = grid
        .add_node(NodeSpec::new("node-2", &["resource"], grid.next_ip()))
        .unwrap();
    let core_rpc = grid.node(core).rpc.clone();
    grid.spawn_member(member, &core_rpc, &token).unwrap();
    grid.wait_ready(member).await.unwrap();

    let out = xos(&admin, &["node", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-1", "node-2"]);

    let member_rpc = grid.node(member).rpc.clone();
    let out = xos(&admin, &["node", "list", "--endpoint", &member_rpc]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("answered by node-2 (via node-1)"),
        "{}",
        text(&out)
    );

    let out = xos(&admin, &["node", "ping", "node-2", "--count", "5"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("5 pings"), "{}", text(&out));

    let out = xos(&admin, &["node", "remove", "ghost"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let out = xos(&admin, &["node", "remove", "node-2"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = xos(&admin, &["node", "join-token", "--ttl", "30d"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains("a join token lives between"),
        "{}",
        text(&out)
    );
    grid.wait_for(Duration::from_secs(1), "nothing", |_| Some(()))
        .await
        .unwrap();
}

#[test]
fn the_demo_runs_a_grid_and_stops_it_cleanly() {
    let dir = temp_dir("demo");
    let out = xos(&dir, &["demo"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for expected in [
        "site demo created",
        "answered by node-1",
        "answered by node-2 (via node-1)",
        "answered by node-3 (via node-1)",
        "already used by node node-2",
        "vo approve demo bob   (as alice) -> active /demo:member",
        "user alice  vo demo  groups /demo  roles /demo:admin",
        "user bob  vo demo  groups /demo  roles /demo:member",
        "(xvo-demo-",
        "node-3: exited with code 0",
    ] {
        assert!(all.contains(expected), "{expected:?} missing from:\n{all}");
    }
}

#[test]
fn the_demo_can_leave_its_grid_running() {
    let dir = temp_dir("demo-keep");
    let grid_dir = dir.join("grid");
    let out = xos(
        &dir,
        &[
            "demo",
            "--keep",
            "--nodes",
            "2",
            "--dir",
            grid_dir.to_str().unwrap(),
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let pids: Vec<i32> = all
        .lines()
        .find_map(|l| l.trim().strip_prefix("stop it: kill "))
        .expect("a kill line")
        .split("   ")
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{all}");
    // The grid outlived the demo and answers with the printed credentials.
    let listed = xos(&grid_dir.join("admin"), &["node", "list"]);
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(text(&listed).contains("node-2"));
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}
