//! `xos submit`, `ps`, `status`, `kill`, `hold`, `release`, `wait`, `logs`
//! and `acct` (and the `xsub`, `xps`, `xkill`, `xwait` links).

use std::io::Read;

use anyhow::Context as _;
use xtreem_client::JobsClient;
use xtreem_directory::format_bytes;
use xtreem_proto::jobs as pb;
use xtreem_util::time::unix_now_millis;

use super::Context;
use crate::cli::{AcctArgs, KillArgs, PsArgs, ReserveArgs, SubmitArgs};
use crate::output::{json, table};

impl Context {
    /// A jobs client: with the user's VO credential if there is one, else
    /// with the site administrator certificate.
    pub fn jobs_client(&self, vo: Option<&str>) -> anyhow::Result<JobsClient> {
        let (profile, endpoint, as_admin, token) = self.user_or_admin(vo)?;
        Ok(JobsClient::connect(&profile, &endpoint, as_admin, token)?)
    }
}

pub async fn submit(ctx: &Context, args: SubmitArgs) -> anyhow::Result<()> {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the description from standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?
    };
    // Refused here first, so a typo never leaves the machine.
    let mut spec = match xtreem_job::JobSpec::parse(&text, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xos: {}: {e}", args.file.display());
            std::process::exit(i32::from(crate::exit::USAGE));
        }
    };
    if let Some(a) = &args.array {
        match xtreem_job::ArrayRange::parse(a) {
            Ok(r) => spec.array = Some(r),
            Err(e) => {
                eprintln!("xos: --array: {e}");
                std::process::exit(i32::from(crate::exit::USAGE));
            }
        }
    }
    let mut client = ctx.jobs_client(args.vo.as_deref())?;
    let ids = client
        .submit(&text, args.array.as_deref(), args.hold)
        .await?;
    if ctx.json {
        return json(&ids);
    }
    match ids.as_slice() {
        [one] => println!("{one}"),
        [first, .., last] => println!("{} jobs: {first} .. {last}", ids.len()),
        [] => {}
    }
    Ok(())
}

fn duration_text(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, (ms % 1000) / 100)
    }
}

fn runtime(info: &pb::JobInfo) -> String {
    if info.started_unix_ms == 0 {
        return "-".into();
    }
    let end = if info.ended_unix_ms > 0 {
        info.ended_unix_ms
    } else {
        unix_now_millis()
    };
    duration_text(end.saturating_sub(info.started_unix_ms))
}

fn cpu(info: &pb::JobInfo) -> String {
    let ns: u64 = info.units.iter().map(|u| u.cpu_ns).sum();
    if ns == 0 && info.started_unix_ms == 0 {
        return "-".into();
    }
    format!("{:.2}s", ns as f64 / 1e9)
}

fn nodes(info: &pb::JobInfo) -> String {
    let mut nodes: Vec<&str> = info
        .units
        .iter()
        .map(|u| u.node.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    if nodes.is_empty() {
        "-".into()
    } else {
        nodes.join(",")
    }
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    }
}

pub async fn ps(ctx: &Context, args: PsArgs) -> anyhow::Result<()> {
    let mut client = ctx.jobs_client(args.vo.as_deref())?;
    let answer = client
        .list(pb::ListRequest {
            all: args.all,
            states: args.state,
            user: args.user.unwrap_or_default(),
            name: args.name.unwrap_or_default(),
            on_behalf: None,
            local: false,
            id: String::new(),
        })
        .await?;
    if ctx.json {
        let jobs: Vec<serde_json::Value> = answer.jobs.iter().map(job_json).collect();
        return json(&serde_json::json!({ "jobs": jobs, "notes": answer.notes }));
    }
    let rows: Vec<Vec<String>> = answer
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                short(&j.name, 20),
                j.owner.clone(),
                if j.from_replica {
                    format!("{}*", j.state)
                } else {
                    j.state.clone()
                },
                nodes(j),
                runtime(j),
                cpu(j),
                if j.exit.is_empty() {
                    "-".into()
                } else {
                    j.exit.clone()
                },
                short(&j.reason, 60),
            ]
        })
        .collect();
    table(
        &[
            "ID", "NAME", "USER", "STATE", "NODES", "TIME", "CPU", "EXIT", "REASON",
        ],
        &rows,
    );
    if answer.jobs.iter().any(|j| j.from_replica) {
        eprintln!("*: the job's home did not answer; shown as its nodes know it");
    }
    for note in &answer.notes {
        eprintln!("note: {note}");
    }
    Ok(())
}

fn job_json(j: &pb::JobInfo) -> serde_json::Value {
    serde_json::json!({
        "id": j.id, "name": j.name, "owner": j.owner, "vo": j.vo, "state": j.state,
        "reason": j.reason, "home": j.home, "submitted_unix_ms": j.submitted_unix_ms,
        "started_unix_ms": j.started_unix_ms, "ended_unix_ms": j.ended_unix_ms,
        "exit": j.exit, "exit_code": j.exit_code, "priority": j.priority, "cores": j.cores,
        "memory_bytes": j.memory_bytes, "restarts": j.restarts, "from_replica": j.from_replica,
        "units": j.units.iter().map(|u| serde_json::json!({
            "rank": u.rank, "node": u.node, "state": u.state, "exit": u.exit, "reason": u.reason,
            "started_unix_ms": u.started_unix_ms, "ended_unix_ms": u.ended_unix_ms,
            "cpu_ns": u.cpu_ns, "peak_memory_bytes": u.peak_memory_bytes,
            "io_read_bytes": u.io_read_bytes, "io_write_bytes": u.io_write_bytes, "attempt": u.attempt,
        })).collect::<Vec<_>>(),
        "events": j.events.iter().map(|e| serde_json::json!({"unix_ms": e.unix_ms, "text": e.text})).collect::<Vec<_>>(),
    })
}

fn clock(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

pub async fn status(ctx: &Context, job: &str, vo: Option<String>) -> anyhow::Result<()> {
    let mut client = ctx.jobs_client(vo.as_deref())?;
    let info = client.status(job).await?;
    if ctx.json {
        return json(&job_json(&info));
    }
    println!("job:      {}  ({})", info.id, info.name);
    println!("owner:    {} (VO {})", info.owner, info.vo);
    println!(
        "state:    {}{}",
        info.state,
        if info.reason.is_empty() {
            String::new()
        } else {
            format!(" — {}", info.reason)
        }
    );
    if !info.exit.is_empty() {
        println!("exit:     {}", info.exit);
    }
    println!(
        "asks:     {} cores, {} memory per unit; {} unit(s); priority {}; restarts {}",
        info.cores,
        format_bytes(info.memory_bytes),
        info.units.len(),
        info.priority,
        info.restarts
    );
    println!("runtime:  {}   cpu: {}", runtime(&info), cpu(&info));
    if info.from_replica {
        println!(
            "note:     the home {} did not answer; this is what the job's nodes know",
            info.home
        );
    }
    let rows: Vec<Vec<String>> = info
        .units
        .iter()
        .map(|u| {
            vec![
                u.rank.to_string(),
                if u.node.is_empty() {
                    "-".into()
                } else {
                    u.node.clone()
                },
                u.state.clone(),
                if u.exit.is_empty() {
                    "-".into()
                } else {
                    u.exit.clone()
                },
                format!("{:.2}s", u.cpu_ns as f64 / 1e9),
                format_bytes(u.peak_memory_bytes),
                if u.reason.is_empty() {
                    "-".into()
                } else {
                    u.reason.clone()
                },
            ]
        })
        .collect();
    println!();
    table(
        &["UNIT", "NODE", "STATE", "EXIT", "CPU", "PEAK_MEM", "REASON"],
        &rows,
    );
    if !info.events.is_empty() {
        println!("\ntimeline:");
        for e in &info.events {
            println!("  {}  {}", clock(e.unix_ms), e.text);
        }
    }
    Ok(())
}

pub async fn kill(ctx: &Context, args: KillArgs) -> anyhow::Result<()> {
    if let Err(e) = xtreem_job::parse_signal(&args.signal) {
        eprintln!("xos: -s {}: {e}", args.signal);
        std::process::exit(i32::from(crate::exit::USAGE));
    }
    let mut client = ctx.jobs_client(args.vo.as_deref())?;
    for job in &args.jobs {
        let units = client.signal(job, &args.signal).await?;
        if !ctx.json {
            println!("{job}: {} sent to {units} unit(s)", args.signal);
        }
    }
    Ok(())
}

pub async fn hold(ctx: &Context, job: &str, vo: Option<String>, hold: bool) -> anyhow::Result<()> {
    let mut client = ctx.jobs_client(vo.as_deref())?;
    let info = if hold {
        client.hold(job).await?
    } else {
        client.release(job).await?
    };
    if ctx.json {
        return json(&job_json(&info));
    }
    println!("{}: {}", info.id, info.state);
    Ok(())
}

/// Waits for every job; the exit code is the first failed job's, so
/// `xwait JOB` ends as the job did.
pub async fn wait(ctx: &Context, jobs: &[String], vo: Option<String>) -> anyhow::Result<()> {
    let mut client = ctx.jobs_client(vo.as_deref())?;
    let mut code = 0;
    for job in jobs {
        let info = client.wait(job).await?;
        if !ctx.json {
            println!(
                "{}: {}{}",
                info.id,
                info.state,
                if info.exit.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", info.exit)
                }
            );
        }
        let this = match info.state.as_str() {
            "done" => 0,
            _ if info.exit_code != 0 => info.exit_code,
            _ => 1,
        };
        if code == 0 {
            code = this;
        }
    }
    if code != 0 {
        std::process::exit(code.clamp(1, 255));
    }
    Ok(())
}

pub async fn logs(
    ctx: &Context,
    job: &str,
    follow: bool,
    stderr: bool,
    vo: Option<String>,
) -> anyhow::Result<()> {
    let mut client = ctx.jobs_client(vo.as_deref())?;
    let mut out = std::io::stdout();
    client.logs(job, stderr, follow, &mut out).await?;
    Ok(())
}

fn since_ms(text: &str) -> anyhow::Result<u64> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(
            unix_now_millis().saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX))
        );
    }
    let at = humantime::parse_rfc3339_weak(text).map_err(|_| {
        anyhow::anyhow!(
            "--since {text:?}: expected a time like 2026-11-01T00:00:00Z or a span like 24h"
        )
    })?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0))
}

pub async fn acct(ctx: &Context, args: AcctArgs) -> anyhow::Result<()> {
    let since = match &args.since {
        Some(s) => match since_ms(s) {
            Ok(ms) => ms,
            Err(e) => {
                eprintln!("xos: {e}");
                std::process::exit(i32::from(crate::exit::USAGE));
            }
        },
        None => 0,
    };
    let mut client = ctx.jobs_client(args.vo.as_deref())?;
    let answer = client
        .acct(pb::AcctRequest {
            vo: args.vo.unwrap_or_default(),
            user: args.user.unwrap_or_default(),
            since_unix_ms: since,
            on_behalf: None,
        })
        .await?;
    if ctx.json {
        let lines: Vec<serde_json::Value> = answer
            .lines
            .iter()
            .map(|l| {
                serde_json::json!({"user": l.user, "vo": l.vo, "jobs": l.jobs, "units": l.units,
                "cpu_ns": l.cpu_ns, "wall_ms": l.wall_ms, "peak_memory_bytes": l.peak_memory_bytes,
                "io_read_bytes": l.io_read_bytes, "io_write_bytes": l.io_write_bytes})
            })
            .collect();
        return json(&serde_json::json!({"lines": lines, "notes": answer.notes}));
    }
    let rows: Vec<Vec<String>> = answer
        .lines
        .iter()
        .map(|l| {
            vec![
                l.vo.clone(),
                l.user.clone(),
                l.jobs.to_string(),
                l.units.to_string(),
                format!("{:.2}s", l.cpu_ns as f64 / 1e9),
                duration_text(l.wall_ms),
                format_bytes(l.peak_memory_bytes),
                format_bytes(l.io_read_bytes),
                format_bytes(l.io_write_bytes),
            ]
        })
        .collect();
    table(
        &[
            "VO", "USER", "JOBS", "UNITS", "CPU", "WALL", "PEAK_MEM", "READ", "WRITTEN",
        ],
        &rows,
    );
    for note in &answer.notes {
        eprintln!("note: {note}");
    }
    Ok(())
}

pub async fn checkpoint(
    ctx: &Context,
    job: &str,
    to: Option<String>,
    vo: Option<String>,
) -> anyhow::Result<()> {
    if let Some(q) = &to
        && let Err(e) = xtreem_directory::Query::parse(q)
    {
        eprintln!("xos: --to: bad query {e}\n{}", e.render(q));
        std::process::exit(i32::from(crate::exit::USAGE));
    }
    let mut client = ctx.jobs_client(vo.as_deref())?;
    let info = match &to {
        Some(q) => client.migrate(job, q).await?,
        None => client.checkpoint(job).await?,
    };
    if ctx.json {
        return json(&job_json(&info));
    }
    match &to {
        Some(q) => println!(
            "{}: asked to checkpoint; it restarts on a node matching `{q}`",
            info.id
        ),
        None => println!(
            "{}: asked to checkpoint; it restarts from its files",
            info.id
        ),
    }
    Ok(())
}

fn usage_error(message: String) -> ! {
    eprintln!("xos: {message}");
    std::process::exit(i32::from(crate::exit::USAGE));
}

fn reservation_rows(list: &[pb::ReservationInfo]) -> Vec<Vec<String>> {
    list.iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.owner.clone(),
                r.state.clone(),
                r.nodes.join(","),
                r.cores.to_string(),
                format_bytes(r.memory_bytes),
                clock(r.start_unix_ms),
                clock(r.end_unix_ms),
                if r.exclusive { "exclusive" } else { "shared" }.into(),
            ]
        })
        .collect()
}

const RESERVATION_HEADER: [&str; 9] = [
    "ID", "OWNER", "STATE", "NODES", "CORES", "MEM", "START", "END", "MODE",
];

pub async fn reserve(ctx: &Context, args: ReserveArgs) -> anyhow::Result<()> {
    let memory = xtreem_job::parse_size(&args.memory)
        .unwrap_or_else(|e| usage_error(format!("--memory: {e}")));
    let duration = xtreem_job::parse_duration(&args.duration)
        .unwrap_or_else(|e| usage_error(format!("--duration: {e}")));
    let start = match &args.start {
        Some(text) => humantime::parse_rfc3339_weak(text)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_else(|| {
                usage_error(format!(
                    "--start {text:?}: expected a time like 2026-12-01T08:00:00Z"
                ))
            }),
        None => 0,
    };
    if let Some(q) = &args.query
        && let Err(e) = xtreem_directory::Query::parse(q)
    {
        usage_error(format!("--query: bad query {e}\n{}", e.render(q)));
    }
    let mut client = ctx.jobs_client(args.vo.as_deref())?;
    let r = client
        .reserve(pb::ReserveRequest {
            nodes: args.nodes,
            cores: args.cores,
            memory_bytes: memory,
            start_unix_ms: start,
            duration_ms: duration.saturating_mul(1000),
            exclusive: args.exclusive,
            constraints: args.query.unwrap_or_default(),
            on_behalf: None,
        })
        .await?;
    if ctx.json {
        return json(
            &serde_json::json!({"id": r.id, "nodes": r.nodes, "start_unix_ms": r.start_unix_ms,
            "end_unix_ms": r.end_unix_ms, "state": r.state, "exclusive": r.exclusive}),
        );
    }
    println!("{}", r.id);
    table(&RESERVATION_HEADER, &reservation_rows(&[r]));
    Ok(())
}

pub async fn reservations(ctx: &Context, vo: Option<String>) -> anyhow::Result<()> {
    let mut client = ctx.jobs_client(vo.as_deref())?;
    let list = client.reservations().await?;
    if ctx.json {
        let list: Vec<serde_json::Value> = list
            .iter()
            .map(|r| {
                serde_json::json!({"id": r.id, "owner": r.owner, "vo": r.vo, "nodes": r.nodes,
                "cores": r.cores, "memory_bytes": r.memory_bytes, "start_unix_ms": r.start_unix_ms,
                "end_unix_ms": r.end_unix_ms, "state": r.state, "exclusive": r.exclusive})
            })
            .collect();
        return json(&list);
    }
    table(&RESERVATION_HEADER, &reservation_rows(&list));
    Ok(())
}

pub async fn unreserve(ctx: &Context, id: &str, vo: Option<String>) -> anyhow::Result<()> {
    let mut client = ctx.jobs_client(vo.as_deref())?;
    let r = client.cancel_reservation(id).await?;
    if !ctx.json {
        println!("{}: {}", r.id, r.state);
    }
    Ok(())
}
