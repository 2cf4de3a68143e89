//! Reservations (XtreemOS's xreservation): a user reserves N nodes x
//! resources for a window, now or later, exclusive or shared; jobs naming
//! the reservation run only on its nodes and draw on its capacity. The node
//! that took the request is the reservation's home; each chosen node holds
//! the capacity under its own ledger and may refuse, as for jobs.

use std::sync::Arc;
use std::time::Duration;

use tonic::Status;
use xtreem_directory::{NodeRecord, Query};
use xtreem_proto::jobs as pb;
use xtreem_util::roles::Role;
use xtreem_util::time::unix_now_millis;

use super::machine::{JobCommand, query};
use super::peers;
use super::record::{Owner, Reservation};
use super::resource;
use crate::daemon::NodeShared;

/// Longest reservation: 31 days.
const DURATION_MAX_MS: u64 = 31 * 24 * 3600 * 1000;
/// Furthest start: a year ahead.
const START_AHEAD_MAX_MS: u64 = 365 * 24 * 3600 * 1000;

fn home_of(id: &str) -> Option<&str> {
    id.strip_prefix("r-")?
        .rsplit_once('.')
        .map(|(home, _)| home)
}

fn candidates(
    shared: &NodeShared,
    owner: &Owner,
    request: &pb::ReserveRequest,
) -> Result<Vec<NodeRecord>, Status> {
    let query = Query::parse(&request.constraints).map_err(|e| {
        Status::invalid_argument(format!(
            "constraints: bad query {e}\n{}",
            e.render(&request.constraints)
        ))
    })?;
    let site = shared.site_name().unwrap_or_default();
    let view = shared
        .directory
        .view
        .read()
        .map_err(|_| Status::internal("the directory view is unavailable"))?;
    let mut nodes: Vec<NodeRecord> = view
        .iter()
        .filter(|r| {
            r.alive
                && r.descriptor.site == site
                && r.descriptor
                    .roles
                    .iter()
                    .any(|x| x == Role::Resource.as_str())
                && r.descriptor.vos.contains(&owner.vo)
                && r.descriptor.cores >= request.cores
                && r.descriptor.memory_bytes >= request.memory_bytes
                && query.matches(r)
        })
        .cloned()
        .collect();
    // Least loaded first, as far as the directory knows.
    nodes.sort_by(|a, b| {
        let load = |r: &NodeRecord| r.dynamic.map_or(0.0, |d| d.load);
        load(a)
            .total_cmp(&load(b))
            .then(a.descriptor.node.cmp(&b.descriptor.node))
    });
    Ok(nodes)
}

async fn hold_on(
    shared: &Arc<NodeShared>,
    node: &NodeRecord,
    request: pb::HoldReservationRequest,
) -> Result<pb::LaunchResponse, Status> {
    if node.descriptor.node == shared.config.name.as_str() {
        return resource::hold_reservation(shared, request).await;
    }
    let endpoint = &node.descriptor.rpc_endpoint;
    let mut client = shared.jobs.peers.exec(shared, endpoint)?;
    let answer = tokio::time::timeout(Duration::from_secs(5), client.hold_reservation(request))
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!("{} did not answer", node.descriptor.node))
        })?;
    Ok(answer?.into_inner())
}

async fn release_on(shared: &Arc<NodeShared>, node: &str, id: &str) {
    if node == shared.config.name.as_str() {
        let _ = resource::release_reservation(shared, id).await;
        return;
    }
    let Ok(endpoint) = peers::endpoint_of(shared, node) else {
        return;
    };
    let Ok(mut client) = shared.jobs.peers.exec(shared, &endpoint) else {
        return;
    };
    if let Err(e) = client
        .release_reservation(pb::ReservationRef {
            id: id.to_owned(),
            on_behalf: None,
        })
        .await
    {
        tracing::warn!(node, reservation = id, error = %e, "cannot release a reservation");
    }
}

/// Makes a reservation: the first `nodes` candidates that hold it.
pub async fn reserve(
    shared: &Arc<NodeShared>,
    owner: Owner,
    token: &str,
    request: pb::ReserveRequest,
) -> Result<Reservation, Status> {
    if request.nodes == 0 || request.nodes > 10_000 {
        return Err(Status::invalid_argument("--nodes: between 1 and 10000"));
    }
    if request.cores == 0 {
        return Err(Status::invalid_argument("--cores: at least 1"));
    }
    if request.duration_ms == 0 || request.duration_ms > DURATION_MAX_MS {
        return Err(Status::invalid_argument(
            "--duration: more than 0 and at most 31 days",
        ));
    }
    let now = unix_now_millis();
    let start = if request.start_unix_ms == 0 {
        now
    } else {
        request.start_unix_ms
    };
    if start + 60_000 < now || start > now + START_AHEAD_MAX_MS {
        return Err(Status::invalid_argument(
            "--start: not in the past, at most a year ahead",
        ));
    }
    let nodes = candidates(shared, &owner, &request)?;
    if (nodes.len() as u64) < u64::from(request.nodes) {
        return Err(Status::failed_precondition(format!(
            "only {} alive resource nodes serving VO {} match and have {} cores; {} asked",
            nodes.len(),
            owner.vo,
            request.cores,
            request.nodes
        )));
    }
    let mut reservation = Reservation {
        id: String::new(),
        owner: owner.clone(),
        nodes: Vec::new(),
        cores: request.cores,
        memory_bytes: request.memory_bytes,
        start_unix_ms: start,
        end_unix_ms: start + request.duration_ms,
        exclusive: request.exclusive,
        cancelled: false,
    };
    let ids = shared
        .jobs
        .writer
        .write(JobCommand::NewReservation {
            home: shared.config.name.to_string(),
            reservation: reservation.clone(),
        })
        .done()
        .await
        .map_err(Status::internal)?;
    reservation.id = ids
        .into_iter()
        .next()
        .ok_or_else(|| Status::internal("no reservation id"))?;
    let mut refusals = Vec::new();
    for node in &nodes {
        if reservation.nodes.len() as u32 >= request.nodes {
            break;
        }
        let mut info = reservation.to_pb(now);
        info.nodes = vec![node.descriptor.node.clone()];
        let ask = pb::HoldReservationRequest {
            reservation: Some(info),
            token: token.to_owned(),
        };
        match hold_on(shared, node, ask).await {
            Ok(a) if a.admitted => reservation.nodes.push(node.descriptor.node.clone()),
            Ok(a) => refusals.push(a.reason),
            Err(e) => refusals.push(format!("{}: {}", node.descriptor.node, e.message())),
        }
    }
    if (reservation.nodes.len() as u32) < request.nodes {
        for node in &reservation.nodes {
            release_on(shared, node, &reservation.id).await;
        }
        let _ = shared
            .jobs
            .writer
            .write(JobCommand::RemoveReservation {
                id: reservation.id.clone(),
            })
            .done()
            .await;
        return Err(Status::resource_exhausted(format!(
            "only {} of {} nodes could hold the reservation: {}",
            reservation.nodes.len(),
            request.nodes,
            refusals.join("; ")
        )));
    }
    shared
        .jobs
        .writer
        .write(JobCommand::PutReservation {
            reservation: reservation.clone(),
        })
        .done()
        .await
        .map_err(Status::internal)?;
    Ok(reservation)
}

/// Reservations of this home.
pub fn list(shared: &NodeShared) -> Vec<Reservation> {
    shared.store.read(query::reservations).unwrap_or_default()
}

/// Cancels a reservation of this home and releases its nodes.
pub async fn cancel(shared: &Arc<NodeShared>, id: &str) -> Result<Reservation, Status> {
    let mut r = shared
        .store
        .read(|t| query::reservation(t, id))
        .map_err(|e| Status::internal(e.to_string()))?
        .ok_or_else(|| Status::not_found(format!("no reservation {id}")))?;
    for node in &r.nodes {
        release_on(shared, node, id).await;
    }
    r.cancelled = true;
    shared
        .jobs
        .writer
        .write(JobCommand::PutReservation {
            reservation: r.clone(),
        })
        .done()
        .await
        .map_err(Status::internal)?;
    Ok(r)
}

/// A reservation by id: from this home's store, or asked of its home.
pub async fn find(shared: &Arc<NodeShared>, id: &str) -> Result<Reservation, String> {
    let home = home_of(id).ok_or_else(|| format!("{id:?} is not a reservation id (r-NODE.SEQ)"))?;
    if home == shared.config.name.as_str() {
        return shared
            .store
            .read(|t| query::reservation(t, id))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("reservation {id} does not exist"));
    }
    let endpoint = peers::endpoint_of(shared, home).map_err(|e| e.message().to_owned())?;
    let mut client = shared
        .jobs
        .peers
        .exec(shared, &endpoint)
        .map_err(|e| e.message().to_owned())?;
    let info = client
        .get_reservation(pb::ReservationRef {
            id: id.to_owned(),
            on_behalf: None,
        })
        .await
        .map_err(|e| e.message().to_owned())?
        .into_inner();
    let owner = Owner {
        subject: info.owner.clone(),
        issuer: String::new(),
        vo: info.vo.clone(),
        groups: Vec::new(),
    };
    Ok(Reservation::from_pb(&info, owner))
}
