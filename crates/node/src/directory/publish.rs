//! What this node publishes about itself.

use std::collections::BTreeSet;

use xtreem_directory::{ServiceEntry, StaticBase, StaticDescriptor, probe_static};
use xtreem_util::roles::Role;

use crate::daemon::NodeShared;

/// VOs this node serves according to the site's policy (`xos site serve`).
pub fn served_vos(shared: &NodeShared) -> BTreeSet<String> {
    let me = shared.config.name.as_str();
    shared
        .trust
        .current()
        .doc
        .served
        .iter()
        .filter(|s| s.nodes.is_empty() || s.nodes.iter().any(|n| n == me))
        .map(|s| s.vo.clone())
        .collect()
}

/// Services this node runs, by kind, at its RPC address.
pub fn services(shared: &NodeShared) -> Vec<ServiceEntry> {
    let at = |kind: &str| ServiceEntry {
        kind: kind.to_owned(),
        address: shared.rpc_endpoint.clone(),
        healthy: true,
    };
    let mut services = Vec::new();
    if shared.authority().is_some() {
        services.push(at("site-ca"));
    }
    if shared.vo_authority().is_some() {
        services.push(at("vo"));
    }
    if shared.config.has_role(Role::Core) {
        services.push(at("directory"));
    }
    if shared.config.has_role(Role::Resource) {
        services.push(at("execution"));
    }
    services
}

/// This node's descriptor at `version`, with the hardware probed now.
pub fn own_descriptor(shared: &NodeShared, version: u64) -> std::io::Result<StaticDescriptor> {
    let base = StaticBase {
        node: shared.config.name.to_string(),
        site: shared.site_name().unwrap_or_default(),
        roles: shared
            .config
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        rpc_endpoint: shared.rpc_endpoint.clone(),
        tags: shared.config.directory.tags.clone(),
        labels: shared.config.directory.labels.clone(),
        vos: served_vos(shared),
        services: services(shared),
        disk_path: shared.config.data_dir.clone(),
        version,
    };
    // A resource node offers jobs what its `[jobs]` section says, which may
    // differ from the hardware (oversubscription, or a share kept back).
    let mut descriptor = probe_static(base)?;
    if let Some(side) = shared.jobs.resource.as_ref() {
        descriptor.cores = side.capacity.cores;
        descriptor.memory_bytes = side.capacity.memory_bytes;
    }
    Ok(descriptor)
}

/// Whether `published` still says what the node would publish now (the
/// hardware aside, which does not change while running).
pub fn still_current(shared: &NodeShared, published: &StaticDescriptor) -> bool {
    published.vos == served_vos(shared)
        && published.services == services(shared)
        && Some(published.site.clone()) == shared.site_name()
}
