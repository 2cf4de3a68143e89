//! The claims of a credential, after the WLCG Common JWT Profile 1.0.

use serde::{Deserialize, Serialize};

pub const WLCG_VERSION: &str = "1.0";

/// Audiences: `xtreem` means any site of the grid; `xtreem:SITE` one site.
pub struct Audience;

impl Audience {
    pub const ANY_SITE: &'static str = "xtreem";

    pub fn site(site: &str) -> String {
        format!("xtreem:{site}")
    }
}

/// One actor in a delegation chain (RFC 8693 `act`): who acts on behalf of
/// the subject, and, nested, on whose behalf that actor got it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// Actors from the most recent to the first.
    pub fn chain(&self) -> Vec<String> {
        let mut out = vec![self.sub.clone()];
        let mut next = self.act.as_deref();
        while let Some(a) = next {
            out.push(a.sub.clone());
            next = a.act.as_deref();
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(rename = "wlcg.ver")]
    pub wlcg_ver: String,
    #[serde(rename = "wlcg.groups", default)]
    pub groups: Vec<String>,
    /// Space-separated, WLCG style (`compute.create storage.read:/ ...`).
    #[serde(default)]
    pub scope: String,
    /// `GROUP:ROLE` pairs, e.g. `/demo:admin`.
    #[serde(
        rename = "xtreem.roles",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

fn new_jti() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Claims {
    pub fn new(iss: &str, sub: &str, aud: &str, now: u64, ttl_secs: u64) -> Claims {
        Claims {
            iss: iss.to_owned(),
            sub: sub.to_owned(),
            aud: vec![aud.to_owned()],
            exp: now + ttl_secs,
            nbf: now,
            iat: now,
            jti: new_jti(),
            wlcg_ver: WLCG_VERSION.to_owned(),
            groups: Vec::new(),
            scope: String::new(),
            roles: Vec::new(),
            act: None,
        }
    }

    pub fn with_groups(mut self, groups: Vec<String>) -> Claims {
        self.groups = groups;
        self
    }

    pub fn with_scope(mut self, scope: &str) -> Claims {
        self.scope = scope.to_owned();
        self
    }

    pub fn with_roles(mut self, roles: Vec<String>) -> Claims {
        self.roles = roles;
        self
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_whitespace()
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The VO of the credential: the first segment of its groups, which
    /// must all agree, else `None`.
    pub fn vo(&self) -> Option<&str> {
        let mut vo = None;
        for group in &self.groups {
            let first = group.trim_start_matches('/').split('/').next()?;
            match vo {
                None => vo = Some(first),
                Some(v) if v == first => {}
                Some(_) => return None,
            }
        }
        vo
    }

    /// Does the credential carry `role` on `group` or an ancestor of it?
    pub fn has_role_on(&self, group: &str, role: &str) -> bool {
        self.roles.iter().any(|r| match r.rsplit_once(':') {
            Some((g, rl)) => rl == role && (group == g || group.starts_with(&format!("{g}/"))),
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vo_is_the_common_first_group_segment() {
        let c = Claims::new("i", "s", "xtreem", 0, 1)
            .with_groups(vec!["/demo".into(), "/demo/analysis".into()]);
        assert_eq!(c.vo(), Some("demo"));
        let mixed = c.clone().with_groups(vec!["/demo".into(), "/other".into()]);
        assert_eq!(mixed.vo(), None);
    }

    #[test]
    fn roles_apply_to_subgroups_not_to_parents() {
        let c =
            Claims::new("i", "s", "xtreem", 0, 1).with_roles(vec!["/demo/analysis:admin".into()]);
        assert!(c.has_role_on("/demo/analysis/sub", "admin"));
        assert!(!c.has_role_on("/demo", "admin"));
        assert!(!c.has_role_on("/demo/analysis2", "admin"));
    }

    #[test]
    fn claims_serialize_with_wlcg_names() {
        let json = serde_json::to_value(Claims::new("i", "s", "xtreem", 5, 1)).unwrap();
        assert_eq!(json["wlcg.ver"], "1.0");
        assert!(json.get("wlcg.groups").is_some());
        assert!(json.get("act").is_none());
    }
}
