//! `xos bench ...`: benchmark programs. Each figure is printed as a line
//! `name: value unit`; docs/PERFORMANCE.md records them.

use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use xtreem_audit::{AuditEvent, AuditLog, Decision as AuditDecision};
use xtreem_client::{Profile, VoClient};
use xtreem_policy::{
    Action, AuthzRequest, Level, PolicyStore, RequestContext, Resource, UserFacts,
};
use xtreem_proto::vo as pb;
use xtreem_testkit::{Grid, xosd_next_to_current_exe};
use xtreem_token::{Audience, Claims, SigningKey, TokenError, Verifier};
use xtreem_util::time::unix_now;
use xtreem_vo::passwords;

use super::Context;
use crate::cli::BenchCommand;

pub async fn run(_ctx: &Context, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Fabric { count } => fabric(count).await,
        BenchCommand::Auth {
            verifications,
            decisions,
            logins,
        } => auth(verifications, decisions, logins).await,
        BenchCommand::Jobs {
            jobs,
            in_flight,
            latency_samples,
            slots,
        } => super::bench_jobs::run(jobs, in_flight, latency_samples, slots).await,
        BenchCommand::Directory {
            nodes,
            no_federation,
            no_sim,
        } => super::bench_directory::run(nodes, !no_federation, !no_sim).await,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64
}

pub(super) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// CPU time one process (all its threads) has spent, user and system, in
/// milliseconds, from `/proc/PID/stat`.
pub(super) fn process_cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields are counted
    // from the last `)`. utime and stime are fields 14 and 15 of the line.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut ticks = 0u64;
    for i in [11, 12] {
        // A figure made of a field that did not parse would be wrong, not 0.
        ticks += fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("no CPU times in /proc/{pid}/stat"))?;
    }
    Ok(ticks as f64 * 1000.0 / clock_ticks_per_second()? as f64)
}

fn clock_ticks_per_second() -> anyhow::Result<i64> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
        .filter(|hz| *hz > 0)
        .ok_or_else(|| anyhow::anyhow!("cannot read the clock tick rate"))
}

/// CPU time the whole machine has spent busy since boot, in ms
/// ([`xtreem_exec::floor::machine_busy_ms`]).
pub(super) fn machine_busy_ms() -> anyhow::Result<f64> {
    xtreem_exec::floor::machine_busy_ms().context("cannot read /proc/stat")
}

async fn fabric(count: u32) -> anyhow::Result<()> {
    let xosd = xosd_next_to_current_exe()?;
    let mut grid = Grid::new(&xosd)?;
    grid.start_site("bench", 2).await?;
    println!(
        "# 2 xosd on loopback; node-1 pings node-2 over node mTLS (TLS 1.3, gRPC, 64-byte payload)"
    );

    let mut client = grid.admin_client(0)?;
    let mut ns = client.probe_node("node-2", count, 64).await?.round_trip_ns;
    ns.sort_unstable();
    let mean = ns.iter().sum::<u64>() as f64 / ns.len().max(1) as f64;
    println!("mtls_round_trips: {} count", ns.len());
    println!("mtls_round_trip_p50: {:.1} us", percentile(&ns, 0.50) / 1e3);
    println!("mtls_round_trip_p99: {:.1} us", percentile(&ns, 0.99) / 1e3);
    println!("mtls_round_trip_mean: {:.1} us", mean / 1e3);
    println!(
        "mtls_round_trips_per_second: {:.0} 1/s",
        1e9 / mean.max(1.0)
    );

    // Idle memory: let both daemons settle, then read their resident size.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rss = Vec::new();
    for i in 0..grid.len() {
        if let Some(pid) = grid.node(i).pid() {
            rss.push(rss_kib(pid)?);
        }
    }
    let max_rss = rss.iter().copied().max().unwrap_or(0);
    println!("xosd_idle_rss_max: {:.1} MiB", max_rss as f64 / 1024.0);

    // CLI start-up: `xos --version`, spawned and waited for, many times.
    let xos = std::env::current_exe()?;
    let runs = 200;
    let mut startup = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(&xos).arg("--version").output()?;
        anyhow::ensure!(out.status.success(), "xos --version failed");
        startup.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    startup.sort_unstable();
    println!(
        "xos_version_startup_p50: {:.2} ms",
        percentile(&startup, 0.50) / 1e6
    );
    println!(
        "xos_version_startup_p99: {:.2} ms",
        percentile(&startup, 0.99) / 1e6
    );

    grid.stop_all().await;
    Ok(())
}

/// Scopes of a login credential of a VO admin, as the VO authority gives them.
const LOGIN_SCOPES: &str = "compute.create compute.read compute.modify compute.cancel storage.read:/ storage.modify:/ vo.read vo.admin";
const BENCH_SITE: &str = "bench";
const BENCH_VO: &str = "demo";
const BENCH_USER: &str = "alice";
/// Only ever used on the throw-away loopback grid of the benchmark.
const BENCH_PASSWORD: &str = "bench-password-not-secret";

async fn auth(verifications: u32, decisions: u32, logins: u32) -> anyhow::Result<()> {
    ensure!(
        verifications > 0 && decisions > 0 && logins > 0,
        "--verifications, --decisions and --logins must be at least 1"
    );
    // Fail before the long CPU parts if the daemon is missing.
    let xosd = xosd_next_to_current_exe()?;
    token_verification(verifications)?;
    authz_decisions(decisions)?;
    login_round_trip(&xosd, logins).await
}

/// Signs one credential shaped like a login's, then verifies it `n` times on
/// this thread with `verify_uncached_at`: every call parses the token and
/// checks the Ed25519 signature. Then the node's own path (`verify_at`,
/// which remembers verified credentials) over 1,000 distinct credentials
/// that it has seen before, as a node serving 1,000 users does.
fn token_verification(n: u32) -> anyhow::Result<()> {
    let now = unix_now();
    let issuer = format!("xtreem://{BENCH_SITE}/vo/{BENCH_VO}");
    let key = SigningKey::generate(&format!("{BENCH_VO}-{now}-a1b2c3"))?;
    let claims = Claims::new(&issuer, BENCH_USER, Audience::ANY_SITE, now, 12 * 3600)
        .with_groups(vec![
            format!("/{BENCH_VO}"),
            format!("/{BENCH_VO}/analysis"),
            format!("/{BENCH_VO}/analysis/gpu"),
        ])
        .with_roles(vec![
            format!("/{BENCH_VO}:admin"),
            format!("/{BENCH_VO}/analysis:member"),
            format!("/{BENCH_VO}/analysis/gpu:member"),
        ])
        .with_scope(LOGIN_SCOPES);
    let token = key.sign(&claims)?;

    // What a node holds: this VO's active and next key, and other VOs' keys.
    let mut verifier = Verifier::new(vec![
        Audience::ANY_SITE.to_owned(),
        Audience::site(BENCH_SITE),
    ]);
    verifier.trust(&issuer, key.public());
    verifier.trust(
        &issuer,
        SigningKey::generate(&format!("{BENCH_VO}-next"))?.public(),
    );
    for vo in ["bio", "climate", "hep"] {
        let other = SigningKey::generate(&format!("{vo}-1"))?;
        verifier.trust(&format!("xtreem://{BENCH_SITE}/vo/{vo}"), other.public());
    }

    // The credential verifies, and a flipped signature byte is refused: the
    // loop below pays for the signature check.
    ensure!(
        verifier.verify_at(&token, now)? == claims,
        "the verified claims differ from the signed ones"
    );
    let sig_at = token
        .rfind('.')
        .context("the token has no signature part")?
        + 5;
    let mut tampered = token.clone().into_bytes();
    if let Some(b) = tampered.get_mut(sig_at) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    let tampered = String::from_utf8(tampered)?;
    ensure!(
        matches!(
            verifier.verify_at(&tampered, now),
            Err(TokenError::Signature)
        ),
        "a tampered signature was not refused"
    );

    println!(
        "# one thread; a login-shaped credential ({} bytes, EdDSA/Ed25519, 3 groups, 3 roles, 8 scopes), verified in full each time",
        token.len()
    );
    for _ in 0..n.min(2_000) {
        let _ = black_box(verifier.verify_uncached_at(black_box(&token), now));
    }
    let mut accepted = 0u32;
    let start = Instant::now();
    for _ in 0..n {
        if verifier
            .verify_uncached_at(black_box(&token), black_box(now))
            .is_ok()
        {
            accepted += 1;
        }
    }
    let elapsed = start.elapsed();
    ensure!(
        accepted == n,
        "{} of {n} verifications failed",
        n - accepted
    );
    let mean_ns = elapsed.as_nanos() as f64 / f64::from(n);
    println!("token_bytes: {} bytes", token.len());
    println!("token_verifications: {n} count");
    println!(
        "token_verifications_per_second: {:.0} 1/s",
        1e9 / mean_ns.max(1.0)
    );
    println!("token_verification_mean: {:.2} us", mean_ns / 1e3);

    // The node's path: 1,000 users' credentials, each seen before.
    let users: Vec<String> = (0..1_000)
        .map(|u| {
            let mut c = claims.clone();
            c.sub = format!("user{u}");
            key.sign(&c)
        })
        .collect::<Result<_, _>>()?;
    for t in &users {
        verifier.verify_at(t, now)?;
    }
    let start = Instant::now();
    for i in 0..n as usize {
        black_box(verifier.verify_at(black_box(&users[i % users.len()]), black_box(now))?);
    }
    let cached_ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "token_verifications_cached_per_second: {:.0} 1/s",
        1e9 / cached_ns.max(1.0)
    );
    println!("token_verification_cached_mean: {:.2} us", cached_ns / 1e3);

    // Signing is part of every login; measured the same way.
    let signs = (n / 20).clamp(1, 10_000);
    let start = Instant::now();
    for _ in 0..signs {
        black_box(key.sign(black_box(&claims))?);
    }
    let sign_ns = start.elapsed().as_nanos() as f64 / f64::from(signs);
    println!("token_signature_mean: {:.2} us", sign_ns / 1e3);
    Ok(())
}

/// 100 policies: 40 at the VO, 40 at the site, 20 at the user level.
fn hundred_policies() -> anyhow::Result<(PolicyStore, usize)> {
    let mut store = PolicyStore::new();
    let mut loaded = 0;

    // VO: group-based submission limits, and what members may do.
    let mut vo = String::new();
    for i in 0..39 {
        vo.push_str(&format!(
            "permit(principal, action == Xtreem::Action::\"submit_job\", resource)\n\
             when {{ principal.groups.contains(\"/{BENCH_VO}/g{i}\") && context.cores <= {} }};\n",
            i + 1
        ));
    }
    vo.push_str(&format!(
        "permit(principal in Xtreem::Vo::\"{BENCH_VO}\", action in [Xtreem::Action::\"read_job\", Xtreem::Action::\"submit_job\"], resource)\n\
         when {{ principal.roles.contains(\"member\") }};\n"
    ));
    loaded += store.set(Level::Vo(BENCH_VO.into()), &vo)?.ids.len();

    // Site: maintenance windows and blocked VOs.
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
    loaded += store.set(Level::Site(BENCH_SITE.into()), &site)?.ids.len();

    // User: alice shares her jobs with friends.
    loaded += store
        .set(Level::User(BENCH_USER.into()), &user_policies())?
        .ids
        .len();
    Ok((store, loaded))
}

fn user_policies() -> String {
    let mut user = String::new();
    for i in 0..20 {
        user.push_str(&format!(
            "permit(principal == Xtreem::User::\"friend{i}\", action == Xtreem::Action::\"read_job\", resource)\n\
             when {{ resource.owner == \"{BENCH_USER}\" }};\n"
        ));
    }
    user
}

/// 100 policies that all admit `read_job`, so every one of them is evaluated.
fn hundred_policies_all_apply() -> anyhow::Result<PolicyStore> {
    let mut store = PolicyStore::new();
    let mut vo = String::new();
    for i in 0..40 {
        vo.push_str(&format!(
            "permit(principal, action == Xtreem::Action::\"read_job\", resource)\n\
             when {{ principal.groups.contains(\"/{BENCH_VO}/g{i}\") && resource.site == \"s{i}\" }};\n"
        ));
    }
    let mut site = String::new();
    for i in 0..40 {
        site.push_str(&format!(
            "forbid(principal, action == Xtreem::Action::\"read_job\", resource)\n\
             when {{ resource.vo == \"blocked{i}\" && context.time_unix > {i} }};\n"
        ));
    }
    store.set(Level::Vo(BENCH_VO.into()), &vo)?;
    store.set(Level::Site(BENCH_SITE.into()), &site)?;
    store.set(Level::User(BENCH_USER.into()), &user_policies())?;
    Ok(store)
}

/// Times `n` decisions one by one, cycling through `requests`; returns
/// sorted nanoseconds.
fn time_decisions(store: &PolicyStore, requests: &[AuthzRequest], n: u32) -> Vec<u64> {
    for r in requests.iter().cycle().take(1_000) {
        let _ = black_box(store.authorize(black_box(r)));
    }
    let mut ns = Vec::with_capacity(n as usize);
    for r in requests.iter().cycle().take(n as usize) {
        let start = Instant::now();
        let decision = store.authorize(black_box(r));
        ns.push(nanos(start.elapsed()));
        let _ = black_box(decision);
    }
    ns.sort_unstable();
    ns
}

fn authz_decisions(n: u32) -> anyhow::Result<()> {
    let (store, loaded) = hundred_policies()?;
    let bob = UserFacts {
        subject: "bob".into(),
        vo: BENCH_VO.into(),
        groups: vec![format!("/{BENCH_VO}"), format!("/{BENCH_VO}/analysis")],
        roles: vec!["member".into()],
        site: BENCH_SITE.into(),
    };
    let context = RequestContext {
        time_unix: i64::try_from(unix_now()).unwrap_or(i64::MAX),
        cores: 8,
    };
    let job = |vo: &str| Resource::Job {
        id: "42".into(),
        owner: BENCH_USER.into(),
        vo: vo.into(),
        site: BENCH_SITE.into(),
    };
    // (request, expected outcome): a mix of allowed and denied.
    let cases = [
        (
            AuthzRequest {
                principal: bob.clone(),
                action: Action::ReadJob,
                resource: job(BENCH_VO),
                context,
            },
            true,
        ),
        (
            AuthzRequest {
                principal: bob.clone(),
                action: Action::SubmitJob,
                resource: Resource::Node {
                    name: "node-1".into(),
                    site: BENCH_SITE.into(),
                    tags: vec!["gpu".into(), "x86_64".into()],
                },
                context,
            },
            true,
        ),
        (
            AuthzRequest {
                principal: bob.clone(),
                action: Action::ReadJob,
                resource: job("blocked3"),
                context,
            },
            false,
        ),
    ];
    for (request, expected) in &cases {
        let d = store.authorize(request);
        ensure!(
            d.allowed == *expected && d.errors.is_empty(),
            "{} on {}: allowed={} errors={:?}, expected allowed={expected}",
            request.action,
            request.resource.describe(),
            d.allowed,
            d.errors
        );
    }
    let requests: Vec<AuthzRequest> = cases.into_iter().map(|(r, _)| r).collect();

    println!(
        "# Cedar, {loaded} policies (40 VO, 40 site, 20 user); read_job/submit_job/denied read_job in turn; each decision timed"
    );
    let ns = time_decisions(&store, &requests, n);
    println!("authz_policies_loaded: {loaded} count");
    println!("authz_decisions: {} count", ns.len());
    println!("authz_decision_p50: {:.1} us", percentile(&ns, 0.50) / 1e3);
    println!("authz_decision_p99: {:.1} us", percentile(&ns, 0.99) / 1e3);
    println!("authz_decision_max: {:.1} us", percentile(&ns, 1.0) / 1e3);

    // Worst case: no policy is skipped by the per-action split.
    let worst = hundred_policies_all_apply()?;
    let ns = time_decisions(&worst, &requests[..1], n);
    println!(
        "authz_decision_all_apply_p50: {:.1} us",
        percentile(&ns, 0.50) / 1e3
    );
    println!(
        "authz_decision_all_apply_p99: {:.1} us",
        percentile(&ns, 0.99) / 1e3
    );
    Ok(())
}

fn login_request() -> pb::LoginRequest {
    pb::LoginRequest {
        user: BENCH_USER.into(),
        password: BENCH_PASSWORD.into(),
        vo: BENCH_VO.into(),
        ttl_seconds: 0,
    }
}

fn print_ms(name: &str, sorted_ns: &[u64]) {
    println!("{name}_p50: {:.2} ms", percentile(sorted_ns, 0.50) / 1e6);
    println!("{name}_p99: {:.2} ms", percentile(sorted_ns, 0.99) / 1e6);
}

async fn login_round_trip(xosd: &Path, n: u32) -> anyhow::Result<()> {
    let mut grid = Grid::new(xosd)?;
    grid.start_site(BENCH_SITE, 1).await?;
    let result = logins_on(&grid, n).await;
    grid.stop_all().await;
    result
}

async fn logins_on(grid: &Grid, n: u32) -> anyhow::Result<()> {
    // The site administrator sets up a user and a VO the site serves.
    let profile = Profile::load(&grid.admin_dir())?;
    let endpoint = profile.endpoint.clone();
    let mut admin = VoClient::connect(&profile, &endpoint, true, None)?;
    admin
        .add_user(pb::AddUserRequest {
            name: BENCH_USER.into(),
            password: BENCH_PASSWORD.into(),
        })
        .await?;
    admin
        .create_vo(pb::CreateVoRequest {
            name: BENCH_VO.into(),
            first_admin: BENCH_USER.into(),
        })
        .await?;
    admin
        .create_group(pb::CreateGroupRequest {
            vo: BENCH_VO.into(),
            path: format!("/{BENCH_VO}/analysis"),
        })
        .await?;
    admin
        .grant_role(pb::RoleRequest {
            vo: BENCH_VO.into(),
            user: BENCH_USER.into(),
            group: format!("/{BENCH_VO}/analysis"),
            role: "member".into(),
        })
        .await?;
    admin
        .serve_vo(pb::ServeVoRequest {
            vo: BENCH_VO.into(),
            nodes: Vec::new(),
            max_cores: 0,
            stop: false,
        })
        .await?;

    // One login whose credential the node then accepts.
    let first = VoClient::connect(&profile, &endpoint, false, None)?
        .login(login_request())
        .await?;
    let who = VoClient::connect(&profile, &endpoint, false, Some(first.token))?
        .whoami(pb::WhoamiRequest {})
        .await?;
    ensure!(
        who.subject == BENCH_USER && who.vo == BENCH_VO,
        "whoami answered {} in {}",
        who.subject,
        who.vo
    );

    println!(
        "# 1 xosd on loopback (site authority); local account, argon2id 19 MiB t=2 p=1; Vo/Login over TLS 1.3"
    );
    // A fresh client each time: TCP, TLS handshake, one RPC, as `xos login` does.
    let mut fresh = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        let r = VoClient::connect(&profile, &endpoint, false, None)?
            .login(login_request())
            .await?;
        fresh.push(nanos(start.elapsed()));
        ensure!(!r.token.is_empty(), "a login returned no credential");
    }
    fresh.sort_unstable();
    println!("logins: {} count", fresh.len());
    print_ms("login_round_trip", &fresh);

    // One connection set up before measuring: the RPC alone.
    let mut client = VoClient::connect(&profile, &endpoint, false, None)?;
    client.login(login_request()).await?;
    let mut reused = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        let r = client.login(login_request()).await?;
        reused.push(nanos(start.elapsed()));
        ensure!(!r.token.is_empty(), "a login returned no credential");
    }
    reused.sort_unstable();
    print_ms("login_round_trip_reused_connection", &reused);

    // The command itself: `xos login` spawned, with its profile in a fresh
    // config dir (first run saves the CA), the credential saved 0600.
    let xos = std::env::current_exe()?;
    let user_dir = grid.root().join("bench-user");
    let ca = grid.admin_dir().join("ca.crt");
    let mut command = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        let out = Command::new(&xos)
            .arg("--config-dir")
            .arg(&user_dir)
            .args(["--endpoint", &endpoint])
            .args(["login", "--user", BENCH_USER, "--vo", BENCH_VO, "--ca"])
            .arg(&ca)
            .env("XOS_PASSWORD", BENCH_PASSWORD)
            .env_remove("XOS_LOG")
            .stdin(Stdio::null())
            .output()?;
        command.push(nanos(start.elapsed()));
        ensure!(
            out.status.success(),
            "xos login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    command.sort_unstable();
    print_ms("xos_login_command", &command);

    // Where the time goes: the password check alone, and one audit record.
    let hash = passwords::hash(BENCH_PASSWORD)?;
    let runs = n.clamp(1, 50);
    let mut argon = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let start = Instant::now();
        let ok = passwords::check(black_box(BENCH_PASSWORD), black_box(&hash));
        argon.push(nanos(start.elapsed()));
        ensure!(ok, "the password check failed");
    }
    argon.sort_unstable();
    println!(
        "# breakdown: one argon2id check in this process; one audit record appended and fsynced beside the node's data"
    );
    print_ms("argon2id_check", &argon);

    let audit_path = grid.root().join("bench-audit.log");
    let log = AuditLog::open(&audit_path, "bench")?;
    let mut audit = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        log.append(AuditEvent::new(
            BENCH_USER,
            "login",
            format!("vo {BENCH_VO}"),
            AuditDecision::Allow,
        ))?;
        audit.push(nanos(start.elapsed()));
    }
    audit.sort_unstable();
    print_ms("audit_append", &audit);
    Ok(())
}
