//! The daemon raises its own limit on open files; its units get back the
//! soft limit it started with. Its own test binary: it changes the limits
//! of the whole test process.

mod common;

use std::time::Duration;

use common::Fixture;
use xtreem_exec::UnitState;

#[test]
fn units_get_the_soft_open_files_limit_the_daemon_started_with() {
    require_root!();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on structs we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let hard = limit.rlim_max;
    // Start low, as a daemon under a default soft limit does, so that the
    // raise is visible even where soft and hard are equal.
    let started_with = 512.min(hard);
    limit.rlim_cur = started_with;
    // SAFETY: as above.
    let lowered = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(lowered, 0);

    let (before, after) = xtreem_exec::raise_open_files_limit().unwrap();
    assert_eq!((before, after), (started_with, hard));

    let fx = Fixture::new("nofile");
    fx.exec
        .launch(&fx.spec("u", &["sh", "-c", "ulimit -Sn; ulimit -Hn"]))
        .unwrap();
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(end.state, UnitState::Exited { code: 0 }, "{end:?}");
    assert_eq!(fx.stdout("u"), format!("{started_with}\n{hard}\n"));
    fx.exec.remove("u").unwrap();
}
