//! Properties of the API that need no root: what can cross threads and
//! tasks, and the CRIU probe.

use xtreem_exec::{Executor, LaunchSpec, Limits, UnitStatus, criu_available};

fn send_sync<T: Send + Sync>() {}
fn send_future<F: std::future::Future + Send>(_: F) {}

/// Compiled, never run: `wait` can be awaited inside `tokio::spawn`.
#[allow(dead_code)]
fn wait_is_send(exec: &Executor) {
    send_future(exec.wait("u"));
}

#[test]
fn types_cross_threads() {
    send_sync::<Executor>();
    send_sync::<LaunchSpec>();
    send_sync::<UnitStatus>();
}

#[test]
fn specs_round_trip_through_json() {
    let spec = LaunchSpec {
        unit: "n1.42.0".into(),
        argv: vec!["/bin/echo".into(), "hi".into()],
        env: vec![("PATH".into(), "/bin".into())],
        workdir: "/srv/scratch/u1".into(),
        stdin: None,
        stdout: "/srv/scratch/u1/out".into(),
        stderr: "/srv/scratch/u1/err".into(),
        uid: 61000,
        gid: 61000,
        limits: Limits {
            walltime: Some(std::time::Duration::from_secs(90)),
            ..Limits::default()
        },
        credential: None,
        note: None,
    };
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<LaunchSpec>(&text).unwrap(), spec);
}

#[test]
fn criu_probe_answers() {
    match criu_available() {
        Ok(()) => {}
        Err(why) => assert!(!why.is_empty()),
    }
}
