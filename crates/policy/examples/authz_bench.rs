//! Times authorization decisions with 100 policies loaded, all of them in
//! the levels that apply to the requests (the VO of the principal, the site
//! of the resource, the owner of the job). Two runs: `authz_decision_*` with
//! a realistic mix, where the per-action split skips policies for other
//! actions (about 60 of the 100 are evaluated per decision), and
//! `authz_decision_all_apply_*`, where all 100 admit the requested action
//! and are evaluated. Prints percentiles in microseconds:
//!
//! ```text
//! cargo run -p xtreem-policy --release --example authz_bench
//! ```
//!
//! The target is p99 <= 1 ms. A benchmark program, not a test: it asserts
//! nothing about time.

use std::time::{Duration, Instant};

use xtreem_policy::{
    Action, AuthzRequest, Level, PolicyStore, RequestContext, Resource, UserFacts,
};

const DECISIONS: usize = 10_000;
const WARMUP: usize = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut store = PolicyStore::new();
    let mut loaded = 0;

    // 40 VO policies: group-based submission limits, admin rights.
    let mut vo = String::new();
    for i in 0..39 {
        vo.push_str(&format!(
            "permit(principal, action == Xtreem::Action::\"submit_job\", resource)\n\
             when {{ principal.groups.contains(\"/demo/g{i}\") && context.cores <= {} }};\n",
            i + 1
        ));
    }
    vo.push_str(
        "permit(principal in Xtreem::Vo::\"demo\", action in [Xtreem::Action::\"read_job\", Xtreem::Action::\"submit_job\"], resource)\n\
         when { principal.roles.contains(\"member\") };\n",
    );
    loaded += store.set(Level::Vo("demo".into()), &vo)?.ids.len();

    // 40 site policies: maintenance windows and blocked VOs.
    let mut site = String::new();
    for i in 0..20 {
        site.push_str(&format!(
            "forbid(principal, action, resource is Xtreem::Node) when {{ resource.tags.contains(\"maint-{i}\") }};\n"
        ));
        site.push_str(&format!(
            "forbid(principal, action == Xtreem::Action::\"read_job\", resource)\n\
             when {{ resource.vo == \"blocked{i}\" && context.time_unix > {i} }};\n"
        ));
    }
    loaded += store.set(Level::Site("lab".into()), &site)?.ids.len();

    // 20 user policies: alice shares her jobs with friends.
    let mut user = String::new();
    for i in 0..20 {
        user.push_str(&format!(
            "permit(principal == Xtreem::User::\"friend{i}\", action == Xtreem::Action::\"read_job\", resource)\n\
             when {{ resource.owner == \"alice\" }};\n"
        ));
    }
    loaded += store.set(Level::User("alice".into()), &user)?.ids.len();
    println!("policies_loaded: {loaded}");

    let bob = UserFacts {
        subject: "bob".into(),
        vo: "demo".into(),
        groups: vec!["/demo".into(), "/demo/analysis".into()],
        roles: vec!["member".into()],
        site: "lab".into(),
    };
    let context = RequestContext {
        time_unix: 1_700_000_000,
        cores: 8,
    };
    let requests = [
        AuthzRequest {
            principal: bob.clone(),
            action: Action::ReadJob,
            resource: Resource::Job {
                id: "42".into(),
                owner: "alice".into(),
                vo: "demo".into(),
                site: "lab".into(),
            },
            context,
        },
        AuthzRequest {
            principal: bob,
            action: Action::SubmitJob,
            resource: Resource::Node {
                name: "n1".into(),
                site: "lab".into(),
                tags: vec!["gpu".into(), "x86_64".into()],
            },
            context,
        },
    ];
    for r in &requests {
        let d = store.authorize(r);
        println!(
            "check: {} {} -> allowed={} reasons={:?} errors={:?}",
            r.action,
            r.resource.describe(),
            d.allowed,
            d.reasons,
            d.errors
        );
    }

    report("authz_decision", &store, &requests);

    // Worst case: 100 policies that all admit the requested action, so none
    // is skipped by the per-action split and all are evaluated.
    let mut worst = PolicyStore::new();
    let mut vo = String::new();
    for i in 0..40 {
        vo.push_str(&format!(
            "permit(principal, action == Xtreem::Action::\"read_job\", resource)\n\
             when {{ principal.groups.contains(\"/demo/g{i}\") && resource.site == \"s{i}\" }};\n"
        ));
    }
    let mut site = String::new();
    for i in 0..40 {
        site.push_str(&format!(
            "forbid(principal, action == Xtreem::Action::\"read_job\", resource)\n\
             when {{ resource.vo == \"blocked{i}\" && context.time_unix > {i} }};\n"
        ));
    }
    worst.set(Level::Vo("demo".into()), &vo)?;
    worst.set(Level::Site("lab".into()), &site)?;
    worst.set(Level::User("alice".into()), &user)?;
    report("authz_decision_all_apply", &worst, &requests[..1]);
    Ok(())
}

/// Times `DECISIONS` decisions over `requests` in turn and prints
/// percentiles in microseconds under `name`.
fn report(name: &str, store: &PolicyStore, requests: &[AuthzRequest]) {
    for i in 0..WARMUP {
        let _ = std::hint::black_box(store.authorize(&requests[i % requests.len()]));
    }
    let mut times: Vec<Duration> = Vec::with_capacity(DECISIONS);
    for i in 0..DECISIONS {
        let r = &requests[i % requests.len()];
        let start = Instant::now();
        let d = store.authorize(std::hint::black_box(r));
        times.push(start.elapsed());
        let _ = std::hint::black_box(d);
    }
    times.sort();
    let pct = |p: f64| {
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1e6
    };
    println!("{name}_count: {DECISIONS}");
    println!("{name}_p50: {:.1} us", pct(0.50));
    println!("{name}_p99: {:.1} us", pct(0.99));
    println!("{name}_max: {:.1} us", pct(1.0));
}
