//! Temporary smoke test.
mod common;
use common::*;
use std::time::Duration;

fn run(v: Option<xtreem_exec::CgroupVersion>, name: &str) {
    let fx = Fixture::with_version(name, v);
    eprintln!("version {:?} warnings {:?}", fx.exec.cgroup_version(), fx.exec.cgroup_warnings());
    for i in 0..3 {
        let u = format!("u{i}");
        let t = std::time::Instant::now();
        let st = fx.exec.launch(&fx.spec(&u, &["sh", "-c", "id; echo $$; cat /proc/self/cgroup; exit 3"])).unwrap();
        eprintln!("launch took {:?}: {:?}", t.elapsed(), st.state);
        let end = fx.wait(&u, Duration::from_secs(5));
        eprintln!("{end:?}");
        if i == 0 {
        eprintln!("stdout: {}", fx.stdout(&u));
        eprintln!("stderr: {}", fx.stderr(&u));
        eprintln!("log: {}", std::fs::read_to_string(fx.root.join(format!("{u}/supervisor.log"))).unwrap_or_default());
        }
    }
}

#[test]
fn smoke() {
    require_root!();
    run(None, "s1");
    run(Some(xtreem_exec::CgroupVersion::V2), "s2");
}
