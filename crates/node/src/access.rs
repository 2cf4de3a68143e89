//! Decisions about users shared by the services: the facts a policy sees
//! about a user, and the local account a resource node gives a user.

use xtreem_accounts::{Mapping, VoIdentity};
use xtreem_audit::{AuditEvent, Decision as AuditDecision};
use xtreem_policy::{Action, AuthzRequest, RequestContext, Resource, UserFacts};
use xtreem_token::Claims;
use xtreem_util::roles::Role;
use xtreem_util::time::unix_now;

use crate::daemon::NodeShared;

/// What the policy sees of a credential's holder acting for `vo`.
pub fn user_facts(shared: &NodeShared, claims: &Claims, vo: &str) -> UserFacts {
    UserFacts {
        subject: claims.sub.clone(),
        vo: vo.to_owned(),
        groups: claims.groups.clone(),
        roles: claims
            .roles
            .iter()
            .filter_map(|r| r.rsplit_once(':').map(|(_, role)| role.to_owned()))
            .collect(),
        site: shared.site_name().unwrap_or_default(),
    }
}

/// This node as a policy resource.
pub fn this_node(shared: &NodeShared) -> Resource {
    Resource::Node {
        name: shared.config.name.to_string(),
        site: shared.site_name().unwrap_or_default(),
        tags: shared.config.directory.tags.iter().cloned().collect(),
    }
}

/// Whether the credential holds the admin role on the root group of `vo`.
pub fn is_vo_admin(claims: &Claims, vo: &str) -> bool {
    let root_admin = format!("/{vo}:admin");
    claims.roles.contains(&root_admin)
}

/// Asks the policy whether the user may do `action` on `resource`. An
/// evaluation error is a deny; a deny is audited. The error text says why.
pub fn authorize(
    shared: &NodeShared,
    claims: &Claims,
    vo: &str,
    action: Action,
    resource: Resource,
    cores: u32,
) -> Result<(), String> {
    let trusted = shared.trust.current();
    let target = match &resource {
        Resource::Node { name, .. } => name.clone(),
        Resource::Job { id, .. } => id.clone(),
        other => format!("{other:?}"),
    };
    let decision = trusted.policy.authorize(&AuthzRequest {
        principal: user_facts(shared, claims, vo),
        action,
        resource,
        context: RequestContext {
            time_unix: i64::try_from(unix_now()).unwrap_or(i64::MAX),
            cores: i64::from(cores),
        },
    });
    if decision.allowed {
        return Ok(());
    }
    let why = if decision.errors.is_empty() {
        decision.reasons.join(", ")
    } else {
        decision.errors.join("; ")
    };
    let action_name = serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    shared.audit(
        AuditEvent::new(&claims.sub, &action_name, &target, AuditDecision::Deny)
            .with_detail(serde_json::json!({ "vo": vo, "why": why })),
    );
    Err(format!(
        "policy denies {action_name} on {target}{}",
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        }
    ))
}

/// The local account this node gives the credential's holder, if this is a
/// resource node serving the VO and policy lets the user use it. `cores` is
/// what the use asks for (0 for none), as the policy's context sees it.
pub fn local_account(
    shared: &NodeShared,
    claims: &Claims,
    vo: &str,
    cores: u32,
) -> Result<Option<Mapping>, String> {
    if !shared.config.has_role(Role::Resource) {
        return Ok(None);
    }
    let Some(mapper) = shared.accounts.as_ref() else {
        return Ok(None);
    };
    let trusted = shared.trust.current();
    let node = shared.config.name.as_str();
    match trusted.served(vo) {
        None => return Err(format!("site {} does not serve VO {vo}", trusted.doc.site)),
        Some(s) if !s.nodes.is_empty() && !s.nodes.iter().any(|n| n == node) => {
            return Err(format!("VO {vo} is not served on node {node}"));
        }
        Some(_) => {}
    }
    authorize(
        shared,
        claims,
        vo,
        Action::UseNode,
        this_node(shared),
        cores,
    )?;
    let identity = VoIdentity::new(claims.iss.clone(), claims.sub.clone(), vo.to_owned());
    mapper.map(&identity).map(Some).map_err(|e| e.to_string())
}
