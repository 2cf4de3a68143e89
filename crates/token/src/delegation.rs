//! Delegation (token exchange, after RFC 8693): a credential is exchanged
//! for a narrower one that an actor (a node, a job) may present on the
//! holder's behalf.

use crate::{Actor, Audience, Claims, TokenError};

/// What the holder asks for.
#[derive(Debug, Clone)]
pub struct DelegationRequest {
    /// Scopes wanted; each must be in the original credential.
    pub scopes: Vec<String>,
    pub ttl_secs: u64,
    /// `None` keeps the original audience.
    pub audience: Option<String>,
    /// Who will act with the new credential.
    pub actor: String,
}

/// The claims of the delegated credential, or why not. Never a wider scope,
/// never a later expiry, never an audience the original did not allow; the
/// actor chain records who acts for whom.
pub fn delegate(
    parent: &Claims,
    request: &DelegationRequest,
    now: u64,
) -> Result<Claims, TokenError> {
    let refuse = |why: String| Err(TokenError::Delegation(why));
    if request.scopes.is_empty() {
        return refuse("ask for at least one scope".into());
    }
    for scope in &request.scopes {
        if !parent.has_scope(scope) {
            return refuse(format!(
                "scope {scope} is not in the original credential (it has: {}); delegation never widens a scope",
                parent.scope
            ));
        }
    }
    if request.ttl_secs == 0 {
        return refuse("ttl must be positive".into());
    }
    let exp = now.saturating_add(request.ttl_secs);
    if exp > parent.exp {
        return refuse(format!(
            "the delegated credential would outlive the original by {} s; ask for at most {} s",
            exp - parent.exp,
            parent.exp.saturating_sub(now)
        ));
    }
    if request.actor.is_empty() || request.actor.len() > 256 {
        return refuse("name the actor (1 to 256 characters)".into());
    }
    let aud = match &request.audience {
        None => parent.aud.clone(),
        Some(wanted) => {
            let allowed = parent.aud.iter().any(|a| {
                a == wanted
                    || (a == Audience::ANY_SITE
                        && wanted.starts_with("xtreem:")
                        && wanted.len() > "xtreem:".len())
            });
            if !allowed {
                return refuse(format!(
                    "audience {wanted} is not allowed by the original credential (audience {:?})",
                    parent.aud
                ));
            }
            vec![wanted.clone()]
        }
    };
    let mut child = Claims::new(
        &parent.iss,
        &parent.sub,
        Audience::ANY_SITE,
        now,
        request.ttl_secs,
    );
    child.aud = aud;
    child.groups = parent.groups.clone();
    child.roles = parent.roles.clone();
    child.scope = request.scopes.join(" ");
    child.act = Some(Actor {
        sub: request.actor.clone(),
        act: parent.act.clone().map(Box::new),
    });
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> Claims {
        Claims::new(
            "xtreem://lab/vo/demo",
            "alice",
            Audience::ANY_SITE,
            1000,
            3600,
        )
        .with_groups(vec!["/demo".into()])
        .with_scope("compute.create compute.read storage.read:/")
    }

    fn ask(scopes: &[&str], ttl_secs: u64, audience: Option<&str>) -> DelegationRequest {
        DelegationRequest {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ttl_secs,
            audience: audience.map(str::to_owned),
            actor: "node-2".into(),
        }
    }

    #[test]
    fn a_narrower_shorter_credential_is_granted_with_the_actor_recorded() {
        let child = delegate(
            &parent(),
            &ask(&["compute.read"], 600, Some("xtreem:lab")),
            1100,
        )
        .unwrap();
        assert_eq!(child.scope, "compute.read");
        assert_eq!(child.exp, 1700);
        assert_eq!(child.aud, ["xtreem:lab"]);
        assert_eq!(child.sub, "alice");
        assert_eq!(child.act.as_ref().unwrap().chain(), ["node-2"]);
        let grandchild = delegate(
            &child,
            &DelegationRequest {
                actor: "job-7".into(),
                ..ask(&["compute.read"], 60, None)
            },
            1200,
        )
        .unwrap();
        assert_eq!(grandchild.act.unwrap().chain(), ["job-7", "node-2"]);
    }

    #[test]
    fn a_wider_scope_is_refused() {
        let err = delegate(
            &parent(),
            &ask(&["compute.read", "vo.admin"], 60, None),
            1100,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("vo.admin is not in the original"),
            "{err}"
        );
    }

    #[test]
    fn a_longer_life_is_refused() {
        let err = delegate(&parent(), &ask(&["compute.read"], 4000, None), 1100).unwrap_err();
        assert!(err.to_string().contains("outlive the original"), "{err}");
    }

    #[test]
    fn another_audience_is_refused() {
        let narrowed = delegate(
            &parent(),
            &ask(&["compute.read"], 60, Some("xtreem:lab")),
            1100,
        )
        .unwrap();
        let err = delegate(
            &narrowed,
            &ask(&["compute.read"], 30, Some("xtreem:other")),
            1110,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("audience xtreem:other is not allowed"),
            "{err}"
        );
        let err = delegate(
            &parent(),
            &ask(&["compute.read"], 30, Some("https://elsewhere")),
            1110,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{err}");
    }
}
