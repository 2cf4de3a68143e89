//! The home of a job: accepts it, places it (each job schedules itself: no
//! global scheduler), follows its units to their end, restarts it when a
//! node dies if its policy says so, and answers for it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use xtreem_directory::{NodeRecord, Query};
use xtreem_job::{Candidate, JobId, JobSpec, RestartPolicy, UsageRecord, rank};
use xtreem_proto::jobs as pb;
use xtreem_util::roles::Role;
use xtreem_util::time::unix_now_millis;

use super::clock;
use super::machine::JobCommand;
use super::peers;
use super::record::{
    CheckpointDecl, Exit, JobRecord, JobState, Owner, UnitRecord, UnitState, Usage,
};
use super::resource;
use crate::daemon::NodeShared;

/// Candidates asked for one placement at most.
const SAMPLE: usize = 8;
/// Placements running at once.
const PLACEMENTS_IN_FLIGHT: usize = 64;
/// How long after a start the home trusts its gossip view about deaths.
const VIEW_SETTLE: Duration = Duration::from_secs(5);
/// Parked jobs made ready when a unit ends.
const UNPARK_PER_END: usize = 4;
/// Jobs parked for room that each scheduler tick tries again, best first.
const TICK_DEPTH: usize = 256;
/// How long a Launch may take before the home tries elsewhere.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts a job (or an array of jobs): durable before the ids are returned.
/// Accepts a job (an array: one per index) from `owner`; `token` is the
/// credential its units get, `credential_note` goes to the timeline.
pub async fn submit(
    shared: &Arc<NodeShared>,
    owner: Owner,
    token: String,
    credential_note: Option<String>,
    spec: JobSpec,
    hold: bool,
) -> Result<Vec<String>, Status> {
    let now = unix_now_millis();
    let home = shared.config.name.to_string();
    let record = |spec: &JobSpec| {
        let mut job = JobRecord {
            id: String::new(),
            spec: spec.to_json(),
            name: spec.name.clone(),
            owner: owner.clone(),
            token: token.clone(),
            state: if hold {
                JobState::Held
            } else {
                JobState::Queued
            },
            reason: if hold {
                "held at submission".into()
            } else {
                "waiting to be placed".into()
            },
            priority: spec.priority,
            cores: spec.resources.cores,
            memory_bytes: spec.resources.memory_bytes,
            submitted_unix_ms: now,
            started_unix_ms: 0,
            ended_unix_ms: 0,
            units: (0..spec.count).map(UnitRecord::pending).collect(),
            events: Vec::new(),
            // The first attempt is reserved on disk with the job, so its
            // first placement needs no write before a node hears of it.
            attempt: 1,
            restarts: 0,
            checkpoint: spec.checkpoint.as_ref().map(|c| CheckpointDecl {
                exit_code: c.exit_code,
                signal: c.signal,
                files: c.files.clone(),
            }),
            saved: Vec::new(),
            checkpoints: 0,
            migrate_to: None,
        };
        job.event(
            now,
            format!(
                "submitted by {} of VO {} at {home}",
                owner.subject, owner.vo
            ),
        );
        if let Some(note) = &credential_note {
            job.event(now, note.clone());
        }
        job
    };
    let elements: Vec<(Option<u32>, Arc<JobSpec>)> = match &spec.array {
        Some(range) => range
            .indices()
            .map(|i| (Some(i), Arc::new(spec.with_array_index(i))))
            .collect(),
        None => vec![(None, Arc::new(spec))],
    };
    let jobs: Vec<(Option<u32>, JobRecord)> =
        elements.iter().map(|(i, s)| (*i, record(s))).collect();
    let templates: Vec<JobRecord> = jobs.iter().map(|(_, j)| j.clone()).collect();
    let ids = shared
        .jobs
        .writer
        .write(JobCommand::Submit {
            home: home.clone(),
            jobs,
        })
        .done()
        .await
        .map_err(|e| Status::internal(format!("the job was not accepted: {e}")))?;
    let accepted = templates
        .into_iter()
        .zip(&ids)
        .zip(elements)
        .map(|((mut j, id), (_, spec))| {
            j.id = id.clone();
            (j, spec)
        })
        .collect();
    shared.jobs.insert_active(accepted);
    shared.jobs.wake.notify_one();
    Ok(ids)
}

/// The scheduler of this home: places queued jobs when woken and every
/// second, and watches the nodes its jobs run on.
pub async fn scheduler(shared: Arc<NodeShared>, stop: CancellationToken) {
    let started = std::time::Instant::now();
    let permits = Arc::new(Semaphore::new(PLACEMENTS_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ticked = tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.jobs.wake.notified() => false,
            _ = tick.tick() => true,
        };
        if ticked {
            shared.jobs.unpark_on_tick(TICK_DEPTH);
        }
        loop {
            let free = permits.available_permits();
            if free == 0 {
                break;
            }
            let batch = shared.jobs.take_ready(free);
            if batch.is_empty() {
                break;
            }
            for id in batch {
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    break;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    place(&shared, &id).await;
                    shared.jobs.finish_placing(&id);
                    drop(permit);
                    // A placement slot is free: more ready jobs may go.
                    shared.jobs.wake.notify_one();
                });
            }
        }
        // After a start the gossip view needs a few probe rounds before a
        // node missing from it means anything.
        if ticked && started.elapsed() >= VIEW_SETTLE {
            watch_nodes(&shared).await;
        }
    }
}

/// What a dependency's state means for the job waiting on it.
enum DepState {
    Ready,
    Waiting(String),
    Broken(String),
}

async fn dependency(
    shared: &Arc<NodeShared>,
    job: &JobRecord,
    dep: &JobId,
    need_ok: bool,
) -> DepState {
    let id = dep.to_string();
    let (state, exit) = if dep.home == shared.config.name.as_str() {
        match shared.jobs.get(&id) {
            Some(d) => (d.state, d.exit()),
            None => return DepState::Broken(format!("dependency {id} does not exist")),
        }
    } else {
        match remote_status(shared, job, &id).await {
            Ok(info) => (
                JobState::parse(&info.state).unwrap_or(JobState::Queued),
                (!info.exit.is_empty()).then_some(Exit::Code(info.exit_code)),
            ),
            Err(e) if e.code() == tonic::Code::NotFound => {
                return DepState::Broken(format!("dependency {id} does not exist"));
            }
            Err(e) => {
                return DepState::Waiting(format!(
                    "cannot ask about dependency {id}: {}",
                    e.message()
                ));
            }
        }
    };
    if !state.is_terminal() {
        return DepState::Waiting(format!("waiting for {id} ({})", state.name()));
    }
    if need_ok && (state != JobState::Done || exit.is_some_and(|e| !e.is_success())) {
        return DepState::Broken(format!(
            "dependency {id} did not succeed ({}{})",
            state.name(),
            exit.map(|e| format!(", {}", e.text())).unwrap_or_default()
        ));
    }
    DepState::Ready
}

async fn remote_status(
    shared: &Arc<NodeShared>,
    job: &JobRecord,
    id: &str,
) -> Result<pb::JobInfo, Status> {
    let home = JobId::parse(id)
        .map_err(|e| Status::invalid_argument(e.to_string()))?
        .home;
    let endpoint = peers::endpoint_of(shared, &home)?;
    let mut client = shared.jobs.peers.jobs(shared, &endpoint)?;
    let answer = client
        .status(pb::JobRef {
            id: id.to_owned(),
            on_behalf: Some(pb::OnBehalf {
                token: job.token.clone(),
                admin: String::new(),
            }),
        })
        .await;
    if answer.is_err() {
        shared.jobs.peers.forget(&endpoint);
    }
    Ok(answer?.into_inner())
}

/// Sets a queued job's reason without a disk write when only the reason
/// changes (it is shown, not needed after a restart).
fn note_reason(shared: &NodeShared, id: &str, reason: String) {
    shared.jobs.update_reason(id, reason);
}

/// Like [`note_reason`], for a job that waits for something other than
/// room: every scheduler tick tries it again, however long the queue.
fn wait_reason(shared: &NodeShared, id: &str, reason: String) {
    shared.jobs.update_reason(id, reason);
    shared.jobs.mark_waiting(id);
}

/// Fails a job that can never run.
fn fail(shared: &NodeShared, id: &str, reason: String) {
    let now = unix_now_millis();
    shared.jobs.update(id, Vec::new(), |j| {
        if j.state.is_terminal() {
            return false;
        }
        j.state = JobState::Failed;
        j.reason = reason.clone();
        j.ended_unix_ms = now;
        j.token.clear();
        j.event(now, format!("failed: {reason}"));
        true
    });
}

/// Why no candidate was found: the nodes that match are all busy, or
/// something else (no node matches, none is big enough).
enum NoCandidate {
    Busy(String),
    Other(String),
}

/// The nodes that may run `spec` for `owner`, best first, at most SAMPLE.
fn candidates(
    shared: &NodeShared,
    spec: &JobSpec,
    owner: &Owner,
    seed: u64,
) -> Result<Vec<NodeRecord>, NoCandidate> {
    let other = |e: String| NoCandidate::Other(e);
    let query = match &spec.constraints {
        Some(text) => Query::parse(text).map_err(|e| other(format!("constraints: {e}")))?,
        None => Query::parse("").map_err(|e| other(format!("constraints: {e}")))?,
    };
    let me = shared.config.name.to_string();
    let own_site = shared.site_name().unwrap_or_default();
    let view = shared
        .directory
        .view
        .read()
        .map_err(|_| other("the directory view is unavailable".to_owned()))?;
    let records: Vec<NodeRecord> = view
        .iter()
        .filter(|r| {
            r.alive
                && r.descriptor.site == own_site
                && r.descriptor
                    .roles
                    .iter()
                    .any(|x| x == Role::Resource.as_str())
                && r.descriptor.vos.contains(&owner.vo)
                && query.matches(r)
        })
        .cloned()
        .collect();
    drop(view);
    if records.is_empty() {
        return Err(other(format!(
            "no alive resource node of this site serving VO {} matches{}",
            owner.vo,
            spec.constraints
                .as_deref()
                .map(|c| format!(" `{c}`"))
                .unwrap_or_default()
        )));
    }
    let list: Vec<Candidate> = records
        .iter()
        .map(|r| {
            let (free_cores, free_memory, load, running) =
                match (&r.dynamic, r.descriptor.node == me) {
                    (_, true) if shared.jobs.resource.is_some() => {
                        let side = shared
                            .jobs
                            .resource
                            .as_ref()
                            .map(|s| (s.free(), s.running_units()));
                        let ((c, m), n) = side.unwrap_or(((0, 0), 0));
                        let (asked_cores, asked_memory) = shared.jobs.asked_of(&me);
                        (
                            c.saturating_sub(asked_cores),
                            m.saturating_sub(asked_memory),
                            0.0,
                            n,
                        )
                    }
                    (Some(d), _) => (
                        d.free_cores.max(0.0) as u32,
                        d.free_memory_bytes,
                        f64::from(d.load),
                        d.running_jobs,
                    ),
                    (None, _) => (r.descriptor.cores, r.descriptor.memory_bytes, 0.0, 0),
                };
            // A sample can be seconds old; what this home itself placed
            // there since is known exactly.
            let (free_cores, free_memory) = if r.descriptor.node == me {
                (free_cores, free_memory)
            } else {
                let (mine_cores, mine_memory) = shared.jobs.placed_on(&r.descriptor.node);
                (
                    free_cores.min(r.descriptor.cores.saturating_sub(mine_cores)),
                    free_memory.min(r.descriptor.memory_bytes.saturating_sub(mine_memory)),
                )
            };
            Candidate {
                node: r.descriptor.node.clone(),
                free_cores,
                free_memory_bytes: free_memory,
                load,
                running_jobs: running,
                same_site: true,
            }
        })
        .collect();
    let order = rank(
        &list,
        spec.resources.cores,
        spec.resources.memory_bytes,
        SAMPLE,
        seed,
    );
    if order.is_empty() {
        let fits_somewhere = records.iter().any(|r| {
            r.descriptor.cores >= spec.resources.cores
                && r.descriptor.memory_bytes >= spec.resources.memory_bytes
        });
        return Err(if fits_somewhere {
            NoCandidate::Busy(format!(
                "every matching node is busy ({} candidates); waiting for room",
                records.len()
            ))
        } else {
            other(format!(
                "no node serving VO {} has {} cores and {} memory",
                owner.vo,
                spec.resources.cores,
                xtreem_directory::format_bytes(spec.resources.memory_bytes)
            ))
        });
    }
    Ok(order
        .into_iter()
        .filter_map(|i| records.get(i).cloned())
        .collect())
}

fn seed_of(id: &str, attempt: u32) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    attempt.hash(&mut h);
    h.finish()
}

async fn launch_on(
    shared: &Arc<NodeShared>,
    node: &NodeRecord,
    request: pb::LaunchRequest,
) -> Result<pb::LaunchResponse, Status> {
    if node.descriptor.node == shared.config.name.as_str() {
        return resource::launch(shared, request).await;
    }
    let endpoint = &node.descriptor.rpc_endpoint;
    let mut client = shared.jobs.peers.exec(shared, endpoint)?;
    let answer = tokio::time::timeout(LAUNCH_TIMEOUT, client.launch(request))
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "{} did not answer within 10 s",
                node.descriptor.node
            ))
        })?;
    if answer.is_err() {
        shared.jobs.peers.forget(endpoint);
    }
    Ok(answer?.into_inner())
}

/// Tries to place one queued job.
async fn place(shared: &Arc<NodeShared>, id: &str) {
    let Some(job) = shared.jobs.get(id).filter(|j| j.state == JobState::Queued) else {
        return;
    };
    let mut spec = match shared.jobs.spec_of(&job) {
        Ok(s) => s,
        Err(e) => {
            return fail(
                shared,
                id,
                format!("the stored description is unreadable: {e}"),
            );
        }
    };
    if let Some(to) = &job.migrate_to {
        Arc::make_mut(&mut spec).constraints = Some(to.clone());
    }
    if let Some(id) = spec.reservation.clone() {
        let r = match super::reservation::find(shared, &id).await {
            Ok(r) => r,
            Err(why) => return fail(shared, &job.id, format!("reservation: {why}")),
        };
        if r.owner.subject != job.owner.subject || r.owner.vo != job.owner.vo {
            return fail(
                shared,
                &job.id,
                format!(
                    "reservation {id} belongs to {} of VO {}",
                    r.owner.subject, r.owner.vo
                ),
            );
        }
        let now = unix_now_millis();
        match r.state_at(now) {
            "waiting" => {
                return wait_reason(
                    shared,
                    &job.id,
                    format!(
                        "waiting for reservation {id} to start at {}",
                        clock(r.start_unix_ms)
                    ),
                );
            }
            "active" => {}
            state => return fail(shared, &job.id, format!("reservation {id} has {state}")),
        }
        let within = format!("name in [{}]", r.nodes.join(","));
        let constraints = match &spec.constraints {
            Some(c) if !c.trim().is_empty() => format!("({c}) && {within}"),
            _ => within,
        };
        Arc::make_mut(&mut spec).constraints = Some(constraints);
    }
    for (deps, need_ok) in [(&spec.after_ok, true), (&spec.after_any, false)] {
        for dep in deps {
            match dependency(shared, &job, dep, need_ok).await {
                DepState::Ready => {}
                DepState::Waiting(why) => return wait_reason(shared, id, why),
                DepState::Broken(why) => return fail(shared, id, why),
            }
        }
    }
    // A job accepted by this process whose stored attempt no node has heard
    // of is placed under that number; any other placement claims the next.
    let reserved = shared.jobs.has_unsent_attempt(id);
    let attempt = if reserved {
        job.attempt
    } else {
        job.attempt + 1
    };
    let nodes = match candidates(shared, &spec, &job.owner, seed_of(id, attempt)) {
        Ok(n) => n,
        Err(NoCandidate::Busy(why)) => return note_reason(shared, id, why),
        Err(NoCandidate::Other(why)) => return wait_reason(shared, id, why),
    };
    if reserved {
        let still_queued = shared
            .jobs
            .get(id)
            .is_some_and(|j| j.state == JobState::Queued && j.attempt == attempt);
        if !shared.jobs.take_unsent_attempt(id) || !still_queued {
            return;
        }
    } else {
        // The new attempt is on disk before any node hears of it, so units
        // of an attempt the home forgot in a crash are recognised as stale.
        let claimed = shared
            .jobs
            .update_durably(id, Vec::new(), |j| {
                if j.state != JobState::Queued {
                    return false;
                }
                j.attempt = attempt;
                true
            })
            .await;
        if !matches!(claimed, Ok(Some(_))) {
            return;
        }
    }
    let placing_ms = unix_now_millis();
    let mut asked = None;
    let placement = if spec.count == 1 {
        place_single(shared, &job, &spec, attempt, &nodes, &mut asked).await
    } else {
        place_many(shared, &job, &spec, attempt, &nodes).await
    };
    let now = unix_now_millis();
    match placement {
        Ok((units, decision)) => {
            let updated = shared.jobs.update(id, Vec::new(), |j| {
                if j.attempt != attempt {
                    return false;
                }
                for answer in &units {
                    if let Some(u) = j.units.get_mut(answer.rank as usize)
                        && u.state == UnitState::Pending
                    {
                        *u = answer.clone();
                    }
                }
                j.migrate_to = None;
                if j.state == JobState::Queued {
                    j.state = JobState::Running;
                    j.reason.clear();
                    if j.started_unix_ms == 0 {
                        j.started_unix_ms = now;
                    }
                }
                j.event_at(placing_ms, decision.clone());
                settle(j, now);
                true
            });
            if updated.is_none() {
                // A quick unit's end may have closed the job before the
                // placement was written down: the timeline still gets it.
                shared
                    .jobs
                    .add_event_after_end(id, attempt, placing_ms, decision.clone());
            }
        }
        Err(why) => note_reason(shared, id, why),
    }
    // The job's record holds the admitted unit now.
    drop(asked);
}

/// Checkpoint files the home holds for `ranks`, to restore before start.
fn saved_files(job: &JobRecord, ranks: &[u32]) -> Vec<pb::CheckpointFile> {
    job.saved
        .iter()
        .filter(|s| ranks.contains(&s.rank))
        .map(|s| pb::CheckpointFile {
            rank: s.rank,
            file: s.file.clone(),
            size: s.size,
        })
        .collect()
}

fn unit_from_pb(u: &pb::UnitInfo) -> UnitRecord {
    let state = match u.state.as_str() {
        "running" => UnitState::Running,
        "suspended" => UnitState::Suspended,
        "ended" => UnitState::Ended,
        "lost" => UnitState::Lost,
        "pending" => UnitState::Pending,
        _ => UnitState::Failed,
    };
    let exit = if let Some(c) = u.exit.strip_prefix("exit ") {
        c.parse().ok().map(Exit::Code)
    } else if let Some(s) = u.exit.strip_prefix("signal ") {
        s.parse().ok().map(Exit::Signal)
    } else {
        None
    };
    UnitRecord {
        rank: u.rank,
        node: u.node.clone(),
        state,
        exit,
        reason: u.reason.clone(),
        started_unix_ms: u.started_unix_ms,
        ended_unix_ms: u.ended_unix_ms,
        usage: Usage {
            cpu_ns: u.cpu_ns,
            peak_memory_bytes: u.peak_memory_bytes,
            io_read_bytes: u.io_read_bytes,
            io_write_bytes: u.io_write_bytes,
        },
        attempt: u.attempt,
    }
}

async fn place_single(
    shared: &Arc<NodeShared>,
    job: &JobRecord,
    spec: &JobSpec,
    attempt: u32,
    nodes: &[NodeRecord],
    held: &mut Option<super::Asked>,
) -> Result<(Vec<UnitRecord>, String), String> {
    let mut refusals = Vec::new();
    let me = shared.config.name.as_str();
    for (i, node) in nodes.iter().enumerate() {
        let name = node.descriptor.node.as_str();
        // Concurrent placements are ranked with this job counted on `node`.
        let asked = shared
            .jobs
            .ask(name, spec.resources.cores, spec.resources.memory_bytes);
        let request = pb::LaunchRequest {
            job: job.id.clone(),
            spec: job.spec.clone(),
            ranks: vec![0],
            hosts: vec![node.descriptor.node.clone()],
            token: job.token.clone(),
            attempt,
            admit_only: false,
            checkpoint: saved_files(job, &[0]),
        };
        match launch_on(shared, node, request).await {
            Ok(answer) if answer.admitted => {
                // This node's own ledger counts the unit from its admission
                // on; another node's is counted from the job's record, once
                // the caller has written it.
                if name != me {
                    *held = Some(asked);
                }
                let units = answer.units.iter().map(unit_from_pb).collect();
                return Ok((
                    units,
                    format!(
                        "placed on {} (candidate {} of {}{})",
                        node.descriptor.node,
                        i + 1,
                        nodes.len(),
                        if refusals.is_empty() {
                            String::new()
                        } else {
                            format!("; refused by {}", refusals.join("; "))
                        }
                    ),
                ));
            }
            Ok(answer) => refusals.push(answer.reason),
            Err(e) => refusals.push(format!("{}: {}", node.descriptor.node, e.message())),
        }
    }
    Err(format!("no node admitted the job: {}", refusals.join("; ")))
}

async fn place_many(
    shared: &Arc<NodeShared>,
    job: &JobRecord,
    spec: &JobSpec,
    attempt: u32,
    nodes: &[NodeRecord],
) -> Result<(Vec<UnitRecord>, String), String> {
    // Spread ranks over the candidates, at most `per_node` (or what fits by
    // the node's size) on each, then admit on every node before starting
    // any, so every unit knows every host.
    let mut refusals = Vec::new();
    let mut usable: Vec<&NodeRecord> = nodes.iter().collect();
    for _round in 0..3 {
        let mut plan: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut hosts = vec![String::new(); spec.count as usize];
        let mut next_rank = 0u32;
        let fits = |n: &NodeRecord| {
            let by_cores = n.descriptor.cores / spec.resources.cores.max(1);
            let by_memory = n.descriptor.memory_bytes / spec.resources.memory_bytes.max(1);
            let fit = by_cores.min(u32::try_from(by_memory).unwrap_or(u32::MAX));
            spec.per_node.map_or(fit, |p| p.min(fit))
        };
        let mut room: Vec<u32> = usable.iter().map(|n| fits(n)).collect();
        // Round robin over the candidates spreads the units.
        'fill: while next_rank < spec.count {
            let mut placed_any = false;
            for (i, node) in usable.iter().enumerate() {
                if next_rank >= spec.count {
                    break 'fill;
                }
                if room[i] == 0 {
                    continue;
                }
                room[i] -= 1;
                plan.entry(node.descriptor.node.clone())
                    .or_default()
                    .push(next_rank);
                hosts[next_rank as usize] = node.descriptor.node.clone();
                next_rank += 1;
                placed_any = true;
            }
            if !placed_any {
                break;
            }
        }
        if next_rank < spec.count {
            return Err(format!(
                "{} units do not fit on the {} candidate nodes{}",
                spec.count,
                usable.len(),
                if refusals.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", refusals.join("; "))
                }
            ));
        }
        let request = |ranks: &Vec<u32>, admit_only| pb::LaunchRequest {
            job: job.id.clone(),
            spec: job.spec.clone(),
            ranks: ranks.clone(),
            hosts: hosts.clone(),
            token: job.token.clone(),
            attempt,
            admit_only,
            checkpoint: saved_files(job, ranks),
        };
        let by_name: BTreeMap<&str, &NodeRecord> = usable
            .iter()
            .map(|n| (n.descriptor.node.as_str(), *n))
            .collect();
        let mut refused: HashSet<String> = HashSet::new();
        let admissions = futures::future::join_all(plan.iter().map(|(name, ranks)| {
            let node = by_name[name.as_str()];
            launch_on(shared, node, request(ranks, true))
        }))
        .await;
        for ((name, _), answer) in plan.iter().zip(admissions) {
            match answer {
                Ok(a) if a.admitted => {}
                Ok(a) => {
                    refusals.push(a.reason);
                    refused.insert(name.clone());
                }
                Err(e) => {
                    refusals.push(format!("{name}: {}", e.message()));
                    refused.insert(name.clone());
                }
            }
        }
        if !refused.is_empty() {
            usable.retain(|n| !refused.contains(&n.descriptor.node));
            continue;
        }
        let starts = futures::future::join_all(plan.iter().map(|(name, ranks)| {
            let node = by_name[name.as_str()];
            launch_on(shared, node, request(ranks, false))
        }))
        .await;
        let mut units = Vec::new();
        for ((name, ranks), answer) in plan.iter().zip(starts) {
            match answer {
                Ok(a) if a.admitted => units.extend(a.units.iter().map(unit_from_pb)),
                Ok(a) => return Err(format!("{name} refused at start: {}", a.reason)),
                Err(e) => {
                    // Units that never started are lost: the job's end
                    // handling treats them like a dead node's.
                    units.extend(ranks.iter().map(|r| UnitRecord {
                        node: name.clone(),
                        state: UnitState::Lost,
                        reason: format!("start on {name} failed: {}", e.message()),
                        attempt,
                        ..UnitRecord::pending(*r)
                    }));
                }
            }
        }
        let layout: Vec<String> = plan
            .iter()
            .map(|(n, r)| {
                format!(
                    "{n} ({} {})",
                    if r.len() == 1 { "rank" } else { "ranks" },
                    join(r)
                )
            })
            .collect();
        return Ok((units, format!("placed on {}", layout.join(", "))));
    }
    Err(format!(
        "no set of nodes admitted the job: {}",
        refusals.join("; ")
    ))
}

fn join(ranks: &[u32]) -> String {
    ranks
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Brings a running job's state in line with its units: ended when every
/// unit is over. Returns the ids of nodes whose remaining units must be
/// killed because another unit failed.
fn settle(job: &mut JobRecord, now: u64) -> Vec<String> {
    if !job.state.is_active() {
        return Vec::new();
    }
    let checkpoint_code = job.checkpoint.as_ref().and_then(|c| c.exit_code);
    let checkpointed = |u: &UnitRecord| {
        checkpoint_code.is_some()
            && u.state == UnitState::Ended
            && u.exit == checkpoint_code.map(Exit::Code)
    };
    let failed = job
        .units
        .iter()
        .find(|u| {
            u.state.is_over()
                && !(u.state == UnitState::Ended && u.exit.is_some_and(Exit::is_success))
                && !checkpointed(u)
        })
        .cloned();
    if job.units.iter().all(|u| u.state.is_over()) {
        let killed_by_user = job.reason.starts_with("killed by");
        if failed.is_none() && !killed_by_user && job.units.iter().any(checkpointed) {
            // Self-checkpointed: run again from the saved files.
            job.checkpoints += 1;
            job.attempt += 1;
            job.state = JobState::Queued;
            let files = job.saved.len();
            job.reason = "restarting from its checkpoint".into();
            job.event(
                now,
                format!(
                    "checkpoint {} saved ({files} file{}); restarting{}",
                    job.checkpoints,
                    if files == 1 { "" } else { "s" },
                    job.migrate_to
                        .as_deref()
                        .map(|q| format!(" on a node matching `{q}`"))
                        .unwrap_or_default()
                ),
            );
            job.units = (0..u32::try_from(job.units.len()).unwrap_or(0))
                .map(UnitRecord::pending)
                .collect();
            return Vec::new();
        }
        job.ended_unix_ms = now;
        job.token.clear();
        match failed {
            None => {
                job.state = JobState::Done;
                job.reason.clear();
                job.event(now, "done: every unit exited 0");
            }
            Some(u) if killed_by_user => {
                job.state = JobState::Cancelled;
                job.event(
                    now,
                    format!(
                        "cancelled: unit {} ended with {}",
                        u.rank,
                        u.exit.map(Exit::text).unwrap_or_default()
                    ),
                );
            }
            Some(u) => {
                job.state = JobState::Failed;
                job.reason = unit_failure(&u);
                job.event(now, format!("failed: {}", job.reason));
            }
        }
        return Vec::new();
    }
    match failed {
        // An MPI-style job cannot go on without one of its units: end the
        // others, as Slurm does for a step.
        Some(u) if job.units.len() > 1 => {
            if !job.reason.starts_with("unit ") && !job.reason.starts_with("killed by") {
                job.reason = format!("{}; ending the other units", unit_failure(&u));
                job.event(now, job.reason.clone());
                return job
                    .units
                    .iter()
                    .filter(|x| !x.state.is_over())
                    .map(|x| x.node.clone())
                    .collect();
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn unit_failure(u: &UnitRecord) -> String {
    let how = match (u.exit, u.reason.is_empty()) {
        (Some(e), true) => e.text(),
        (Some(e), false) => format!("{}: {}", e.text(), u.reason),
        (None, _) => u.reason.clone(),
    };
    format!("unit {} on {} {}: {how}", u.rank, u.node, u.state.name())
}

/// A resource node reports that a unit ended. Durable before it returns, so
/// the resource node may forget it.
/// Units a resource node may ask about in one `UnitsWanted`.
pub const UNITS_WANTED_MAX: usize = 4096;

/// For each unit that `node` runs: whether it is still the job's current
/// attempt there. Not wanted: a job that ended (or never was this home's),
/// an attempt the home has moved past (it restarted the job after declaring
/// the node dead), or a rank the home placed on another node.
pub fn units_wanted(shared: &NodeShared, node: &str, units: &[pb::UnitRef]) -> Vec<bool> {
    units
        .iter()
        .map(|u| {
            shared.jobs.get(&u.job).is_some_and(|job| {
                !job.state.is_terminal()
                    && job.attempt == u.attempt
                    && job
                        .units
                        .get(u.rank as usize)
                        .is_some_and(|unit| unit.state == UnitState::Pending || unit.node == node)
            })
        })
        .collect()
}

pub async fn unit_ended(
    shared: &Arc<NodeShared>,
    request: pb::UnitEndedRequest,
) -> Result<(), Status> {
    let unit = request
        .unit
        .as_ref()
        .map(unit_from_pb)
        .ok_or_else(|| Status::invalid_argument("unit missing"))?;
    let usage: Option<UsageRecord> = serde_json::from_str(&request.usage).ok();
    let now = unix_now_millis();
    let mut kill_on = Vec::new();
    let persisting =
        shared
            .jobs
            .update_then_persist(&request.job, usage.into_iter().collect(), |j| {
                if j.attempt != unit.attempt {
                    return false;
                }
                let Some(slot) = j.units.get_mut(unit.rank as usize) else {
                    return false;
                };
                if slot.state.is_over() && slot.node == unit.node {
                    return false;
                }
                *slot = unit.clone();
                j.event(
                    now,
                    format!(
                        "unit {} on {} {}{}",
                        unit.rank,
                        unit.node,
                        unit.exit
                            .map(Exit::text)
                            .unwrap_or_else(|| unit.state.name().to_owned()),
                        if unit.reason.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", unit.reason)
                        }
                    ),
                );
                if j.state == JobState::Queued {
                    j.state = JobState::Running;
                }
                if j.started_unix_ms == 0 {
                    j.started_unix_ms = if unit.started_unix_ms > 0 {
                        unit.started_unix_ms
                    } else {
                        now
                    };
                }
                kill_on = settle(j, now);
                true
            });
    if persisting.is_some() {
        // Room for a few waiting jobs, and parked ones with dependencies on
        // this job may go too: at once, not after this end's disk sync.
        // Their placements are written after it, so a crash cannot keep a
        // placement and lose the end that made room for it.
        shared.jobs.unpark(UNPARK_PER_END);
        shared.jobs.wake.notify_one();
    }
    let result = match persisting {
        Some(p) => Some(p.durable().await.map_err(Status::internal)?),
        None => None,
    };
    if let Some(job) = &result
        && job.state.is_terminal()
        && !job.saved.is_empty()
    {
        super::checkpoint::discard(shared, &job.id);
    }
    if result.is_some() && !kill_on.is_empty() {
        let shared = Arc::clone(shared);
        let job = request.job.clone();
        tokio::spawn(async move {
            signal_nodes(&shared, &job, libc::SIGKILL, kill_on).await;
        });
    }
    Ok(())
}

/// Sends `signal` to the units of `job` on `nodes`; the count of units.
pub async fn signal_nodes(
    shared: &Arc<NodeShared>,
    job: &str,
    signal: i32,
    nodes: Vec<String>,
) -> u32 {
    let mut unique: Vec<String> = nodes;
    unique.sort();
    unique.dedup();
    let calls = unique.into_iter().map(|node| {
        let shared = Arc::clone(shared);
        let job = job.to_owned();
        async move {
            if node == shared.config.name.as_str() {
                return resource::signal_units(&shared, &job, signal)
                    .await
                    .unwrap_or(0);
            }
            let Ok(endpoint) = peers::endpoint_of(&shared, &node) else {
                return 0;
            };
            let Ok(mut client) = shared.jobs.peers.exec(&shared, &endpoint) else {
                return 0;
            };
            match client
                .signal_units(pb::SignalUnitsRequest { job, signal })
                .await
            {
                Ok(r) => r.into_inner().units,
                Err(e) => {
                    tracing::warn!(node, error = %e, "cannot signal units");
                    shared.jobs.peers.forget(&endpoint);
                    0
                }
            }
        }
    });
    futures::future::join_all(calls).await.into_iter().sum()
}

/// `xkill`: a queued or held job ends at once; a running one gets the
/// signal on every unit (STOP and CONT suspend and resume it).
pub async fn signal(
    shared: &Arc<NodeShared>,
    id: &str,
    signal: i32,
    by: &str,
) -> Result<u32, Status> {
    let job = shared
        .jobs
        .get(id)
        .ok_or_else(|| Status::not_found(format!("no job {id}")))?;
    let now = unix_now_millis();
    let name = signal_name(signal);
    if matches!(job.state, JobState::Queued | JobState::Held) {
        if matches!(signal, libc::SIGSTOP | libc::SIGCONT) {
            return Err(Status::failed_precondition(format!(
                "job {id} is {}: there is nothing to {}; use `xos hold`/`xos release`",
                job.state.name(),
                if signal == libc::SIGSTOP {
                    "suspend"
                } else {
                    "resume"
                }
            )));
        }
        shared.jobs.update(id, Vec::new(), |j| {
            if !matches!(j.state, JobState::Queued | JobState::Held) {
                return false;
            }
            j.state = JobState::Cancelled;
            j.reason = format!("killed by {by} with {name} before it started");
            j.ended_unix_ms = now;
            j.token.clear();
            j.event(now, j.reason.clone());
            true
        });
        return Ok(0);
    }
    if job.state.is_terminal() {
        return Err(Status::failed_precondition(format!(
            "job {id} has already ended ({})",
            job.state.name()
        )));
    }
    let ends = !matches!(
        signal,
        libc::SIGSTOP | libc::SIGCONT | libc::SIGUSR1 | libc::SIGUSR2 | libc::SIGWINCH
    );
    shared.jobs.update(id, Vec::new(), |j| {
        if j.state.is_terminal() {
            return false;
        }
        match signal {
            libc::SIGSTOP => j.state = JobState::Suspended,
            libc::SIGCONT => j.state = JobState::Running,
            _ => {}
        }
        if ends {
            j.reason = format!("killed by {by} with {name}");
        }
        j.event(now, format!("{name} sent by {by}"));
        for u in j.units.iter_mut() {
            match (signal, u.state) {
                (libc::SIGSTOP, UnitState::Running) => u.state = UnitState::Suspended,
                (libc::SIGCONT, UnitState::Suspended) => u.state = UnitState::Running,
                _ => {}
            }
        }
        true
    });
    let nodes = job
        .units
        .iter()
        .filter(|u| !u.state.is_over() && !u.node.is_empty())
        .map(|u| u.node.clone())
        .collect();
    Ok(signal_nodes(shared, id, signal, nodes).await)
}

/// `xos checkpoint` (and `xos migrate` with `to`): asks a running
/// self-checkpointing job to checkpoint by its declared signal; it then
/// exits with its checkpoint code and is restarted from its files, on a
/// node matching `to` if given.
pub async fn checkpoint(
    shared: &Arc<NodeShared>,
    id: &str,
    to: Option<String>,
    by: &str,
) -> Result<JobRecord, Status> {
    let job = shared
        .jobs
        .get(id)
        .ok_or_else(|| Status::not_found(format!("no job {id}")))?;
    if !job.state.is_active() {
        return Err(Status::failed_precondition(format!(
            "job {id} is {}; only a running job can be checkpointed",
            job.state.name()
        )));
    }
    let Some(signal) = job.checkpoint.as_ref().and_then(|c| c.signal) else {
        let transparent = match xtreem_exec::criu_available() {
            Ok(()) => {
                "CRIU passes `criu check` here, but its backend is not wired to jobs yet".to_owned()
            }
            Err(why) => format!(
                "transparent checkpointing needs CRIU, which is not usable on this machine ({why})"
            ),
        };
        return Err(Status::failed_precondition(format!(
            "job {id} declares no checkpoint signal ([checkpoint] signal in its description), so it cannot be asked to checkpoint; {transparent}"
        )));
    };
    if let Some(q) = &to {
        Query::parse(q).map_err(|e| {
            Status::invalid_argument(format!("--to: bad query {e}\n{}", e.render(q)))
        })?;
    }
    let now = unix_now_millis();
    let updated = shared.jobs.update(id, Vec::new(), |j| {
        if !j.state.is_active() {
            return false;
        }
        j.migrate_to = to.clone();
        j.event(
            now,
            match &to {
                Some(q) => {
                    format!("migration to `{q}` requested by {by}: checkpoint signal {signal} sent")
                }
                None => format!("checkpoint requested by {by}: signal {signal} sent"),
            },
        );
        true
    });
    let nodes = job
        .units
        .iter()
        .filter(|u| !u.state.is_over() && !u.node.is_empty())
        .map(|u| u.node.clone())
        .collect();
    signal_nodes(shared, id, signal, nodes).await;
    updated.ok_or_else(|| Status::aborted(format!("job {id} changed meanwhile; try again")))
}

/// `xos hold` / `xos release` of a job that has not started.
pub fn hold(shared: &NodeShared, id: &str, hold: bool, by: &str) -> Result<JobRecord, Status> {
    let job = shared
        .jobs
        .get(id)
        .ok_or_else(|| Status::not_found(format!("no job {id}")))?;
    let (from, to) = if hold {
        (JobState::Queued, JobState::Held)
    } else {
        (JobState::Held, JobState::Queued)
    };
    if job.state != from {
        return Err(Status::failed_precondition(format!(
            "job {id} is {}; only a {} job can be {}",
            job.state.name(),
            from.name(),
            if hold { "held" } else { "released" }
        )));
    }
    let now = unix_now_millis();
    let updated = shared.jobs.update(id, Vec::new(), |j| {
        if j.state != from {
            return false;
        }
        j.state = to;
        j.reason = if hold {
            format!("held by {by}")
        } else {
            "waiting to be placed".into()
        };
        j.event(
            now,
            format!("{} by {by}", if hold { "held" } else { "released" }),
        );
        true
    });
    if !hold {
        shared.jobs.wake.notify_one();
    }
    updated.ok_or_else(|| Status::aborted(format!("job {id} changed meanwhile; try again")))
}

/// Units on nodes the directory holds as dead are lost; their jobs restart
/// elsewhere if their policy allows, else they fail with the reason.
async fn watch_nodes(shared: &Arc<NodeShared>) {
    let running = shared.jobs.active_where(|j| j.state.is_active());
    for job in running {
        let dead: Vec<String> = job
            .units
            .iter()
            .filter(|u| {
                !u.state.is_over() && !u.node.is_empty() && peers::is_known_dead(shared, &u.node)
            })
            .map(|u| u.node.clone())
            .collect();
        if dead.is_empty() {
            continue;
        }
        let policy = JobSpec::from_json(&job.spec)
            .map(|s| s.restart)
            .unwrap_or(RestartPolicy::Never);
        let now = unix_now_millis();
        let mut survivors = Vec::new();
        let dead_list = {
            let mut d = dead.clone();
            d.sort();
            d.dedup();
            d.join(", ")
        };
        shared.jobs.update(&job.id, Vec::new(), |j| {
            if j.attempt != job.attempt {
                return false;
            }
            for u in j.units.iter_mut() {
                if !u.state.is_over() && dead.contains(&u.node) {
                    u.state = UnitState::Lost;
                    u.ended_unix_ms = now;
                    u.reason = format!("node {} died", u.node);
                }
            }
            survivors = j
                .units
                .iter()
                .filter(|u| !u.state.is_over())
                .map(|u| u.node.clone())
                .collect();
            match policy {
                RestartPolicy::OnNodeFailure { max_restarts } if j.restarts < max_restarts => {
                    j.restarts += 1;
                    // Units of the old attempt that still report are stale.
                    j.attempt += 1;
                    j.state = JobState::Queued;
                    j.reason = format!("restarting after node {dead_list} died");
                    j.event(
                        now,
                        format!(
                            "node {dead_list} died; restart {} of {max_restarts}",
                            j.restarts
                        ),
                    );
                    j.units = (0..u32::try_from(j.units.len()).unwrap_or(0))
                        .map(UnitRecord::pending)
                        .collect();
                }
                _ => {
                    j.event(
                        now,
                        format!("node {dead_list} died; the restart policy allows no restart"),
                    );
                    j.reason = format!("node {dead_list} died while the job ran");
                    if survivors.is_empty() {
                        j.state = JobState::Failed;
                        j.ended_unix_ms = now;
                        j.token.clear();
                    }
                }
            }
            true
        });
        if !survivors.is_empty() {
            signal_nodes(shared, &job.id, libc::SIGKILL, survivors).await;
        }
        shared.jobs.wake.notify_one();
    }
}

/// Where a job is now (or was), for `xos status`: the home's record.
pub fn info(job: &JobRecord, with_events: bool) -> pb::JobInfo {
    job.to_pb(with_events)
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {signal}"))
}
