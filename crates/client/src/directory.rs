//! Calls to the directory, as a VO user (bearer credential) or as a site
//! administrator (certificate).

use std::sync::Arc;

use tonic::Request;
use xtreem_directory::{DynamicSample, NodeRecord, StaticDescriptor};
use xtreem_proto::directory as pb;
use xtreem_proto::directory::directory_client::DirectoryClient as Raw;

use crate::{ClientError, Profile, Result};

pub struct DirectoryClient {
    endpoint: String,
    raw: Raw<tonic::transport::Channel>,
    bearer: Option<String>,
}

/// The nodes a query found, decoded.
#[derive(Debug, Clone)]
pub struct QueryAnswer {
    pub nodes: Vec<NodeRecord>,
    pub notes: Vec<String>,
    pub sites: Vec<String>,
}

impl DirectoryClient {
    /// Connects with the administrator certificate when `as_admin` and the
    /// profile has one; otherwise with server-authenticated TLS and `bearer`.
    pub fn connect(
        profile: &Profile,
        endpoint: &str,
        as_admin: bool,
        bearer: Option<String>,
    ) -> Result<DirectoryClient> {
        let channel = crate::call::channel(profile, endpoint, as_admin)?;
        Ok(DirectoryClient {
            endpoint: endpoint.to_owned(),
            raw: Raw::new(channel),
            bearer: if as_admin { None } else { bearer },
        })
    }

    fn request<T>(&self, message: T) -> Result<Request<T>> {
        crate::call::request(message, self.bearer.as_deref())
    }

    fn err(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.endpoint, status)
    }

    pub async fn query(&mut self, message: pb::QueryRequest) -> Result<QueryAnswer> {
        let request = self.request(message)?;
        let response = self
            .raw
            .query(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        let mut nodes = Vec::with_capacity(response.nodes.len());
        for entry in &response.nodes {
            nodes.push(decode_entry(entry).map_err(|e| {
                ClientError::Local(format!(
                    "{}: undecodable directory entry: {e}",
                    self.endpoint
                ))
            })?);
        }
        Ok(QueryAnswer {
            nodes,
            notes: response.notes,
            sites: response.sites,
        })
    }

    pub async fn services(&mut self, kind: &str) -> Result<pb::ServicesResponse> {
        let request = self.request(pb::ServicesRequest {
            kind: kind.to_owned(),
        })?;
        match self.raw.services(request).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.err(s)),
        }
    }

    pub async fn members(&mut self) -> Result<pb::MembersResponse> {
        let request = self.request(pb::MembersRequest {})?;
        match self.raw.members(request).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.err(s)),
        }
    }
}

fn decode_entry(entry: &pb::NodeEntry) -> std::result::Result<NodeRecord, String> {
    let descriptor = StaticDescriptor::decode(&entry.descriptor).map_err(|e| e.to_string())?;
    let dynamic = if entry.dynamic.is_empty() {
        None
    } else {
        Some(DynamicSample::decode(&entry.dynamic).map_err(|e| e.to_string())?)
    };
    Ok(NodeRecord {
        descriptor: Arc::new(descriptor),
        dynamic,
        alive: entry.alive,
    })
}
