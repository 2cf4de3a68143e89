//! The jobs services: `Jobs` for users (any node answers; requests about a
//! job go to its home) and `JobExec` between the nodes of a site.
//!
//! Who may do what: the owner (as the VO's policy allows, by default read
//! and signal their own jobs), the VO's admins for jobs of their VO, site
//! administrators for jobs of their site; everything else is denied, and a
//! job the caller may not read is answered as not found, so ids reveal
//! nothing.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};
use xtreem_job::{AcctFilter, JobId, JobSpec, UnitId, UsageRecord, summarize};
use xtreem_net::{PrincipalKind, peer_identity};
use xtreem_policy::{Action, Resource};
use xtreem_proto::jobs as pb;
use xtreem_proto::jobs::job_exec_server::JobExec;
use xtreem_proto::jobs::jobs_server::Jobs;
use xtreem_token::Claims;
use xtreem_util::roles::Role;

use crate::daemon::NodeShared;
use crate::jobs::machine::query;
use crate::jobs::record::{JobRecord, JobState, Owner};
use crate::jobs::{home, peers, resource};
use crate::rpc::vo::{bearer, credential_vo};

type R<T> = Result<Response<T>, Status>;

/// Longest a `Wait` call holds before answering with the job still running
/// (the client asks again); below the server's request timeout.
const WAIT_MAX: Duration = Duration::from_secs(8);
const FAN_OUT_TIMEOUT: Duration = Duration::from_secs(3);

/// Who a jobs request speaks for.
pub enum Who {
    User {
        claims: Box<Claims>,
        vo: String,
        token: String,
    },
    SiteAdmin(String),
}

impl Who {
    pub fn name(&self) -> String {
        match self {
            Who::User { claims, .. } => claims.sub.clone(),
            Who::SiteAdmin(name) => format!("site administrator {name}"),
        }
    }

    fn on_behalf(&self) -> pb::OnBehalf {
        match self {
            Who::User { token, .. } => pb::OnBehalf {
                token: token.clone(),
                admin: String::new(),
            },
            Who::SiteAdmin(name) => pb::OnBehalf {
                token: String::new(),
                admin: name.clone(),
            },
        }
    }
}

fn user(shared: &NodeShared, token: &str) -> Result<Who, Status> {
    let claims = shared
        .trust
        .current()
        .verifier
        .verify(token)
        .map_err(|e| Status::unauthenticated(e.to_string()))?;
    let vo = credential_vo(shared, &claims)?;
    Ok(Who::User {
        claims: Box::new(claims),
        vo,
        token: token.to_owned(),
    })
}

/// The caller: a user's bearer credential, a site administrator's
/// certificate, or a node of this site forwarding for one of them.
pub fn who<T>(
    shared: &NodeShared,
    request: &Request<T>,
    on_behalf: Option<&pb::OnBehalf>,
) -> Result<Who, Status> {
    if let Some(token) = bearer(request) {
        return user(shared, &token);
    }
    let peer = peer_identity(request).ok_or_else(|| {
        Status::unauthenticated(
            "jobs need a VO credential (run `xos login`) or a site administrator certificate",
        )
    })?;
    let peer = crate::rpc::caller(request, shared, peer.kind, "jobs")?;
    match peer.kind {
        PrincipalKind::Admin => Ok(Who::SiteAdmin(peer.name)),
        PrincipalKind::Node => speaking_for(shared, on_behalf, &peer.name),
    }
}

/// Who a node of this site forwards a request for: a user's credential
/// (checked here again) or an administrator the first node checked.
fn speaking_for(
    shared: &NodeShared,
    on_behalf: Option<&pb::OnBehalf>,
    node: &str,
) -> Result<Who, Status> {
    match on_behalf {
        Some(b) if !b.token.is_empty() => user(shared, &b.token),
        Some(b) if !b.admin.is_empty() => Ok(Who::SiteAdmin(b.admin.clone())),
        _ => Err(Status::permission_denied(format!(
            "{node} may ask about jobs only on behalf of a user or administrator"
        ))),
    }
}

/// Whether `who` may do `action` (read or signal) on a job of `owner`.
fn may(shared: &NodeShared, who: &Who, id: &str, owner: &Owner, action: Action) -> bool {
    match who {
        Who::SiteAdmin(_) => true,
        Who::User { claims, vo, .. } => {
            if *vo == owner.vo && crate::access::is_vo_admin(claims, vo) {
                return true;
            }
            crate::access::authorize(
                shared,
                claims,
                vo,
                action,
                Resource::Job {
                    id: id.to_owned(),
                    owner: owner.subject.clone(),
                    vo: owner.vo.clone(),
                    site: shared.site_name().unwrap_or_default(),
                },
                0,
            )
            .is_ok()
        }
    }
}

fn not_found(id: &str) -> Status {
    Status::not_found(format!("no job {id} that you may see"))
}

fn parse_id(id: &str) -> Result<JobId, Status> {
    JobId::parse(id).map_err(|e| Status::invalid_argument(format!("job id {id:?}: {e}")))
}

/// Whether a listed job passes the request's filters and visibility.
fn listed(
    shared: &NodeShared,
    who: &Who,
    filter: &pb::ListRequest,
    info: &pb::JobInfo,
    owner: &Owner,
) -> bool {
    if !filter.id.is_empty() && filter.id != info.id {
        return false;
    }
    if !filter.states.is_empty() && !filter.states.contains(&info.state) {
        return false;
    }
    if !filter.user.is_empty() && filter.user != owner.subject {
        return false;
    }
    if !filter.name.is_empty() && filter.name != info.name {
        return false;
    }
    match who {
        Who::SiteAdmin(_) => true,
        Who::User { claims, .. } if !filter.all => {
            owner.subject == claims.sub && may(shared, who, &info.id, owner, Action::ReadJob)
        }
        Who::User { .. } => may(shared, who, &info.id, owner, Action::ReadJob),
    }
}

/// This node's jobs (as home) and the units it runs for other homes.
fn local_jobs(shared: &NodeShared, who: &Who, filter: &pb::ListRequest) -> Vec<pb::JobInfo> {
    let mut out = Vec::new();
    // Jobs that have not ended are in memory; only a listing that may
    // include ended ones reads the store.
    let only_active = !filter.states.is_empty()
        && filter
            .states
            .iter()
            .all(|s| JobState::parse(s).is_some_and(|s| !s.is_terminal()));
    let jobs = if only_active {
        shared.jobs.active_where(|_| true)
    } else if !filter.id.is_empty() {
        shared.jobs.get(&filter.id).into_iter().collect()
    } else {
        shared.jobs.all()
    };
    for job in jobs {
        let info = job.to_pb(false);
        if listed(shared, who, filter, &info, &job.owner) {
            out.push(info);
        }
    }
    if let Some(side) = shared.jobs.resource.as_ref() {
        let me = shared.config.name.as_str();
        for unit in side.units() {
            if unit.home == me && filter.id.is_empty() {
                continue;
            }
            let mut info = unit.to_pb();
            if !unit.record.state.is_over()
                && let Ok(usage) = side.exec.usage(&unit.unit)
                && let Some(u) = info.units.first_mut()
            {
                u.cpu_ns = usage.cpu_ns;
                u.peak_memory_bytes = usage.peak_memory_bytes;
                u.io_read_bytes = usage.io_read_bytes;
                u.io_write_bytes = usage.io_write_bytes;
            }
            if listed(shared, who, filter, &info, &unit.owner) {
                out.push(info);
            }
        }
    }
    out
}

/// Merges answers: a home's record wins over units' copies of the same job;
/// copies of one job from several nodes are joined unit by unit.
fn merge(answers: Vec<pb::JobInfo>) -> Vec<pb::JobInfo> {
    let mut by_id: std::collections::BTreeMap<String, pb::JobInfo> =
        std::collections::BTreeMap::new();
    for info in answers {
        match by_id.get_mut(&info.id) {
            None => {
                by_id.insert(info.id.clone(), info);
            }
            Some(have) if have.from_replica && !info.from_replica => {
                let live = std::mem::replace(have, info);
                take_live_usage(have, &live);
            }
            Some(have) if have.from_replica && info.from_replica => {
                have.units.extend(info.units);
                have.units.sort_by_key(|u| u.rank);
            }
            Some(have) => take_live_usage(have, &info),
        }
    }
    let mut jobs: Vec<pb::JobInfo> = by_id.into_values().collect();
    jobs.sort_by(|a, b| {
        a.submitted_unix_ms
            .cmp(&b.submitted_unix_ms)
            .then(a.id.cmp(&b.id))
    });
    jobs
}

/// The home records usage when a unit ends; while it runs, the node
/// running it knows it live.
fn take_live_usage(home: &mut pb::JobInfo, replica: &pb::JobInfo) {
    if !replica.from_replica {
        return;
    }
    for live in &replica.units {
        if let Some(u) = home
            .units
            .iter_mut()
            .find(|u| u.rank == live.rank && u.node == live.node && u.ended_unix_ms == 0)
        {
            u.cpu_ns = live.cpu_ns;
            u.peak_memory_bytes = live.peak_memory_bytes;
            u.io_read_bytes = live.io_read_bytes;
            u.io_write_bytes = live.io_write_bytes;
        }
    }
}

/// The owner, the VO's admins and site administrators manage a reservation.
fn may_manage_reservation(who: &Who, owner: &Owner) -> bool {
    match who {
        Who::SiteAdmin(_) => true,
        Who::User { claims, vo, .. } => {
            *vo == owner.vo
                && (claims.sub == owner.subject || crate::access::is_vo_admin(claims, vo))
        }
    }
}

fn audit_event(
    who: &Who,
    action: &str,
    target: &str,
    result: &Result<(), String>,
) -> xtreem_audit::AuditEvent {
    use xtreem_audit::{AuditEvent, Decision as AuditDecision};
    let (decision, detail) = match result {
        Ok(()) => (AuditDecision::Allow, serde_json::json!({})),
        Err(e) => (AuditDecision::Deny, serde_json::json!({ "why": e })),
    };
    AuditEvent::new(who.name(), action, target, decision).with_detail(detail)
}

pub struct JobsService {
    pub shared: Arc<NodeShared>,
}

impl JobsService {
    fn audit(&self, who: &Who, action: &str, target: &str, result: &Result<(), String>) {
        self.shared.audit(audit_event(who, action, target, result));
    }

    /// Refuses a submission the site can never run, naming the field.
    fn check_satisfiable(&self, spec: &JobSpec, vo: &str) -> Result<(), Status> {
        let text = spec.constraints.clone().unwrap_or_default();
        let query = xtreem_directory::Query::parse(&text).map_err(|e| {
            Status::invalid_argument(format!("constraints: {e}\n{}", e.render(&text)))
        })?;
        let view = self
            .shared
            .directory
            .view
            .read()
            .map_err(|_| Status::internal("the directory view is unavailable"))?;
        let site = self.shared.site_name().unwrap_or_default();
        let serving: Vec<_> = view
            .iter()
            .filter(|r| {
                r.descriptor.site == site
                    && r.descriptor
                        .roles
                        .iter()
                        .any(|x| x == Role::Resource.as_str())
                    && r.descriptor.vos.contains(vo)
            })
            .collect();
        let cores = spec.resources.cores;
        let memory = spec.resources.memory_bytes;
        if !serving.iter().any(|r| r.descriptor.cores >= cores) {
            return Err(Status::invalid_argument(format!(
                "resources.cores: no node of site {site} serving VO {vo} has {cores} cores; the job could never run"
            )));
        }
        if !serving.iter().any(|r| r.descriptor.memory_bytes >= memory) {
            return Err(Status::invalid_argument(format!(
                "resources.memory: no node of site {site} serving VO {vo} has {} of memory; the job could never run",
                xtreem_directory::format_bytes(memory)
            )));
        }
        if !serving.iter().any(|r| query.matches(r)) {
            return Err(Status::invalid_argument(format!(
                "constraints: no node of site {site} serving VO {vo} matches `{}` ({} nodes serve the VO); the job could never run",
                spec.constraints.as_deref().unwrap_or_default(),
                serving.len()
            )));
        }
        Ok(())
    }

    /// A job's record from its home, or if the home does not answer, what
    /// the nodes running its units know.
    async fn status_of(&self, who: &Who, id: &str) -> Result<pb::JobInfo, Status> {
        let job_id = parse_id(id)?;
        let shared = &self.shared;
        if job_id.home == shared.config.name.as_str() {
            let job = shared.jobs.get(id).ok_or_else(|| not_found(id))?;
            if !may(shared, who, id, &job.owner, Action::ReadJob) {
                return Err(not_found(id));
            }
            let mut info = job.to_pb(true);
            if job.state.is_active() {
                self.add_live_usage(who, &mut info).await;
            }
            return Ok(info);
        }
        match self.forward_status(who, &job_id.home, id).await {
            Ok(info) => Ok(info),
            Err(e)
                if e.code() == tonic::Code::Unavailable
                    || e.code() == tonic::Code::DeadlineExceeded =>
            {
                let filter = pb::ListRequest {
                    all: true,
                    ..Default::default()
                };
                let (jobs, _) = self.fan_out(who, &filter).await;
                jobs.into_iter()
                    .find(|j| j.id == id)
                    .map(|mut j| {
                        j.events.push(pb::JobEvent {
                            unix_ms: xtreem_util::time::unix_now_millis(),
                            text: format!("the home {} does not answer ({}); this is what the nodes running the job know", job_id.home, e.message()),
                        });
                        j
                    })
                    .ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the nodes running the job's units for their usage so far.
    async fn add_live_usage(&self, who: &Who, info: &mut pb::JobInfo) {
        let shared = &self.shared;
        let mut nodes: Vec<String> = info
            .units
            .iter()
            .filter(|u| u.ended_unix_ms == 0 && !u.node.is_empty())
            .map(|u| u.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        let filter = pb::ListRequest {
            all: true,
            id: info.id.clone(),
            local: true,
            on_behalf: Some(who.on_behalf()),
            ..Default::default()
        };
        let calls = nodes.into_iter().map(|node| {
            let shared = Arc::clone(shared);
            let filter = filter.clone();
            async move {
                if node == shared.config.name.as_str() {
                    return local_jobs(&shared, who, &filter);
                }
                let call = async {
                    let endpoint = peers::endpoint_of(&shared, &node)?;
                    let mut client = shared.jobs.peers.exec(&shared, &endpoint)?;
                    let r = client
                        .local_jobs(pb::LocalJobsRequest {
                            filter: Some(filter),
                        })
                        .await?;
                    Ok::<_, Status>(r.into_inner().jobs)
                };
                tokio::time::timeout(Duration::from_secs(1), call)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default()
            }
        });
        for copy in futures::future::join_all(calls).await.into_iter().flatten() {
            take_live_usage(info, &copy);
        }
    }

    async fn forward_status(&self, who: &Who, home: &str, id: &str) -> Result<pb::JobInfo, Status> {
        let shared = &self.shared;
        let endpoint = peers::endpoint_of(shared, home)?;
        let mut client = shared.jobs.peers.jobs(shared, &endpoint)?;
        let answer = tokio::time::timeout(
            FAN_OUT_TIMEOUT,
            client.status(pb::JobRef {
                id: id.to_owned(),
                on_behalf: Some(who.on_behalf()),
            }),
        )
        .await
        .map_err(|_| Status::unavailable(format!("the home {home} did not answer within 3 s")))?;
        if answer.is_err() {
            shared.jobs.peers.forget(&endpoint);
        }
        Ok(answer?.into_inner())
    }

    /// Asks every alive node of the site for the jobs it knows.
    async fn fan_out(
        &self,
        who: &Who,
        filter: &pb::ListRequest,
    ) -> (Vec<pb::JobInfo>, Vec<String>) {
        let shared = &self.shared;
        let me = shared.config.name.to_string();
        let mut jobs = local_jobs(shared, who, filter);
        let mut notes = Vec::new();
        let calls = peers::alive_nodes(shared)
            .into_iter()
            .filter(|(n, _)| *n != me)
            .map(|(node, endpoint)| {
                let shared = Arc::clone(shared);
                let filter = pb::ListRequest {
                    on_behalf: Some(who.on_behalf()),
                    local: true,
                    ..filter.clone()
                };
                async move {
                    let call = async {
                        let mut client = shared.jobs.peers.exec(&shared, &endpoint)?;
                        let r = client
                            .local_jobs(pb::LocalJobsRequest {
                                filter: Some(filter),
                            })
                            .await;
                        if r.is_err() {
                            shared.jobs.peers.forget(&endpoint);
                        }
                        Ok::<_, Status>(r?.into_inner())
                    };
                    let answer = tokio::time::timeout(FAN_OUT_TIMEOUT, call)
                        .await
                        .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer within 3 s")));
                    (node, answer)
                }
            });
        for (node, answer) in futures::future::join_all(calls).await {
            match answer {
                Ok(r) => jobs.extend(r.jobs),
                Err(e) => notes.push(format!("node {node} did not answer: {}", e.message())),
            }
        }
        (merge(jobs), notes)
    }

    fn home_client(
        &self,
        home: &str,
    ) -> Result<
        (
            String,
            xtreem_proto::jobs::jobs_client::JobsClient<tonic::transport::Channel>,
        ),
        Status,
    > {
        let endpoint = peers::endpoint_of(&self.shared, home)?;
        let client = self.shared.jobs.peers.jobs(&self.shared, &endpoint)?;
        Ok((endpoint, client))
    }

    /// The job of this home for a control request, if `who` may signal it.
    fn controlled(&self, who: &Who, id: &str) -> Result<JobRecord, Status> {
        let job = self.shared.jobs.get(id).ok_or_else(|| not_found(id))?;
        if !may(&self.shared, who, id, &job.owner, Action::ReadJob) {
            return Err(not_found(id));
        }
        if !may(&self.shared, who, id, &job.owner, Action::SignalJob) {
            return Err(Status::permission_denied(format!(
                "policy denies {} control of job {id}",
                who.name()
            )));
        }
        Ok(job)
    }
}

#[tonic::async_trait]
impl Jobs for JobsService {
    async fn submit(&self, request: Request<pb::SubmitRequest>) -> R<pb::SubmitResponse> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let Who::User { claims, vo, token } = &who else {
            return Err(Status::failed_precondition(
                "jobs run as a VO member: log in with `xos login` and submit with that credential",
            ));
        };
        let req = request.get_ref();
        let mut spec =
            JobSpec::parse(&req.spec, None).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !req.array.is_empty() {
            spec.array = Some(
                xtreem_job::ArrayRange::parse(&req.array)
                    .map_err(|e| Status::invalid_argument(format!("--array: {e}")))?,
            );
        }
        match &spec.vo {
            Some(v) if v != vo => {
                return Err(Status::invalid_argument(format!(
                    "vo: the description asks for VO {v}, and your credential is for VO {vo}; log in to {v} (`xos login --vo {v}`)"
                )));
            }
            _ => spec.vo = Some(vo.clone()),
        }
        if let Some(g) = &spec.group
            && !claims.groups.iter().any(|c| c == g)
        {
            return Err(Status::invalid_argument(format!(
                "group: your credential does not hold group {g} (it holds {})",
                claims.groups.join(", ")
            )));
        }
        spec.validate()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.check_satisfiable(&spec, vo)?;
        let total_cores = spec.resources.cores.saturating_mul(spec.count);
        let allowed = crate::access::authorize(
            &self.shared,
            claims,
            vo,
            Action::SubmitJob,
            crate::access::this_node(&self.shared),
            total_cores,
        );
        // On disk before the answer, flushed while the job record is.
        let audited =
            self.shared
                .audit_durably(audit_event(&who, "submit_job", &spec.name, &allowed));
        if let Err(why) = allowed {
            audited.await;
            return Err(Status::permission_denied(why));
        }
        let owner = Owner {
            subject: claims.sub.clone(),
            issuer: claims.iss.clone(),
            vo: vo.clone(),
            groups: claims.groups.clone(),
        };
        // The jobs get a delegated credential; failing that (no VO
        // authority reachable), the owner's own, and their timeline says so.
        let (job_token, note) = match crate::jobs::credential::delegate(
            &self.shared,
            claims,
            vo,
            token,
        )
        .await
        {
            Ok(delegated) => (delegated, None),
            Err(why) => {
                tracing::warn!(user = %claims.sub, error = %why, "jobs get the owner's own credential");
                (
                    token.clone(),
                    Some(format!(
                        "carries its owner's own credential: no delegated one ({why})"
                    )),
                )
            }
        };
        let submitted = home::submit(&self.shared, owner, job_token, note, spec, req.hold).await;
        audited.await;
        Ok(Response::new(pb::SubmitResponse { ids: submitted? }))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> R<pb::ListResponse> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let filter = request.into_inner();
        for s in &filter.states {
            if JobState::parse(s).is_none() {
                return Err(Status::invalid_argument(format!(
                    "state {s:?}: expected one of queued, held, running, suspended, done, failed, cancelled"
                )));
            }
        }
        if filter.local {
            return Ok(Response::new(pb::ListResponse {
                jobs: local_jobs(&self.shared, &who, &filter),
                notes: Vec::new(),
            }));
        }
        let (jobs, notes) = self.fan_out(&who, &filter).await;
        Ok(Response::new(pb::ListResponse { jobs, notes }))
    }

    async fn status(&self, request: Request<pb::JobRef>) -> R<pb::JobInfo> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        Ok(Response::new(
            self.status_of(&who, &request.get_ref().id).await?,
        ))
    }

    async fn signal(&self, request: Request<pb::SignalRequest>) -> R<pb::SignalResponse> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let req = request.into_inner();
        let signal = xtreem_job::parse_signal(&req.signal)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let id = parse_id(&req.id)?;
        if id.home != self.shared.config.name.as_str() {
            let (endpoint, mut client) = self.home_client(&id.home)?;
            let answer = client
                .signal(pb::SignalRequest {
                    on_behalf: Some(who.on_behalf()),
                    ..req
                })
                .await;
            if answer.is_err() {
                self.shared.jobs.peers.forget(&endpoint);
            }
            return Ok(Response::new(answer?.into_inner()));
        }
        let result = self.controlled(&who, &req.id);
        self.audit(
            &who,
            "signal_job",
            &req.id,
            &result
                .as_ref()
                .map(|_| ())
                .map_err(|e| e.message().to_owned()),
        );
        result?;
        let units = home::signal(&self.shared, &req.id, signal, &who.name()).await?;
        Ok(Response::new(pb::SignalResponse { units }))
    }

    async fn checkpoint(&self, request: Request<pb::JobRef>) -> R<pb::JobInfo> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let id = request.into_inner().id;
        self.checkpoint_or_migrate(who, id, None).await
    }

    async fn migrate(&self, request: Request<pb::MigrateRequest>) -> R<pb::JobInfo> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let req = request.into_inner();
        if req.to.trim().is_empty() {
            return Err(Status::invalid_argument(
                "--to: a directory query naming where the job should go, e.g. 'name == node-3'",
            ));
        }
        self.checkpoint_or_migrate(who, req.id, Some(req.to)).await
    }

    async fn reserve(&self, request: Request<pb::ReserveRequest>) -> R<pb::ReservationInfo> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let Who::User { claims, vo, token } = &who else {
            return Err(Status::failed_precondition(
                "reservations are made by VO members for their jobs: log in with `xos login`",
            ));
        };
        let owner = Owner {
            subject: claims.sub.clone(),
            issuer: claims.iss.clone(),
            vo: vo.clone(),
            groups: claims.groups.clone(),
        };
        let result =
            crate::jobs::reservation::reserve(&self.shared, owner, token, request.into_inner())
                .await;
        self.audit(
            &who,
            "reserve",
            result.as_ref().map(|r| r.id.as_str()).unwrap_or("-"),
            &result
                .as_ref()
                .map(|_| ())
                .map_err(|e| e.message().to_owned()),
        );
        Ok(Response::new(
            result?.to_pb(xtreem_util::time::unix_now_millis()),
        ))
    }

    async fn reservations(
        &self,
        request: Request<pb::ReservationsRequest>,
    ) -> R<pb::ReservationsResponse> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let now = xtreem_util::time::unix_now_millis();
        let reservations = crate::jobs::reservation::list(&self.shared)
            .into_iter()
            .filter(|r| may_manage_reservation(&who, &r.owner))
            .map(|r| r.to_pb(now))
            .collect();
        Ok(Response::new(pb::ReservationsResponse { reservations }))
    }

    async fn cancel_reservation(
        &self,
        request: Request<pb::ReservationRef>,
    ) -> R<pb::ReservationInfo> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let id = request.into_inner().id;
        let home = id
            .strip_prefix("r-")
            .and_then(|rest| rest.rsplit_once('.'))
            .map(|(home, _)| home.to_owned())
            .ok_or_else(|| {
                Status::invalid_argument(format!("{id:?} is not a reservation id (r-NODE.SEQ)"))
            })?;
        if home != self.shared.config.name.as_str() {
            let (endpoint, mut client) = self.home_client(&home)?;
            let answer = client
                .cancel_reservation(pb::ReservationRef {
                    id,
                    on_behalf: Some(who.on_behalf()),
                })
                .await;
            if answer.is_err() {
                self.shared.jobs.peers.forget(&endpoint);
            }
            return Ok(Response::new(answer?.into_inner()));
        }
        let visible = crate::jobs::reservation::list(&self.shared)
            .into_iter()
            .find(|r| r.id == id && may_manage_reservation(&who, &r.owner));
        if visible.is_none() {
            return Err(Status::not_found(format!(
                "no reservation {id} that you may manage"
            )));
        }
        let r = crate::jobs::reservation::cancel(&self.shared, &id).await?;
        Ok(Response::new(r.to_pb(xtreem_util::time::unix_now_millis())))
    }

    async fn hold(&self, request: Request<pb::JobRef>) -> R<pb::JobInfo> {
        self.hold_or_release(request, true).await
    }

    async fn release(&self, request: Request<pb::JobRef>) -> R<pb::JobInfo> {
        self.hold_or_release(request, false).await
    }

    async fn wait(&self, request: Request<pb::WaitRequest>) -> R<pb::JobInfo> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let req = request.into_inner();
        let id = parse_id(&req.id)?;
        let timeout = Duration::from_millis(u64::from(req.timeout_ms)).min(WAIT_MAX);
        if id.home != self.shared.config.name.as_str() {
            let (endpoint, mut client) = self.home_client(&id.home)?;
            let answer = client
                .wait(pb::WaitRequest {
                    on_behalf: Some(who.on_behalf()),
                    timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
                    ..req
                })
                .await;
            if answer.is_err() {
                self.shared.jobs.peers.forget(&endpoint);
            }
            return Ok(Response::new(answer?.into_inner()));
        }
        let mut changes = self.shared.jobs.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self
                .shared
                .jobs
                .get(&req.id)
                .ok_or_else(|| not_found(&req.id))?;
            if !may(&self.shared, &who, &req.id, &job.owner, Action::ReadJob) {
                return Err(not_found(&req.id));
            }
            if job.state.is_terminal() {
                return Ok(Response::new(job.to_pb(false)));
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(Response::new(job.to_pb(false))),
            }
        }
    }

    type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogChunk, Status>> + Send>>;

    async fn logs(&self, request: Request<pb::LogsRequest>) -> R<Self::LogsStream> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let req = request.into_inner();
        let (job, rank) = UnitId::parse_job_or_unit(&req.id)
            .map_err(|e| Status::invalid_argument(format!("{:?}: {e}", req.id)))?;
        let info = self.status_of(&who, &job.to_string()).await?;
        let rank = rank.unwrap_or(0);
        let unit = info
            .units
            .iter()
            .find(|u| u.rank == rank)
            .ok_or_else(|| Status::not_found(format!("job {job} has no unit {rank}")))?;
        if unit.node.is_empty() {
            return Err(Status::failed_precondition(format!(
                "unit {rank} of job {job} has not started yet"
            )));
        }
        let shared = Arc::clone(&self.shared);
        let node = unit.node.clone();
        let unit_name = resource::unit_name(&job, rank, unit.attempt);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut offset = req.offset;
            loop {
                let chunk = read_chunk(&shared, &node, &unit_name, req.stderr, offset).await;
                let (eof, empty) = match &chunk {
                    Ok(c) => {
                        offset = c.next_offset;
                        (c.eof, c.data.is_empty())
                    }
                    Err(_) => (true, true),
                };
                if (!empty || eof || chunk.is_err()) && tx.send(chunk).await.is_err() {
                    return;
                }
                if eof || (!req.follow && empty) {
                    return;
                }
                if empty {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn acct(&self, request: Request<pb::AcctRequest>) -> R<pb::AcctResponse> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let req = request.into_inner();
        let shared = &self.shared;
        let me = shared.config.name.to_string();
        let mut records = local_usage(shared, &who);
        let mut notes = Vec::new();
        let calls = peers::alive_nodes(shared)
            .into_iter()
            .filter(|(n, _)| *n != me)
            .map(|(node, endpoint)| {
                let shared = Arc::clone(shared);
                let ask = pb::AcctRequest {
                    on_behalf: Some(who.on_behalf()),
                    ..req.clone()
                };
                async move {
                    let call = async {
                        let mut client = shared.jobs.peers.exec(&shared, &endpoint)?;
                        Ok::<_, Status>(client.local_acct(ask).await?.into_inner())
                    };
                    let answer = tokio::time::timeout(FAN_OUT_TIMEOUT, call)
                        .await
                        .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer within 3 s")));
                    (node, answer)
                }
            });
        for (node, answer) in futures::future::join_all(calls).await {
            match answer {
                Ok(r) => records.extend(
                    r.records
                        .iter()
                        .filter_map(|line| serde_json::from_str::<UsageRecord>(line).ok()),
                ),
                Err(e) => notes.push(format!("node {node} did not answer: {}", e.message())),
            }
        }
        let filter = AcctFilter {
            vo: (!req.vo.is_empty()).then(|| req.vo.clone()),
            user: (!req.user.is_empty()).then(|| req.user.clone()),
            since_unix_ms: (req.since_unix_ms > 0).then_some(req.since_unix_ms),
        };
        let lines = summarize(records.iter(), &filter)
            .into_iter()
            .map(|l| pb::AcctLine {
                user: l.user,
                vo: l.vo,
                jobs: l.jobs,
                units: l.units,
                cpu_ns: l.cpu_ns,
                wall_ms: l.wall_ms,
                peak_memory_bytes: l.peak_memory_bytes,
                io_read_bytes: l.io_read_bytes,
                io_write_bytes: l.io_write_bytes,
            })
            .collect();
        Ok(Response::new(pb::AcctResponse {
            lines,
            records: Vec::new(),
            notes,
        }))
    }
}

impl JobsService {
    async fn checkpoint_or_migrate(
        &self,
        who: Who,
        id: String,
        to: Option<String>,
    ) -> R<pb::JobInfo> {
        let job_id = parse_id(&id)?;
        if job_id.home != self.shared.config.name.as_str() {
            let (endpoint, mut client) = self.home_client(&job_id.home)?;
            let answer = match &to {
                Some(q) => {
                    client
                        .migrate(pb::MigrateRequest {
                            id: id.clone(),
                            to: q.clone(),
                            on_behalf: Some(who.on_behalf()),
                        })
                        .await
                }
                None => {
                    client
                        .checkpoint(pb::JobRef {
                            id: id.clone(),
                            on_behalf: Some(who.on_behalf()),
                        })
                        .await
                }
            };
            if answer.is_err() {
                self.shared.jobs.peers.forget(&endpoint);
            }
            return Ok(Response::new(answer?.into_inner()));
        }
        self.controlled(&who, &id)?;
        let job = home::checkpoint(&self.shared, &id, to, &who.name()).await?;
        Ok(Response::new(job.to_pb(true)))
    }

    async fn hold_or_release(&self, request: Request<pb::JobRef>, hold: bool) -> R<pb::JobInfo> {
        let who = who(&self.shared, &request, request.get_ref().on_behalf.as_ref())?;
        let req = request.into_inner();
        let id = parse_id(&req.id)?;
        if id.home != self.shared.config.name.as_str() {
            let (endpoint, mut client) = self.home_client(&id.home)?;
            let forwarded = pb::JobRef {
                id: req.id.clone(),
                on_behalf: Some(who.on_behalf()),
            };
            let answer = if hold {
                client.hold(forwarded).await
            } else {
                client.release(forwarded).await
            };
            if answer.is_err() {
                self.shared.jobs.peers.forget(&endpoint);
            }
            return Ok(Response::new(answer?.into_inner()));
        }
        self.controlled(&who, &req.id)?;
        let job = home::hold(&self.shared, &req.id, hold, &who.name())?;
        Ok(Response::new(job.to_pb(true)))
    }
}

async fn read_chunk(
    shared: &Arc<NodeShared>,
    node: &str,
    unit: &str,
    stderr: bool,
    offset: u64,
) -> Result<pb::LogChunk, Status> {
    const CHUNK: u32 = 256 * 1024;
    if node == shared.config.name.as_str() {
        return resource::read_log(shared, unit, stderr, offset, CHUNK);
    }
    let endpoint = peers::endpoint_of(shared, node)?;
    let mut client = shared.jobs.peers.exec(shared, &endpoint)?;
    let answer = client
        .read_log(pb::ReadLogRequest {
            unit: unit.to_owned(),
            stderr,
            offset,
            max_bytes: CHUNK,
        })
        .await;
    if answer.is_err() {
        shared.jobs.peers.forget(&endpoint);
    }
    Ok(answer?.into_inner())
}

/// Usage records of jobs this node is home of that `who` may read.
fn local_usage(shared: &NodeShared, who: &Who) -> Vec<UsageRecord> {
    let records = shared.store.read(query::usage).unwrap_or_default();
    records
        .into_iter()
        .filter(|u| match who {
            Who::SiteAdmin(_) => true,
            Who::User { claims, vo, .. } => {
                u.vo == *vo && (u.user == claims.sub || crate::access::is_vo_admin(claims, vo))
            }
        })
        .collect()
}

pub struct JobExecService {
    pub shared: Arc<NodeShared>,
}

impl JobExecService {
    /// The calling node of this site (node mTLS), or why not.
    fn node<T>(&self, request: &Request<T>) -> Result<xtreem_net::PeerIdentity, Status> {
        crate::rpc::caller(request, &self.shared, PrincipalKind::Node, "JobExec")
    }
}

#[tonic::async_trait]
impl JobExec for JobExecService {
    async fn launch(&self, request: Request<pb::LaunchRequest>) -> R<pb::LaunchResponse> {
        self.node(&request)?;
        Ok(Response::new(
            resource::launch(&self.shared, request.into_inner()).await?,
        ))
    }

    async fn units_wanted(
        &self,
        request: Request<pb::UnitsWantedRequest>,
    ) -> R<pb::UnitsWantedResponse> {
        let node = self.node(&request)?;
        let req = request.into_inner();
        if req.units.len() > home::UNITS_WANTED_MAX {
            return Err(Status::invalid_argument(format!(
                "at most {} units per request",
                home::UNITS_WANTED_MAX
            )));
        }
        Ok(Response::new(pb::UnitsWantedResponse {
            wanted: home::units_wanted(&self.shared, &node.name, &req.units),
        }))
    }

    async fn unit_ended(&self, request: Request<pb::UnitEndedRequest>) -> R<pb::UnitEndedResponse> {
        self.node(&request)?;
        home::unit_ended(&self.shared, request.into_inner()).await?;
        Ok(Response::new(pb::UnitEndedResponse {}))
    }

    async fn signal_units(
        &self,
        request: Request<pb::SignalUnitsRequest>,
    ) -> R<pb::SignalResponse> {
        self.node(&request)?;
        let req = request.into_inner();
        let units = resource::signal_units(&self.shared, &req.job, req.signal).await?;
        Ok(Response::new(pb::SignalResponse { units }))
    }

    async fn read_log(&self, request: Request<pb::ReadLogRequest>) -> R<pb::LogChunk> {
        self.node(&request)?;
        let req = request.into_inner();
        Ok(Response::new(resource::read_log(
            &self.shared,
            &req.unit,
            req.stderr,
            req.offset,
            req.max_bytes,
        )?))
    }

    async fn local_jobs(&self, request: Request<pb::LocalJobsRequest>) -> R<pb::ListResponse> {
        self.node(&request)?;
        let filter = request.into_inner().filter.unwrap_or_default();
        let who = speaking_for(&self.shared, filter.on_behalf.as_ref(), "a node")?;
        Ok(Response::new(pb::ListResponse {
            jobs: local_jobs(&self.shared, &who, &filter),
            notes: Vec::new(),
        }))
    }

    async fn put_checkpoint(
        &self,
        request: Request<pb::CheckpointChunk>,
    ) -> R<pb::UnitEndedResponse> {
        self.node(&request)?;
        crate::jobs::checkpoint::put(&self.shared, request.into_inner()).await?;
        Ok(Response::new(pb::UnitEndedResponse {}))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> R<pb::CheckpointChunk> {
        self.node(&request)?;
        Ok(Response::new(crate::jobs::checkpoint::get(
            &self.shared,
            request.get_ref(),
        )?))
    }

    async fn hold_reservation(
        &self,
        request: Request<pb::HoldReservationRequest>,
    ) -> R<pb::LaunchResponse> {
        self.node(&request)?;
        Ok(Response::new(
            resource::hold_reservation(&self.shared, request.into_inner()).await?,
        ))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReservationRef>,
    ) -> R<pb::UnitEndedResponse> {
        self.node(&request)?;
        resource::release_reservation(&self.shared, &request.get_ref().id).await?;
        Ok(Response::new(pb::UnitEndedResponse {}))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::ReservationRef>,
    ) -> R<pb::ReservationInfo> {
        self.node(&request)?;
        let id = &request.get_ref().id;
        let r = crate::jobs::reservation::list(&self.shared)
            .into_iter()
            .find(|r| r.id == *id)
            .ok_or_else(|| Status::not_found(format!("no reservation {id}")))?;
        Ok(Response::new(r.to_pb(xtreem_util::time::unix_now_millis())))
    }

    async fn local_acct(&self, request: Request<pb::AcctRequest>) -> R<pb::AcctResponse> {
        self.node(&request)?;
        let req = request.into_inner();
        let who = speaking_for(&self.shared, req.on_behalf.as_ref(), "a node")?;
        let records = local_usage(&self.shared, &who)
            .iter()
            .filter_map(|u| serde_json::to_string(u).ok())
            .collect();
        Ok(Response::new(pb::AcctResponse {
            lines: Vec::new(),
            records,
            notes: Vec::new(),
        }))
    }
}
