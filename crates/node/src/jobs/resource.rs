//! The resource side: admitting units under this node's own capacity and
//! site policy, running them under supervisors, re-adopting them after a
//! daemon restart, reporting each unit's end to its home until the home
//! has it, and killing units their home no longer wants (asked every 10 s:
//! a node declared dead may come back running an attempt the home has
//! restarted elsewhere).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::Status;
use xtreem_accounts::Mapping;
use xtreem_exec::{Executor, LaunchSpec, Limits, UnitState as ExecState, UnitStatus};
use xtreem_job::{JobId, JobSpec, UsageRecord};
use xtreem_proto::jobs as pb;
use xtreem_token::Claims;
use xtreem_util::time::unix_now_millis;

use super::clock;
use super::machine::JobCommand;
use super::peers;
use super::record::{Exit, LocalUnit, Owner, Reservation, UnitRecord, UnitState, Usage};
use crate::daemon::NodeShared;

/// How long an admission without a start holds its resources.
const ADMISSION_TTL: Duration = Duration::from_secs(15);
/// Processes one unit may have.
const UNIT_PIDS_MAX: u32 = 4096;
/// How often a running unit marks its account as in use.
const TOUCH_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Claim {
    cores: u32,
    memory: u64,
    vo: String,
    owner: String,
    /// The reservation whose capacity the claim uses, if any.
    reservation: Option<String>,
}

#[derive(Default)]
struct Ledger {
    /// Resources of running units, by unit.
    running: HashMap<String, Claim>,
    /// Admitted but not started, by `JOB#ATTEMPT`.
    admissions: HashMap<String, (Claim, Instant)>,
    /// Reservations this node holds capacity for.
    reservations: HashMap<String, Reservation>,
}

impl Ledger {
    /// See [`ResourceSide::plainly_short`].
    fn plainly_short(
        &self,
        capacity: &Capacity,
        key: &str,
        cores: u32,
        memory: u64,
    ) -> Option<String> {
        if self.admissions.contains_key(key) {
            return None;
        }
        let (c, m) = self.used();
        let free_cores = capacity.cores.saturating_sub(c);
        let free_memory = capacity.memory_bytes.saturating_sub(m);
        if cores > free_cores {
            Some(format!(
                "needs {cores} cores, {free_cores} of {} free",
                capacity.cores
            ))
        } else if memory > free_memory {
            Some(format!(
                "needs {} memory, {} free",
                xtreem_directory::format_bytes(memory),
                xtreem_directory::format_bytes(free_memory)
            ))
        } else {
            None
        }
    }

    fn claims(&self) -> impl Iterator<Item = &Claim> {
        let now = Instant::now();
        self.running.values().chain(
            self.admissions
                .values()
                .filter(move |(_, expires)| *expires > now)
                .map(|(c, _)| c),
        )
    }

    fn sum<'a>(claims: impl Iterator<Item = &'a Claim>) -> (u32, u64) {
        claims.fold((0, 0), |(c, m), claim| {
            (
                c.saturating_add(claim.cores),
                m.saturating_add(claim.memory),
            )
        })
    }

    /// Claims that no active reservation covers: outside any reservation,
    /// or in one that has ended, been cancelled or is unknown here. A job
    /// that outlives its reservation keeps running, on the node's ordinary
    /// capacity.
    fn uncovered_claims(&self, now_ms: u64) -> impl Iterator<Item = &Claim> {
        self.claims().filter(move |c| match &c.reservation {
            None => true,
            Some(id) => !self
                .reservations
                .get(id)
                .is_some_and(|r| r.is_active_at(now_ms)),
        })
    }

    /// What units outside active reservations use, plus what active
    /// reservations keep back: the rest is free for any job.
    fn used(&self) -> (u32, u64) {
        let now_ms = unix_now_millis();
        let (c, m) = Self::sum(self.uncovered_claims(now_ms));
        self.reservations
            .values()
            .filter(|r| r.is_active_at(now_ms))
            .fold((c, m), |(c, m), r| {
                (c.saturating_add(r.cores), m.saturating_add(r.memory_bytes))
            })
    }

    fn used_in(&self, reservation: &str) -> (u32, u64) {
        Self::sum(
            self.claims()
                .filter(|c| c.reservation.as_deref() == Some(reservation)),
        )
    }

    fn vo_cores(&self, vo: &str) -> u32 {
        let now = Instant::now();
        self.running
            .values()
            .chain(
                self.admissions
                    .values()
                    .filter(|(_, e)| *e > now)
                    .map(|(c, _)| c),
            )
            .filter(|c| c.vo == vo)
            .map(|c| c.cores)
            .sum()
    }
}

/// What this node can give to jobs.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub cores: u32,
    pub memory_bytes: u64,
}

pub struct ResourceSide {
    pub exec: Executor,
    pub capacity: Capacity,
    ledger: Mutex<Ledger>,
    units: Mutex<HashMap<String, LocalUnit>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ResourceSide {
    pub fn open(
        exec: Executor,
        capacity: Capacity,
        units: Vec<LocalUnit>,
        held: Vec<Reservation>,
    ) -> ResourceSide {
        let mut ledger = Ledger {
            reservations: held.into_iter().map(|r| (r.id.clone(), r)).collect(),
            ..Ledger::default()
        };
        for u in units.iter().filter(|u| !u.record.state.is_over()) {
            ledger.running.insert(
                u.unit.clone(),
                Claim {
                    cores: u.cores,
                    memory: u.memory_bytes,
                    vo: u.owner.vo.clone(),
                    owner: u.owner.subject.clone(),
                    reservation: u.reservation.clone(),
                },
            );
        }
        ResourceSide {
            exec,
            capacity,
            ledger: Mutex::new(ledger),
            units: Mutex::new(units.into_iter().map(|u| (u.unit.clone(), u)).collect()),
        }
    }

    /// Holds `claim` for `key` if it fits, or says what is short.
    fn admit(&self, key: &str, claim: Claim, vo_cap: u32) -> Result<(), String> {
        let mut ledger = lock(&self.ledger);
        let now = Instant::now();
        let now_ms = unix_now_millis();
        ledger.admissions.retain(|_, (_, e)| *e > now);
        if ledger.admissions.contains_key(key) {
            return Ok(());
        }
        let (free_cores, free_memory, of_cores) = match &claim.reservation {
            Some(id) => {
                let r = ledger
                    .reservations
                    .get(id)
                    .ok_or_else(|| format!("reservation {id} holds nothing on this node"))?;
                if r.owner.subject != claim.owner || r.owner.vo != claim.vo {
                    return Err(format!(
                        "reservation {id} belongs to {} of VO {}",
                        r.owner.subject, r.owner.vo
                    ));
                }
                if !r.is_active_at(now_ms) {
                    return Err(format!("reservation {id} is {}", r.state_at(now_ms)));
                }
                // An exclusive reservation has the whole node.
                let (rc, rm) = if r.exclusive {
                    (self.capacity.cores, self.capacity.memory_bytes)
                } else {
                    (r.cores, r.memory_bytes)
                };
                let (c, m) = ledger.used_in(id);
                (rc.saturating_sub(c), rm.saturating_sub(m), rc)
            }
            None => {
                if let Some(r) = ledger
                    .reservations
                    .values()
                    .find(|r| r.exclusive && r.is_active_at(now_ms))
                {
                    return Err(format!(
                        "reserved exclusively ({}) until {}",
                        r.id,
                        clock(r.end_unix_ms)
                    ));
                }
                let (c, m) = ledger.used();
                (
                    self.capacity.cores.saturating_sub(c),
                    self.capacity.memory_bytes.saturating_sub(m),
                    self.capacity.cores,
                )
            }
        };
        if claim.cores > free_cores {
            return Err(format!(
                "needs {} cores, {free_cores} of {of_cores} free",
                claim.cores
            ));
        }
        if claim.memory > free_memory {
            return Err(format!(
                "needs {} memory, {} free",
                xtreem_directory::format_bytes(claim.memory),
                xtreem_directory::format_bytes(free_memory)
            ));
        }
        if vo_cap > 0 {
            let vo_used = ledger.vo_cores(&claim.vo);
            if vo_used.saturating_add(claim.cores) > vo_cap {
                return Err(format!(
                    "VO {} may use at most {vo_cap} cores here (site policy) and uses {vo_used}",
                    claim.vo
                ));
            }
        }
        ledger
            .admissions
            .insert(key.to_owned(), (claim, now + ADMISSION_TTL));
        Ok(())
    }

    /// What is short for a claim outside any reservation, if it plainly
    /// cannot fit now (no admission held for `key`); `admit` still decides
    /// every claim this lets through.
    fn plainly_short(&self, key: &str, cores: u32, memory: u64) -> Option<String> {
        lock(&self.ledger).plainly_short(&self.capacity, key, cores, memory)
    }

    /// Holds capacity for a reservation if its window leaves room next to
    /// the reservations already held (and, if it starts now, next to the
    /// units running outside reservations).
    fn hold(&self, r: &Reservation) -> Result<(), String> {
        let mut ledger = lock(&self.ledger);
        let now_ms = unix_now_millis();
        if ledger.reservations.contains_key(&r.id) {
            return Ok(());
        }
        let overlapping: Vec<&Reservation> = ledger
            .reservations
            .values()
            .filter(|x| x.overlaps(r.start_unix_ms, r.end_unix_ms))
            .collect();
        if let Some(x) = overlapping.iter().find(|x| x.exclusive || r.exclusive) {
            return Err(format!(
                "its window overlaps reservation {}{}",
                x.id,
                if x.exclusive { " (exclusive)" } else { "" }
            ));
        }
        let (c, m) = overlapping.iter().fold((0u32, 0u64), |(c, m), x| {
            (c.saturating_add(x.cores), m.saturating_add(x.memory_bytes))
        });
        let (running_c, running_m) = if r.start_unix_ms <= now_ms {
            Ledger::sum(ledger.uncovered_claims(now_ms))
        } else {
            (0, 0)
        };
        if r.exclusive && r.start_unix_ms <= now_ms && running_c > 0 {
            return Err(format!(
                "{running_c} cores are busy with running jobs; an exclusive reservation needs the node idle"
            ));
        }
        let cores_needed = if r.exclusive {
            self.capacity.cores
        } else {
            r.cores
        };
        if c.saturating_add(running_c).saturating_add(cores_needed) > self.capacity.cores {
            return Err(format!(
                "needs {} cores; {} of {} are reserved or busy in that window",
                r.cores,
                c.saturating_add(running_c),
                self.capacity.cores
            ));
        }
        if m.saturating_add(running_m).saturating_add(r.memory_bytes) > self.capacity.memory_bytes {
            return Err(format!(
                "needs {} memory; not that much is free in that window",
                xtreem_directory::format_bytes(r.memory_bytes)
            ));
        }
        ledger.reservations.insert(r.id.clone(), r.clone());
        Ok(())
    }

    pub(super) fn unhold(&self, id: &str) -> bool {
        lock(&self.ledger).reservations.remove(id).is_some()
    }

    fn start_units(&self, key: &str, units: &[(String, Claim)]) {
        let mut ledger = lock(&self.ledger);
        ledger.admissions.remove(key);
        for (unit, claim) in units {
            ledger.running.insert(unit.clone(), claim.clone());
        }
    }

    fn release(&self, unit: &str) {
        lock(&self.ledger).running.remove(unit);
    }

    /// Free cores and memory now.
    pub fn free(&self) -> (u32, u64) {
        let (c, m) = lock(&self.ledger).used();
        (
            self.capacity.cores.saturating_sub(c),
            self.capacity.memory_bytes.saturating_sub(m),
        )
    }

    pub fn running_units(&self) -> u32 {
        u32::try_from(lock(&self.ledger).running.len()).unwrap_or(u32::MAX)
    }

    pub fn unit(&self, unit: &str) -> Option<LocalUnit> {
        lock(&self.units).get(unit).cloned()
    }

    pub fn units(&self) -> Vec<LocalUnit> {
        lock(&self.units).values().cloned().collect()
    }

    fn units_of(&self, job: &str) -> Vec<LocalUnit> {
        lock(&self.units)
            .values()
            .filter(|u| u.job == job)
            .cloned()
            .collect()
    }

    /// Marks `unit` as reported and queues that for the store, without a
    /// wait for the disk: if a crash loses the mark, the restarted daemon
    /// reports the unit again (as lost, if its state is removed by then),
    /// and the home, which holds its end already, ignores that. The unit
    /// stays in memory until the store has it (then [`Self::drop_reported`]),
    /// so its output can be found all along.
    fn mark_reported(&self, shared: &NodeShared, mut unit: LocalUnit) -> super::writer::Written {
        unit.reported = true;
        lock(&self.units).insert(unit.unit.clone(), unit.clone());
        shared.jobs.writer.apply(JobCommand::UnitReported {
            unit,
            at_unix_ms: unix_now_millis(),
        })
    }

    /// Forgets a reported unit in memory: its record is in the store.
    fn drop_reported(&self, unit: &str) {
        let mut units = lock(&self.units);
        if units.get(unit).is_some_and(|u| u.reported) {
            units.remove(unit);
        }
    }

    /// Holds `unit`'s new state in memory only.
    fn remember(&self, unit: LocalUnit) {
        lock(&self.units).insert(unit.unit.clone(), unit);
    }

    /// Holds `unit`'s new state and queues it for the store, without a
    /// wait for the disk.
    fn put(&self, shared: &NodeShared, unit: LocalUnit) {
        let mut units = lock(&self.units);
        units.insert(unit.unit.clone(), unit.clone());
        shared.jobs.writer.send(JobCommand::PutUnit { unit });
    }

    /// Like [`ResourceSide::put`]; the returned promise says when it is on
    /// disk.
    fn put_durably(&self, shared: &NodeShared, unit: LocalUnit) -> super::writer::Written {
        let mut units = lock(&self.units);
        units.insert(unit.unit.clone(), unit.clone());
        shared.jobs.writer.write(JobCommand::PutUnit { unit })
    }
}

/// The owner a home's token stands for, checked here as any credential is.
fn check_owner(shared: &NodeShared, token: &str) -> Result<(Claims, Owner), Status> {
    let trusted = shared.trust.current();
    let claims = trusted
        .verifier
        .verify(token)
        .map_err(|e| Status::unauthenticated(format!("the job owner's credential: {e}")))?;
    let vo = crate::rpc::vo::credential_vo(shared, &claims)?;
    let owner = Owner {
        subject: claims.sub.clone(),
        issuer: claims.iss.clone(),
        vo,
        groups: claims.groups.clone(),
    };
    Ok((claims, owner))
}

fn refuse(reason: impl Into<String>) -> pb::LaunchResponse {
    pb::LaunchResponse {
        admitted: false,
        reason: reason.into(),
        units: Vec::new(),
    }
}

/// Admits (and unless `admit_only`, starts) units of a job on this node.
pub async fn launch(
    shared: &Arc<NodeShared>,
    request: pb::LaunchRequest,
) -> Result<pb::LaunchResponse, Status> {
    let Some(side) = shared.jobs.resource.as_ref() else {
        return Ok(refuse(format!(
            "node {} has no resource role",
            shared.config.name
        )));
    };
    let job_id =
        JobId::parse(&request.job).map_err(|e| Status::invalid_argument(format!("job id: {e}")))?;
    // This node's own jobs come with the description parsed at their
    // submission (the same text: a job's description never changes).
    let spec = match shared.jobs.cached_spec(&request.job) {
        Some(spec) if job_id.home == shared.config.name.as_str() => spec,
        _ => Arc::new(
            JobSpec::from_json(&request.spec)
                .map_err(|e| Status::invalid_argument(format!("job description: {e}")))?,
        ),
    };
    if request.ranks.is_empty() || request.hosts.len() != spec.count as usize {
        return Err(Status::invalid_argument(format!(
            "a launch names at least one rank and one host per unit ({} units, {} hosts given)",
            spec.count,
            request.hosts.len()
        )));
    }
    if let Some(bad) = request.ranks.iter().find(|r| **r >= spec.count) {
        return Err(Status::invalid_argument(format!(
            "rank {bad} is not below the job's count {}",
            spec.count
        )));
    }
    let n = u32::try_from(request.ranks.len()).unwrap_or(u32::MAX);
    let cores = spec.resources.cores.saturating_mul(n);
    let key = format!("{}#{}", request.job, request.attempt);
    // A node with no room says so before the credential, account and
    // policy checks: homes ask busy nodes often, and the answer is no
    // whoever asks.
    if spec.reservation.is_none()
        && let Some(why) = side.plainly_short(
            &key,
            cores,
            spec.resources.memory_bytes.saturating_mul(u64::from(n)),
        )
    {
        return Ok(refuse(format!("node {}: {why}", shared.config.name)));
    }
    let (claims, owner) = check_owner(shared, &request.token)?;
    let mapping = match crate::access::local_account(shared, &claims, &owner.vo, cores) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Ok(refuse(format!(
                "node {} maps no accounts (no resource role or no account pool)",
                shared.config.name
            )));
        }
        Err(why) => return Ok(refuse(why)),
    };
    let vo_cap = shared
        .trust
        .current()
        .served(&owner.vo)
        .map(|s| s.max_cores)
        .unwrap_or(0);
    let per_unit = Claim {
        cores: spec.resources.cores,
        memory: spec.resources.memory_bytes,
        vo: owner.vo.clone(),
        owner: owner.subject.clone(),
        reservation: spec.reservation.clone(),
    };
    let total = Claim {
        cores,
        memory: spec.resources.memory_bytes.saturating_mul(u64::from(n)),
        ..per_unit.clone()
    };
    if let Err(why) = side.admit(&key, total, vo_cap) {
        return Ok(refuse(format!("node {}: {why}", shared.config.name)));
    }
    if request.admit_only {
        return Ok(pb::LaunchResponse {
            admitted: true,
            reason: String::new(),
            units: Vec::new(),
        });
    }

    let unit_names: Vec<(String, Claim)> = request
        .ranks
        .iter()
        .map(|r| (unit_name(&job_id, *r, request.attempt), per_unit.clone()))
        .collect();
    side.start_units(&key, &unit_names);
    let workdir = match prepare_workdir(shared, &mapping, &job_id, &spec) {
        Ok(w) => w,
        Err(why) => {
            for (u, _) in &unit_names {
                side.release(u);
            }
            return Ok(refuse(format!("node {}: {why}", shared.config.name)));
        }
    };
    if !request.checkpoint.is_empty() {
        let restored = super::checkpoint::restore(
            shared,
            &request.job,
            &job_id.home,
            &request.checkpoint,
            &workdir,
            mapping.uid,
            mapping.gid,
        )
        .await;
        if let Err(why) = restored {
            for (u, _) in &unit_names {
                side.release(u);
            }
            return Ok(refuse(format!(
                "node {}: cannot restore the checkpoint: {why}",
                shared.config.name
            )));
        }
    }
    let mut answers = Vec::new();
    for rank in &request.ranks {
        let unit = start_unit(
            shared, &job_id, &spec, &request, *rank, &owner, &mapping, &workdir,
        )
        .await;
        answers.push(unit.record.to_pb());
        let over = unit.record.state.is_over();
        let name = unit.unit.clone();
        if over {
            side.put(shared, unit);
            side.release(&name);
        } else {
            // Memory only until its end: while the unit runs, its executor
            // holds all a restarted daemon needs ([`adoptable`]), and most
            // units end before a write would have reached the disk.
            side.remember(unit);
            tokio::spawn(watch_unit(Arc::clone(shared), name));
        }
    }
    Ok(pb::LaunchResponse {
        admitted: true,
        reason: String::new(),
        units: answers,
    })
}

/// The job's working directory: the description's, or a directory of the
/// job in the user's scratch, owned by the mapped account.
fn prepare_workdir(
    shared: &NodeShared,
    mapping: &Mapping,
    job: &JobId,
    spec: &JobSpec,
) -> Result<PathBuf, String> {
    let mapper = shared
        .accounts
        .as_ref()
        .ok_or("this node maps no accounts")?;
    let scratch = mapper
        .prepare_scratch(mapping)
        .map_err(|e| format!("cannot prepare the user's scratch directory: {e}"))?;
    let dir = match &spec.workdir {
        Some(w) if Path::new(w).is_absolute() => PathBuf::from(w),
        Some(w) => scratch.join(w),
        None => scratch.join(job.array_parent().to_string()),
    };
    // One mkdir in the common case (a new job's directory in an existing
    // scratch); parents only when a relative workdir names them.
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    let cannot =
        |e: std::io::Error| format!("cannot create the working directory {}: {e}", dir.display());
    let made = match builder.create(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Parents as before: searchable, the job's own directory not.
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(cannot)?;
            }
            builder.create(&dir)
        }
        made => made,
    };
    let created = match made {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(cannot(e)),
    };
    if created {
        chown(&dir, mapping)?;
    }
    Ok(dir)
}

fn chown(path: &Path, mapping: &Mapping) -> Result<(), String> {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(mapping.uid)),
        Some(nix::unistd::Gid::from_raw(mapping.gid)),
    )
    .map_err(|e| format!("cannot give {} to uid {}: {e}", path.display(), mapping.uid))
}

/// The executor's name of a unit: `JOB.RANK-ATTEMPT`, so a restart on the
/// same node never meets the state of the attempt before it.
pub fn unit_name(job: &JobId, rank: u32, attempt: u32) -> String {
    format!("{}-{attempt}", job.unit(rank))
}

/// `%j` becomes the job id and `%r` the rank in output file names.
fn expand(pattern: &str, job: &JobId, rank: u32) -> String {
    pattern
        .replace("%j", &job.to_string())
        .replace("%r", &rank.to_string())
}

#[allow(clippy::too_many_arguments)]
async fn start_unit(
    shared: &Arc<NodeShared>,
    job: &JobId,
    spec: &JobSpec,
    request: &pb::LaunchRequest,
    rank: u32,
    owner: &Owner,
    mapping: &Mapping,
    workdir: &Path,
) -> LocalUnit {
    let unit = unit_name(job, rank, request.attempt);
    let in_workdir = |p: &str| {
        let p = expand(p, job, rank);
        if Path::new(&p).is_absolute() {
            PathBuf::from(p)
        } else {
            workdir.join(p)
        }
    };
    let stdout = spec
        .stdout
        .as_deref()
        .map(in_workdir)
        .unwrap_or_else(|| workdir.join(format!("{unit}.out")));
    let stderr = spec
        .stderr
        .as_deref()
        .map(in_workdir)
        .unwrap_or_else(|| workdir.join(format!("{unit}.err")));
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), workdir.display().to_string()),
        ("USER".into(), mapping.user_name.clone()),
        ("LOGNAME".into(), mapping.user_name.clone()),
        ("TMPDIR".into(), "/tmp".into()),
        ("XOS_JOB_ID".into(), job.to_string()),
        ("XOS_UNIT".into(), job.unit(rank).to_string()),
        ("XOS_RANK".into(), rank.to_string()),
        ("XOS_SIZE".into(), spec.count.to_string()),
        ("XOS_HOSTS".into(), request.hosts.join(",")),
        ("XOS_NODE".into(), shared.config.name.to_string()),
        ("XOS_HOME_NODE".into(), job.home.clone()),
        ("XOS_VO".into(), owner.vo.clone()),
        ("XOS_TOKEN_FILE".into(), xtreem_exec::CREDENTIAL_PATH.into()),
    ];
    if let Some(i) = job.index {
        env.push(("XOS_ARRAY_INDEX".into(), i.to_string()));
    }
    for (k, v) in &spec.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    let mut argv = vec![spec.executable.clone()];
    argv.extend(spec.args.iter().cloned());
    let now = unix_now_millis();
    let mut local = LocalUnit {
        unit: unit.clone(),
        job: job.to_string(),
        home: job.home.clone(),
        name: spec.name.clone(),
        owner: owner.clone(),
        rank,
        size: spec.count,
        attempt: request.attempt,
        cores: spec.resources.cores,
        memory_bytes: spec.resources.memory_bytes,
        uid: mapping.uid,
        stdout: stdout.display().to_string(),
        stderr: stderr.display().to_string(),
        submitted_unix_ms: now,
        record: UnitRecord {
            rank,
            node: shared.config.name.to_string(),
            state: UnitState::Running,
            exit: None,
            reason: String::new(),
            started_unix_ms: now,
            ended_unix_ms: 0,
            usage: Usage::default(),
            attempt: request.attempt,
        },
        reported: false,
        workdir: workdir.display().to_string(),
        reservation: spec.reservation.clone(),
        checkpoint: spec
            .checkpoint
            .as_ref()
            .map(|c| super::record::CheckpointDecl {
                exit_code: c.exit_code,
                signal: c.signal,
                files: c.files.clone(),
            }),
    };
    let launch = LaunchSpec {
        unit: unit.clone(),
        argv,
        env,
        workdir: workdir.to_path_buf(),
        stdin: spec.stdin.as_deref().map(in_workdir),
        stdout,
        stderr,
        uid: mapping.uid,
        gid: mapping.gid,
        limits: Limits {
            cores: spec.resources.cores,
            memory_bytes: spec.resources.memory_bytes,
            pids: UNIT_PIDS_MAX,
            walltime: spec.resources.walltime_secs.map(Duration::from_secs),
        },
        // The owner's credential, so the job can call the grid as its
        // owner; it lives in the unit's private /tmp only.
        credential: Some(xtreem_exec::Secret(request.token.clone())),
        // A running unit's record is not stored: a restarted daemon adopts
        // the unit from here ([`adoptable`]).
        note: serde_json::to_string(&local).ok(),
    };
    // On the runtime: the executor makes a few files on a tmpfs and asks
    // its fork server, then awaits the supervisor's report.
    let started = match shared.jobs.resource.as_ref() {
        Some(side) => side
            .exec
            .launch_async(&launch)
            .await
            .map_err(|e| e.to_string()),
        None => Err("no resource side".to_owned()),
    };
    local.record = match started {
        Ok(status) => unit_record(rank, shared, request.attempt, &status),
        Err(why) => {
            let now = unix_now_millis();
            UnitRecord {
                state: UnitState::Failed,
                reason: format!("cannot start: {why}"),
                started_unix_ms: now,
                ended_unix_ms: now,
                ..local.record
            }
        }
    };
    local
}

/// A unit's record from the executor's status.
fn unit_record(rank: u32, shared: &NodeShared, attempt: u32, s: &UnitStatus) -> UnitRecord {
    let (state, exit) = match s.state {
        ExecState::Running => (UnitState::Running, None),
        ExecState::Frozen => (UnitState::Suspended, None),
        ExecState::Exited { code } if s.reason.is_none() => {
            (UnitState::Ended, Some(Exit::Code(code)))
        }
        ExecState::Exited { code } => (UnitState::Failed, Some(Exit::Code(code))),
        ExecState::Signaled { signal } if s.reason.is_none() => {
            (UnitState::Ended, Some(Exit::Signal(signal)))
        }
        ExecState::Signaled { signal } => (UnitState::Failed, Some(Exit::Signal(signal))),
        ExecState::Failed => (UnitState::Failed, None),
    };
    UnitRecord {
        rank,
        node: shared.config.name.to_string(),
        state,
        exit,
        reason: s.reason.clone().unwrap_or_default(),
        started_unix_ms: s.started_unix_ms,
        ended_unix_ms: s.ended_unix_ms.unwrap_or(0),
        usage: Usage {
            cpu_ns: s.usage.cpu_ns,
            peak_memory_bytes: s.usage.peak_memory_bytes,
            io_read_bytes: s.usage.io_read_bytes,
            io_write_bytes: s.usage.io_write_bytes,
        },
        attempt,
    }
}

/// Follows a running unit to its end, keeps its account in use meanwhile,
/// then records the end and reports it to the home.
pub async fn watch_unit(shared: Arc<NodeShared>, unit: String) {
    let Some(side) = shared.jobs.resource.as_ref() else {
        return;
    };
    let Some(local) = side.unit(&unit) else {
        return;
    };
    let mut touch = tokio::time::interval(TOUCH_EVERY);
    // One wait for the unit's whole life: it holds the supervisor's report
    // pipe, which a new wait after each touch would not have.
    let status = {
        let ended = side.exec.wait(&unit);
        tokio::pin!(ended);
        loop {
            tokio::select! {
                status = &mut ended => break status,
                _ = touch.tick() => {
                    if let Some(mapper) = shared.accounts.as_ref() {
                        let _ = mapper.touch(local.uid);
                    }
                }
            }
        }
    };
    let record = match status {
        Ok(s) => unit_record(local.rank, &shared, local.attempt, &s),
        Err(e) => {
            let now = unix_now_millis();
            UnitRecord {
                reason: format!("lost track of the unit: {e}"),
                state: UnitState::Lost,
                ended_unix_ms: now,
                ..local.record.clone()
            }
        }
    };
    side.release(&unit);
    let mut ended = local;
    ended.record = record;
    let code = ended.checkpoint.as_ref().and_then(|c| c.exit_code);
    let mut differs_from_exit_file = false;
    if code.is_some() && ended.record.exit == code.map(Exit::Code) {
        let problems = super::checkpoint::push(&shared, &ended).await;
        if !problems.is_empty() {
            // Without its files the job cannot restart from them.
            ended.record.state = UnitState::Failed;
            ended.record.reason = format!("checkpoint not saved: {}", problems.join("; "));
            differs_from_exit_file = true;
        }
    }
    if differs_from_exit_file {
        // The report below carries it too.
        side.put(&shared, ended);
    } else {
        // Memory only: after a crash the executor still knows how the unit
        // ended (its exit file) and re-adoption reads it from there; the
        // store gets the end with the reported mark, once the home has it.
        side.remember(ended);
    }
    shared.jobs.wake.notify_one();
    report(shared, unit).await;
}

/// Sends a unit's end to its home until the home acknowledges it; a home
/// that is down gets it when it is back.
pub async fn report(shared: Arc<NodeShared>, unit: String) {
    let Some(side) = shared.jobs.resource.as_ref() else {
        return;
    };
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(local) = side.unit(&unit) else {
            return;
        };
        if local.reported {
            return;
        }
        match send_report(&shared, &local).await {
            Ok(()) => {
                // The home holds the unit's record now; this node keeps it
                // on disk only, to serve its output.
                let stored = side.mark_reported(&shared, local);
                // Here when nothing can make it wait (the usual case: a few
                // calls on cgroupfs and a tmpfs), else off the runtime.
                let removed = match side.exec.try_remove_now(&unit) {
                    Some(removed) => removed,
                    None => {
                        let removal = (Arc::clone(&shared), unit.clone());
                        tokio::task::spawn_blocking(move || {
                            let (shared, unit) = removal;
                            shared
                                .jobs
                                .resource
                                .as_ref()
                                .map_or(Ok(()), |side| side.exec.remove(&unit))
                        })
                        .await
                        .unwrap_or(Ok(()))
                    }
                };
                if let Err(e) = removed {
                    tracing::debug!(unit, error = %e, "cannot remove the unit's state");
                }
                match stored.done().await {
                    Ok(_) => side.drop_reported(&unit),
                    Err(e) => tracing::warn!(unit, error = %e, "cannot record a unit's end"),
                }
                return;
            }
            Err(e) => {
                tracing::debug!(unit, error = %e, "the home did not take the unit's end; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn send_report(shared: &Arc<NodeShared>, local: &LocalUnit) -> Result<(), Status> {
    let usage = UsageRecord {
        job: JobId::parse(&local.job).map_err(|e| Status::internal(e.to_string()))?,
        rank: local.rank,
        user: local.owner.subject.clone(),
        vo: local.owner.vo.clone(),
        node: shared.config.name.to_string(),
        started_unix_ms: local.record.started_unix_ms,
        ended_unix_ms: local.record.ended_unix_ms,
        cpu_ns: local.record.usage.cpu_ns,
        peak_memory_bytes: local.record.usage.peak_memory_bytes,
        io_read_bytes: local.record.usage.io_read_bytes,
        io_write_bytes: local.record.usage.io_write_bytes,
        exit: local
            .record
            .exit
            .map(Exit::text)
            .unwrap_or_else(|| local.record.state.name().to_owned()),
    };
    let request = pb::UnitEndedRequest {
        job: local.job.clone(),
        unit: Some(local.record.to_pb()),
        usage: serde_json::to_string(&usage).unwrap_or_default(),
    };
    if local.home == shared.config.name.as_str() {
        return super::home::unit_ended(shared, request).await;
    }
    let endpoint = peers::endpoint_of(shared, &local.home)?;
    let mut client = shared.jobs.peers.exec(shared, &endpoint)?;
    let result = tokio::time::timeout(Duration::from_secs(5), client.unit_ended(request))
        .await
        .map_err(|_| Status::deadline_exceeded("the home did not answer within 5 s"))?;
    if result.is_err() {
        shared.jobs.peers.forget(&endpoint);
    }
    result.map(|_| ())
}

/// Units the executor runs (or ran) that are not among `known`, rebuilt
/// from the note each was launched with: a running unit's record is not
/// written to the store before its end, so after any stop of the daemon
/// the note is where a unit still running under its supervisor is found.
/// A unit without a readable note is left alone, with a warning.
pub fn adoptable(exec: &Executor, known: &HashSet<&str>) -> Vec<LocalUnit> {
    let names = match exec.units() {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the executor's units");
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for name in names.iter().filter(|n| !known.contains(n.as_str())) {
        let note = exec.spec(name).map(|s| s.note);
        let unit = match &note {
            Ok(Some(text)) => serde_json::from_str::<LocalUnit>(text).map_err(|e| e.to_string()),
            Ok(None) => Err("it was launched without a note".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match unit {
            Ok(mut unit) if unit.unit == *name => {
                tracing::info!(unit = %name, "adopting a unit from its executor's note");
                // The note was written at the launch; a STOP since froze it.
                if exec
                    .status(name)
                    .is_ok_and(|s| s.state == ExecState::Frozen)
                {
                    unit.record.state = UnitState::Suspended;
                }
                found.push(unit);
            }
            Ok(unit) => tracing::warn!(
                unit = %name,
                note_names = %unit.unit,
                "a unit's note names another unit; left alone"
            ),
            Err(why) => tracing::warn!(unit = %name, "cannot adopt a unit: {why}"),
        }
    }
    found
}

/// Units this node ran before the daemon restarted: watched again if they
/// still run, reported if their end has not reached the home yet.
pub fn adopt(shared: &Arc<NodeShared>) {
    let Some(side) = shared.jobs.resource.as_ref() else {
        return;
    };
    for unit in side.units() {
        if !unit.record.state.is_over() {
            tracing::info!(unit = %unit.unit, "re-adopting a unit that ran across a restart");
            tokio::spawn(watch_unit(Arc::clone(shared), unit.unit.clone()));
        } else if !unit.reported {
            tokio::spawn(report(Arc::clone(shared), unit.unit.clone()));
        }
    }
}

/// Sends `signal` to the running units of `job` here; STOP and CONT freeze
/// and thaw the units' cgroups, which stops them as a whole.
pub async fn signal_units(shared: &Arc<NodeShared>, job: &str, signal: i32) -> Result<u32, Status> {
    let Some(side) = shared.jobs.resource.as_ref() else {
        return Ok(0);
    };
    let mut count = 0;
    for mut unit in side.units_of(job) {
        if unit.record.state.is_over() {
            continue;
        }
        let result = match signal {
            libc::SIGSTOP => side.exec.freeze(&unit.unit).map(|()| 1),
            libc::SIGCONT => side.exec.thaw(&unit.unit).map(|()| 1),
            s => side.exec.signal(&unit.unit, s),
        };
        match result {
            Ok(n) => {
                count += n.min(1);
                let state = match signal {
                    libc::SIGSTOP => Some(UnitState::Suspended),
                    libc::SIGCONT => Some(UnitState::Running),
                    _ => None,
                };
                if let Some(state) = state
                    && !unit.record.state.is_over()
                {
                    unit.record.state = state;
                    side.put_durably(shared, unit).done().await.ok();
                }
            }
            Err(e) => tracing::warn!(unit = %unit.unit, error = %e, "cannot signal a unit"),
        }
    }
    Ok(count)
}

/// A chunk of a unit's output from `offset`.
pub fn read_log(
    shared: &NodeShared,
    unit: &str,
    stderr: bool,
    offset: u64,
    max: u32,
) -> Result<pb::LogChunk, Status> {
    use std::io::{Read, Seek, SeekFrom};
    let side = shared
        .jobs
        .resource
        .as_ref()
        .ok_or_else(|| Status::not_found("this node runs no units"))?;
    let local = side
        .unit(unit)
        .or_else(|| {
            shared
                .store
                .read(|r| super::machine::query::unit(r, unit))
                .ok()
                .flatten()
        })
        .ok_or_else(|| {
            Status::not_found(format!(
                "unit {unit} is not known on this node (a unit's record is kept {} after its end)",
                humantime::format_duration(shared.config.jobs.retention)
            ))
        })?;
    let path = if stderr { &local.stderr } else { &local.stdout };
    let over = local.record.state.is_over();
    // The file is in a directory the job's account owns: never follow a
    // link it may have planted, and read only what that account owns.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| {
            use std::os::unix::fs::MetadataExt;
            let meta = f.metadata()?;
            if meta.uid() != local.uid || !meta.is_file() {
                return Err(std::io::Error::other(
                    "the output file is not a regular file of the job's account",
                ));
            }
            Ok(f)
        });
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(pb::LogChunk {
                data: Vec::new(),
                next_offset: offset,
                eof: over,
            });
        }
        Err(e) => {
            return Err(Status::internal(format!(
                "cannot read the unit's output: {e}"
            )));
        }
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Status::internal(format!("cannot read the unit's output: {e}")))?;
    let mut data = Vec::new();
    file.by_ref()
        .take(u64::from(max.clamp(1, 512 * 1024)))
        .read_to_end(&mut data)
        .map_err(|e| Status::internal(format!("cannot read the unit's output: {e}")))?;
    let next = offset + data.len() as u64;
    let size = file.metadata().map(|m| m.len()).unwrap_or(next);
    Ok(pb::LogChunk {
        eof: over && next >= size,
        data,
        next_offset: next,
    })
}

/// Starts the resource side's background work: re-adoption of units that
/// ran across a restart. Unit watchers end with the process.
pub fn start(shared: &Arc<NodeShared>, stop: &CancellationToken) {
    adopt(shared);
    if shared.jobs.resource.is_some() {
        tokio::spawn(reconcile_loop(Arc::clone(shared), stop.clone()));
    }
}

/// How often running units are checked with their homes.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// Units younger than this are not asked about: their placement may not be
/// written at the home yet.
const RECONCILE_MIN_AGE_MS: u64 = 10_000;

/// Kills units their home no longer wants, so a node that was declared dead
/// and comes back does not run a job a second time beside its restart.
async fn reconcile_loop(shared: Arc<NodeShared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => reconcile(&shared).await,
        }
    }
}

async fn reconcile(shared: &Arc<NodeShared>) {
    let Some(side) = shared.jobs.resource.as_ref() else {
        return;
    };
    let now = unix_now_millis();
    let mut by_home: BTreeMap<String, Vec<LocalUnit>> = BTreeMap::new();
    for unit in side.units() {
        if !unit.record.state.is_over()
            && now.saturating_sub(unit.record.started_unix_ms) >= RECONCILE_MIN_AGE_MS
        {
            by_home.entry(unit.home.clone()).or_default().push(unit);
        }
    }
    for (home, units) in by_home {
        for chunk in units.chunks(super::home::UNITS_WANTED_MAX) {
            let refs: Vec<pb::UnitRef> = chunk
                .iter()
                .map(|u| pb::UnitRef {
                    job: u.job.clone(),
                    rank: u.rank,
                    attempt: u.attempt,
                })
                .collect();
            let wanted = match units_wanted(shared, &home, refs).await {
                Ok(w) if w.len() == chunk.len() => w,
                Ok(_) => {
                    tracing::warn!(home, "the home answered for another number of units");
                    continue;
                }
                // Unreachable home: nobody can say, the units keep running.
                Err(e) => {
                    tracing::debug!(home, error = %e, "cannot check units with their home");
                    continue;
                }
            };
            for (unit, wanted) in chunk.iter().zip(wanted) {
                if wanted {
                    continue;
                }
                tracing::warn!(
                    unit = %unit.unit,
                    home,
                    "the home no longer wants this unit (the job ended or was restarted elsewhere): killing it"
                );
                let shared = Arc::clone(shared);
                let name = unit.unit.clone();
                let killed = tokio::task::spawn_blocking(move || {
                    shared
                        .jobs
                        .resource
                        .as_ref()
                        .map_or(Ok(0), |side| side.exec.signal(&name, libc::SIGKILL))
                })
                .await;
                if let Ok(Err(e)) = killed {
                    tracing::warn!(unit = %unit.unit, error = %e, "cannot kill an unwanted unit");
                }
            }
        }
    }
}

async fn units_wanted(
    shared: &Arc<NodeShared>,
    home: &str,
    units: Vec<pb::UnitRef>,
) -> Result<Vec<bool>, Status> {
    if home == shared.config.name.as_str() {
        return Ok(super::home::units_wanted(
            shared,
            shared.config.name.as_str(),
            &units,
        ));
    }
    let endpoint = peers::endpoint_of(shared, home)?;
    let mut client = shared.jobs.peers.exec(shared, &endpoint)?;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        client.units_wanted(pb::UnitsWantedRequest { units }),
    )
    .await
    .map_err(|_| Status::deadline_exceeded("the home did not answer within 5 s"))?;
    if answer.is_err() {
        shared.jobs.peers.forget(&endpoint);
    }
    Ok(answer?.into_inner().wanted)
}

/// A reservation's home asks this node to hold capacity for it.
pub async fn hold_reservation(
    shared: &Arc<NodeShared>,
    request: pb::HoldReservationRequest,
) -> Result<pb::LaunchResponse, Status> {
    let Some(side) = shared.jobs.resource.as_ref() else {
        return Ok(refuse(format!(
            "node {} has no resource role",
            shared.config.name
        )));
    };
    let info = request
        .reservation
        .ok_or_else(|| Status::invalid_argument("reservation missing"))?;
    let (claims, owner) = check_owner(shared, &request.token)?;
    if info.owner != owner.subject || info.vo != owner.vo {
        return Err(Status::permission_denied(
            "the reservation's owner is not the credential's holder",
        ));
    }
    if let Err(why) = crate::access::local_account(shared, &claims, &owner.vo, info.cores) {
        return Ok(refuse(format!("node {}: {why}", shared.config.name)));
    }
    let reservation = Reservation::from_pb(&info, owner);
    if let Err(why) = side.hold(&reservation) {
        return Ok(refuse(format!("node {}: {why}", shared.config.name)));
    }
    shared
        .jobs
        .writer
        .write(JobCommand::PutHeld { reservation })
        .done()
        .await
        .map_err(Status::internal)?;
    Ok(pb::LaunchResponse {
        admitted: true,
        reason: String::new(),
        units: Vec::new(),
    })
}

/// The reservation's home lets its capacity here go.
pub async fn release_reservation(shared: &Arc<NodeShared>, id: &str) -> Result<(), Status> {
    let Some(side) = shared.jobs.resource.as_ref() else {
        return Ok(());
    };
    if side.unhold(id) {
        shared
            .jobs
            .writer
            .write(JobCommand::RemoveHeld { id: id.to_owned() })
            .done()
            .await
            .map_err(Status::internal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::record::test_reservation as reservation;

    fn claim(cores: u32, reservation: Option<&str>) -> Claim {
        Claim {
            cores,
            memory: 0,
            vo: "bio".into(),
            owner: "alice".into(),
            reservation: reservation.map(str::to_owned),
        }
    }

    #[test]
    fn units_of_an_ended_reservation_count_as_ordinary_use() {
        let now = unix_now_millis();
        let mut ledger = Ledger::default();
        ledger.reservations.insert(
            "r-a.1".into(),
            reservation("r-a.1", 4, now - 10_000, now + 60_000),
        );
        ledger.reservations.insert(
            "r-a.2".into(),
            reservation("r-a.2", 4, now - 60_000, now - 1_000),
        );
        ledger.running.insert("u1".into(), claim(1, None));
        // Inside the active reservation: its 4 held cores cover it.
        ledger.running.insert("u2".into(), claim(2, Some("r-a.1")));
        // Its reservation ended: the unit still runs and takes real cores.
        ledger.running.insert("u3".into(), claim(3, Some("r-a.2")));
        // A reservation this node does not hold covers nothing.
        ledger.running.insert("u4".into(), claim(1, Some("r-b.9")));
        assert_eq!(ledger.used().0, 1 + 4 + 3 + 1);
    }

    #[test]
    fn a_full_node_is_plainly_short_unless_the_claim_was_admitted_before() {
        let capacity = Capacity {
            cores: 2,
            memory_bytes: 1 << 30,
        };
        let mut ledger = Ledger::default();
        assert_eq!(ledger.plainly_short(&capacity, "n1.1#1", 2, 0), None);
        ledger.running.insert("u1".into(), claim(2, None));
        assert_eq!(
            ledger.plainly_short(&capacity, "n1.1#1", 1, 0).as_deref(),
            Some("needs 1 cores, 0 of 2 free")
        );
        // The start of a multi-node job admitted earlier: `admit` decides.
        ledger.admissions.insert(
            "n1.2#1".into(),
            (claim(1, None), Instant::now() + Duration::from_secs(60)),
        );
        assert_eq!(ledger.plainly_short(&capacity, "n1.2#1", 1, 0), None);
        ledger.running.clear();
        assert!(
            ledger
                .plainly_short(&capacity, "n1.3#1", 0, 2 << 30)
                .is_some_and(|why| why.starts_with("needs 2.0 GiB memory")),
            "{:?}",
            ledger.plainly_short(&capacity, "n1.3#1", 0, 2 << 30)
        );
    }
}
