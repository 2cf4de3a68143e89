//! The directory service: discovery queries, service lookup, the gossip
//! view, and this site's summary for trusting sites.
//!
//! Who sees what: a VO user (bearer credential, or one a node forwards on
//! the user's behalf) sees only nodes that serve the user's VO; a site
//! administrator and this site's own nodes see every node of the site; a
//! node of a trusting site must forward a user's credential.

use std::collections::BTreeSet;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use xtreem_directory::{NodeRecord, Query, SiteSummary, SortKey, sort_and_limit};
use xtreem_net::{PrincipalKind, peer_identity};
use xtreem_proto::directory as pb;
use xtreem_proto::directory::directory_client::DirectoryClient;
use xtreem_util::roles::Role;

use crate::daemon::NodeShared;
use crate::directory::federation;
use crate::rpc::vo::{bearer, credential_vo};

type R<T> = Result<Response<T>, Status>;

pub struct DirectoryService {
    pub shared: Arc<NodeShared>,
}

/// Who asks, as far as visibility goes.
enum Viewer {
    /// Sees every node of this site (site administrators, own nodes).
    Site,
    /// Sees nodes serving `vo`; `token` travels with forwarded queries.
    User { vo: String, token: String },
}

impl Viewer {
    fn may_see(&self, record: &NodeRecord) -> bool {
        match self {
            Viewer::Site => true,
            Viewer::User { vo, .. } => record.descriptor.vos.contains(vo),
        }
    }

    fn token(&self) -> String {
        match self {
            Viewer::Site => String::new(),
            Viewer::User { token, .. } => token.clone(),
        }
    }
}

fn entry(record: &NodeRecord) -> pb::NodeEntry {
    pb::NodeEntry {
        descriptor: record.descriptor.encode().unwrap_or_default(),
        dynamic: record.dynamic.map(|d| d.encode()).unwrap_or_default(),
        alive: record.alive,
    }
}

fn record(entry: &pb::NodeEntry) -> Option<NodeRecord> {
    let descriptor = xtreem_directory::StaticDescriptor::decode(&entry.descriptor).ok()?;
    let dynamic = if entry.dynamic.is_empty() {
        None
    } else {
        xtreem_directory::DynamicSample::decode(&entry.dynamic).ok()
    };
    Some(NodeRecord {
        descriptor: Arc::new(descriptor),
        dynamic,
        alive: entry.alive,
    })
}

impl DirectoryService {
    fn user(&self, token: &str) -> Result<Viewer, Status> {
        let trusted = self.shared.trust.current();
        let claims = trusted
            .verifier
            .verify(token)
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        Ok(Viewer::User {
            vo: credential_vo(&self.shared, &claims)?,
            token: token.to_owned(),
        })
    }

    fn viewer<T>(&self, request: &Request<T>, on_behalf_of: &str) -> Result<Viewer, Status> {
        let site = self.shared.site_name().unwrap_or_default();
        if let Some(token) = bearer(request) {
            return self.user(&token);
        }
        let peer = peer_identity(request).ok_or_else(|| {
            Status::unauthenticated(
                "the directory needs a VO credential (run `xos login`) or a site administrator certificate",
            )
        })?;
        if peer.site == site {
            crate::rpc::caller(request, &self.shared, peer.kind, "the directory")?;
            return match (peer.kind, on_behalf_of.is_empty()) {
                (_, false) => self.user(on_behalf_of),
                (PrincipalKind::Admin | PrincipalKind::Node, true) => Ok(Viewer::Site),
            };
        }
        // A node of a trusting site (the TLS layer checked its CA and that
        // the certificate names that site) must speak for a user.
        if peer.kind == PrincipalKind::Node && !on_behalf_of.is_empty() {
            return self.user(on_behalf_of);
        }
        Err(Status::permission_denied(format!(
            "{peer} may ask this site's directory only on behalf of a VO user"
        )))
    }

    fn is_replica(&self) -> bool {
        self.shared.config.has_role(Role::Core)
    }

    async fn answer(&self, viewer: Viewer, request: pb::QueryRequest) -> R<pb::QueryResponse> {
        let mut query = Query::parse(&request.query).map_err(|e| {
            Status::invalid_argument(format!("bad query {e}\n{}", e.render(&request.query)))
        })?;
        if !request.sort.is_empty() {
            let mut keys = query.sort_keys().to_vec();
            for text in &request.sort {
                keys.push(
                    SortKey::parse(text).map_err(|e| {
                        Status::invalid_argument(format!("--sort {}", e.render(text)))
                    })?,
                );
            }
            query = query.with_sort(keys);
        }
        if request.limit > 0 {
            query = query.with_limit(request.limit as usize);
        }
        let own_site = self.shared.site_name().unwrap_or_default();
        let grid = request.scope == pb::Scope::Grid as i32;

        // A node that is not a replica lacks fresh dynamic values: the
        // site's core node answers instead, and this node only if it cannot.
        if !self.is_replica() {
            match self.forward_to_authority(&viewer, &request).await {
                Ok(response) => return Ok(Response::new(response)),
                Err(e) => {
                    let mut response = self.local(&viewer, &query, &own_site);
                    response.notes.push(format!(
                        "the site's directory replica did not answer ({}); this is node {}'s own view: dynamic attributes are missing and other sites were not asked",
                        e.message(),
                        self.shared.config.name
                    ));
                    return Ok(Response::new(response));
                }
            }
        }

        let mut response = self.local(&viewer, &query, &own_site);
        let named = query.named_sites();
        let wants_more = match query.limit() {
            Some(limit) => response.nodes.len() < limit,
            None => response.nodes.is_empty(),
        };
        let names_others = named
            .as_ref()
            .is_some_and(|sites| sites.iter().any(|s| *s != own_site));
        if grid && (wants_more || names_others) {
            self.federate(&viewer, &query, &request, &named, &mut response)
                .await;
        }
        Ok(Response::new(response))
    }

    fn local(&self, viewer: &Viewer, query: &Query, own_site: &str) -> pb::QueryResponse {
        let wanted = query
            .named_sites()
            .is_none_or(|sites| sites.contains(own_site));
        let nodes = if wanted {
            match self.shared.directory.view.read() {
                Ok(view) => view
                    .query(query, |r| viewer.may_see(r))
                    .iter()
                    .map(entry)
                    .collect(),
                Err(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };
        pb::QueryResponse {
            nodes,
            notes: Vec::new(),
            sites: if wanted {
                vec![own_site.to_owned()]
            } else {
                Vec::new()
            },
        }
    }

    async fn forward_to_authority(
        &self,
        viewer: &Viewer,
        request: &pb::QueryRequest,
    ) -> Result<pb::QueryResponse, Status> {
        let channel = self.shared.authority_channel()?;
        let mut forwarded = request.clone();
        forwarded.on_behalf_of = viewer.token();
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            DirectoryClient::new(channel).query(forwarded),
        )
        .await
        .map_err(|_| Status::deadline_exceeded("no answer within 3 s"))??;
        Ok(response.into_inner())
    }

    /// Asks the trusted sites whose summaries may match, in parallel, and
    /// merges their answers into `response`.
    async fn federate(
        &self,
        viewer: &Viewer,
        query: &Query,
        request: &pb::QueryRequest,
        named: &Option<BTreeSet<String>>,
        response: &mut pb::QueryResponse,
    ) {
        let Viewer::User { vo, token } = viewer else {
            if named.is_some() {
                response.notes.push(
                    "other sites answer VO users only: log in (`xos login`) to search them".into(),
                );
            }
            return;
        };
        let vos = BTreeSet::from([vo.clone()]);
        let candidates: Vec<(String, String)> = self
            .shared
            .directory
            .summaries()
            .into_iter()
            .filter(|(site, _)| named.as_ref().is_none_or(|n| n.contains(site)))
            .filter(|(_, remote)| {
                remote.summary.serves_any(&vos) && remote.summary.may_match(query)
            })
            .map(|(site, remote)| (site, remote.endpoint))
            .collect();
        let forwarded = pb::QueryRequest {
            query: request.query.clone(),
            sort: request.sort.clone(),
            limit: request.limit,
            scope: pb::Scope::Site as i32,
            on_behalf_of: token.clone(),
        };
        let asks = candidates.iter().map(|(site, endpoint)| {
            let forwarded = forwarded.clone();
            async move {
                (
                    site.clone(),
                    federation::query_site(&self.shared, site, endpoint, forwarded).await,
                )
            }
        });
        let answers = futures::future::join_all(asks).await;
        let mut records: Vec<NodeRecord> = response.nodes.iter().filter_map(record).collect();
        for (site, answer) in answers {
            match answer {
                Ok(remote) => {
                    response.sites.push(site.clone());
                    response.notes.extend(remote.notes);
                    // A site answers only for its own nodes.
                    records.extend(
                        remote
                            .nodes
                            .iter()
                            .filter_map(record)
                            .filter(|r| r.descriptor.site == site),
                    );
                }
                Err(e) => response
                    .notes
                    .push(format!("site {site} did not answer: {}", e.message())),
            }
        }
        response.nodes = sort_and_limit(records, query).iter().map(entry).collect();
    }
}

#[tonic::async_trait]
impl pb::directory_server::Directory for DirectoryService {
    async fn query(&self, request: Request<pb::QueryRequest>) -> R<pb::QueryResponse> {
        let result = match self.viewer(&request, &request.get_ref().on_behalf_of) {
            Ok(viewer) => self.answer(viewer, request.into_inner()).await,
            Err(e) => Err(e),
        };
        self.shared.metrics.rpc("Directory/Query", &result);
        result
    }

    async fn services(&self, request: Request<pb::ServicesRequest>) -> R<pb::ServicesResponse> {
        let result = self.viewer(&request, "").map(|_| {
            let kind = request.get_ref().kind.clone();
            let view = self.shared.directory.view.read();
            let services = match view {
                Ok(view) => {
                    let kinds: Vec<String> = if kind.is_empty() {
                        let mut all: Vec<String> = view
                            .iter()
                            .flat_map(|r| r.descriptor.services.iter().map(|s| s.kind.clone()))
                            .collect();
                        all.sort();
                        all.dedup();
                        all
                    } else {
                        vec![kind]
                    };
                    kinds
                        .iter()
                        .flat_map(|k| view.services(k))
                        .map(|(node, s)| pb::ServiceEntry {
                            node_alive: view.get(&node).is_some_and(|r| r.alive),
                            kind: s.kind,
                            node,
                            address: s.address,
                            healthy: s.healthy,
                        })
                        .collect()
                }
                Err(_) => Vec::new(),
            };
            Response::new(pb::ServicesResponse { services })
        });
        self.shared.metrics.rpc("Directory/Services", &result);
        result
    }

    async fn members(&self, request: Request<pb::MembersRequest>) -> R<pb::MembersResponse> {
        let result = match self.viewer(&request, "") {
            Ok(Viewer::Site) => {
                let directory = &self.shared.directory;
                let view = directory.view.read().ok();
                let version = |name: &str| {
                    view.as_ref()
                        .and_then(|v| v.get(name).map(|r| r.descriptor.version))
                        .unwrap_or(0)
                };
                let mut members: Vec<pb::Member> = directory
                    .members()
                    .into_iter()
                    .map(|m| pb::Member {
                        descriptor_version: version(&m.id.name),
                        node: m.id.name,
                        endpoint: m.id.addr.to_string(),
                        incarnation: u32::from(m.id.incarnation),
                        alive: m.alive,
                    })
                    .collect();
                members.sort_by(|a, b| a.node.cmp(&b.node));
                let c = directory.counters();
                let counters = [
                    ("packets_in", c.packets_in),
                    ("bytes_in", c.bytes_in),
                    ("packets_out", c.packets_out),
                    ("bytes_out", c.bytes_out),
                    ("dropped_unauthenticated", c.dropped_unauthenticated),
                    ("dropped_malformed", c.dropped_malformed),
                    ("rejected_forged", c.rejected_forged),
                    ("rejected_unknown_signer", c.rejected_unknown_signer),
                    ("rejected_invalid", c.rejected_invalid),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                Ok(Response::new(pb::MembersResponse {
                    node: self.shared.config.name.to_string(),
                    members,
                    counters,
                }))
            }
            Ok(Viewer::User { .. }) => Err(Status::permission_denied(
                "the gossip view is for site administrators",
            )),
            Err(e) => Err(e),
        };
        self.shared.metrics.rpc("Directory/Members", &result);
        result
    }

    async fn summary(&self, request: Request<pb::SummaryRequest>) -> R<pb::SummaryResponse> {
        let result = match peer_identity(&request) {
            Some(peer) if peer.kind == PrincipalKind::Node => {
                let site = self.shared.site_name().unwrap_or_default();
                match self.shared.directory.view.read() {
                    Ok(view) => Ok(Response::new(pb::SummaryResponse {
                        summary: SiteSummary::of(&site, &view, xtreem_util::time::unix_now())
                            .encode(),
                        endpoint: self.shared.rpc_endpoint.clone(),
                    })),
                    Err(_) => Err(Status::internal("directory view unavailable")),
                }
            }
            _ => Err(Status::permission_denied(
                "site summaries are for the core nodes of trusting sites",
            )),
        };
        self.shared.metrics.rpc("Directory/Summary", &result);
        result
    }
}
