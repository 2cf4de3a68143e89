//! The typed question put to the policy engine, and its translation into a
//! Cedar request plus the few entities Cedar needs to answer it. Callers
//! state facts (who, what, on which resource); this module owns how those
//! facts look to a policy author (see `schema.cedarschema`).

use std::collections::{HashMap, HashSet};

use cedar_policy::{Context, Entities, Entity, EntityUid, Request, RestrictedExpression, Schema};
use serde::{Deserialize, Serialize};

use crate::schema::{Action, CedarNames};

/// Facts about the user making a request, as established by authentication
/// and the VO membership service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserFacts {
    /// Certificate subject or user name; the `Xtreem::User` entity id.
    pub subject: String,
    /// The VO the user acts for; its VO policy applies. Empty for none.
    pub vo: String,
    /// Full group paths such as `/demo/analysis`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Roles within the VO, such as `admin`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The user's home site.
    #[serde(default)]
    pub site: String,
}

/// What the request is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// A machine of a site; `name` is the `Xtreem::Node` id.
    Node {
        name: String,
        site: String,
        #[serde(default)]
        tags: Vec<String>,
    },
    /// A job: `owner` is its submitter's subject, `site` where it runs.
    Job {
        id: String,
        owner: String,
        vo: String,
        site: String,
    },
    /// A virtual organisation.
    Vo { name: String },
}

impl Resource {
    /// The site whose policy applies to this resource, if it lives at one.
    pub fn site(&self) -> Option<&str> {
        match self {
            Resource::Node { site, .. } | Resource::Job { site, .. } => Some(site),
            Resource::Vo { .. } => None,
        }
    }

    /// The VO the resource belongs to, if any. A VO's policy may grant
    /// access only to resources of that VO or of none (nodes).
    pub fn vo(&self) -> Option<&str> {
        match self {
            Resource::Job { vo, .. } => Some(vo),
            Resource::Vo { name } => Some(name),
            Resource::Node { .. } => None,
        }
    }

    /// The subject of the user who owns the resource, if one does; only
    /// that user's own policy may share it.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Resource::Job { owner, .. } => Some(owner),
            Resource::Node { .. } | Resource::Vo { .. } => None,
        }
    }

    /// Short text for logs: `job 42`, `node n1`, `vo demo`.
    pub fn describe(&self) -> String {
        match self {
            Resource::Node { name, .. } => format!("node {name}"),
            Resource::Job { id, .. } => format!("job {id}"),
            Resource::Vo { name } => format!("vo {name}"),
        }
    }
}

/// Facts about the moment of the request, available to policies as
/// `context.time_unix` and `context.cores`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestContext {
    /// Seconds since the Unix epoch.
    pub time_unix: i64,
    /// Cores requested; 0 for actions that request none.
    #[serde(default)]
    pub cores: i64,
}

/// One authorization question: may `principal` do `action` on `resource`?
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthzRequest {
    pub principal: UserFacts,
    pub action: Action,
    pub resource: Resource,
    #[serde(default)]
    pub context: RequestContext,
}

/// Builds the Cedar request and the entities it refers to. The request is
/// checked against the schema (the action must apply to the resource kind,
/// the context must have the declared types); a mismatch is returned as text
/// and becomes a deny.
///
/// The entities are not checked against the schema on each request: that
/// check and the action entities it adds cost about a fifth of a decision,
/// the entities are built here from typed fields so they conform by
/// construction (the unit tests check them with the schema), and the schema
/// has no action groups, so `action in [...]` needs no action entities.
pub(crate) fn to_cedar(
    req: &AuthzRequest,
    names: &CedarNames,
    schema: &Schema,
) -> Result<(Request, Entities), String> {
    let (request, entities) = to_cedar_unchecked(req, names, schema)?;
    let entities =
        Entities::from_entities(entities, None).map_err(|e| format!("request entities: {e}"))?;
    Ok((request, entities))
}

/// The request, checked against the schema, and the entities, unchecked.
fn to_cedar_unchecked(
    req: &AuthzRequest,
    names: &CedarNames,
    schema: &Schema,
) -> Result<(Request, Vec<Entity>), String> {
    let mut entities = EntityBuilder::default();
    let user = &req.principal;
    let principal = names.uid(&names.user, &user.subject);

    let mut user_parents = Vec::with_capacity(user.groups.len() + 1);
    if !user.vo.is_empty() {
        user_parents.push(entities.vo(names, &user.vo));
    }
    for group in &user.groups {
        user_parents.push(entities.group(names, group));
    }
    let user_attrs = [
        ("subject", string(&user.subject)),
        ("vo", string(&user.vo)),
        ("groups", strings(&user.groups)),
        ("roles", strings(&user.roles)),
        ("site", string(&user.site)),
    ];
    entities.add(principal.clone(), user_attrs, user_parents)?;

    let resource = match &req.resource {
        Resource::Node { name, site, tags } => {
            let uid = names.uid(&names.node, name);
            let parent = entities.site(names, site);
            let attrs = [("site", string(site)), ("tags", strings(tags))];
            entities.add(uid.clone(), attrs, [parent])?;
            uid
        }
        Resource::Job {
            id,
            owner,
            vo,
            site,
        } => {
            let uid = names.uid(&names.job, id);
            let parent = entities.vo(names, vo);
            let attrs = [
                ("owner", string(owner)),
                ("vo", string(vo)),
                ("site", string(site)),
            ];
            entities.add(uid.clone(), attrs, [parent])?;
            uid
        }
        Resource::Vo { name } => entities.vo(names, name),
    };

    let context = Context::from_pairs([
        (
            "time_unix".to_string(),
            RestrictedExpression::new_long(req.context.time_unix),
        ),
        (
            "cores".to_string(),
            RestrictedExpression::new_long(req.context.cores),
        ),
    ])
    .map_err(|e| format!("request context: {e}"))?;
    let request = Request::new(
        principal,
        names.action(req.action).clone(),
        resource,
        context,
        Some(schema),
    )
    .map_err(|e| format!("request does not fit the schema: {e}"))?;
    Ok((request, entities.finish()))
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_string())
}

fn strings(items: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(items.iter().map(|s| string(s)))
}

/// Collects entities without duplicates: a VO or group may be reached from
/// the user, the resource and the group hierarchy at once.
#[derive(Default)]
struct EntityBuilder {
    done: Vec<Entity>,
    vos: HashSet<String>,
    sites: HashSet<String>,
    /// Group path to its parent (another group or the VO), filled lazily.
    groups: HashMap<String, Option<EntityUid>>,
}

impl EntityBuilder {
    fn add<const N: usize>(
        &mut self,
        uid: EntityUid,
        attrs: [(&str, RestrictedExpression); N],
        parents: impl IntoIterator<Item = EntityUid>,
    ) -> Result<(), String> {
        let attrs = attrs.into_iter().map(|(k, v)| (k.to_string(), v));
        let entity = Entity::new_with_tags(uid, attrs, parents, [])
            .map_err(|e| format!("request entity: {e}"))?;
        self.done.push(entity);
        Ok(())
    }

    fn vo(&mut self, names: &CedarNames, vo: &str) -> EntityUid {
        let uid = names.uid(&names.vo, vo);
        if self.vos.insert(vo.to_string()) {
            self.done
                .push(Entity::new_no_attrs(uid.clone(), HashSet::new()));
        }
        uid
    }

    fn site(&mut self, names: &CedarNames, site: &str) -> EntityUid {
        let uid = names.uid(&names.site, site);
        if self.sites.insert(site.to_string()) {
            self.done
                .push(Entity::new_no_attrs(uid.clone(), HashSet::new()));
        }
        uid
    }

    /// A group and its ancestors: `/demo/analysis` is in `/demo`, which is
    /// in the VO `demo`, so `principal in Xtreem::Vo::"demo"` holds for
    /// members of any of its groups. A name that is not a path is a group
    /// without parents.
    fn group(&mut self, names: &CedarNames, path: &str) -> EntityUid {
        let uid = names.uid(&names.group, path);
        if self.groups.contains_key(path) {
            return uid;
        }
        let trimmed = path.trim_end_matches('/');
        let parent = match trimmed.rfind('/') {
            Some(0) if trimmed.len() > 1 => Some(self.vo(names, &trimmed[1..])),
            Some(i) if i > 0 => Some(self.group(names, &trimmed[..i])),
            _ => None,
        };
        self.groups.insert(path.to_string(), parent.clone());
        self.done.push(Entity::new_no_attrs(
            uid.clone(),
            parent.into_iter().collect(),
        ));
        uid
    }

    fn finish(self) -> Vec<Entity> {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    #[test]
    fn builds_group_hierarchy_up_to_the_vo() {
        let names = CedarNames::new();
        let schema = schema::load();
        let req = AuthzRequest {
            principal: UserFacts {
                subject: "alice".into(),
                vo: "demo".into(),
                groups: vec!["/demo/analysis/x".into(), "/demo".into(), "flat".into()],
                roles: vec![],
                site: "lab".into(),
            },
            action: Action::ReadVo,
            resource: Resource::Vo {
                name: "demo".into(),
            },
            context: RequestContext::default(),
        };
        let (_, entities) = to_cedar(&req, &names, &schema).unwrap();
        let alice = names.uid(&names.user, "alice");
        let vo = names.uid(&names.vo, "demo");
        let mid = names.uid(&names.group, "/demo/analysis");
        assert!(entities.is_ancestor_of(&vo, &alice));
        assert!(entities.is_ancestor_of(&mid, &alice));
        assert!(entities.is_ancestor_of(&vo, &mid));
        assert!(entities.get(&names.uid(&names.group, "flat")).is_some());
    }

    /// What `to_cedar` skips per request: every resource kind, with groups
    /// and a VO resource shared with the user's VO, conforms to the schema.
    #[test]
    fn built_entities_conform_to_the_schema() {
        let names = CedarNames::new();
        let schema = schema::load();
        assert_eq!(
            schema.action_groups().count(),
            0,
            "action groups need action entities"
        );
        let user = UserFacts {
            subject: "alice".into(),
            vo: "demo".into(),
            groups: vec!["/demo/a/b".into(), "/other".into(), "flat".into()],
            roles: vec!["admin".into()],
            site: "lab".into(),
        };
        let resources = [
            (
                Action::UseNode,
                Resource::Node {
                    name: "n".into(),
                    site: "lab".into(),
                    tags: vec!["gpu".into()],
                },
            ),
            (
                Action::ReadJob,
                Resource::Job {
                    id: "1".into(),
                    owner: "bob".into(),
                    vo: "demo".into(),
                    site: "lab".into(),
                },
            ),
            (
                Action::ManageVo,
                Resource::Vo {
                    name: "demo".into(),
                },
            ),
            (
                Action::ReadVo,
                Resource::Vo {
                    name: "other".into(),
                },
            ),
        ];
        for (action, resource) in resources {
            let req = AuthzRequest {
                principal: user.clone(),
                action,
                resource,
                context: RequestContext::default(),
            };
            let (_, entities) = to_cedar_unchecked(&req, &names, &schema).unwrap();
            if let Err(e) = Entities::from_entities(entities, Some(&schema)) {
                panic!("{req:?}: {e}");
            }
        }
    }

    #[test]
    fn requests_read_from_json() {
        let json = r#"{
            "principal": {"subject": "alice", "vo": "demo"},
            "action": "read_job",
            "resource": {"kind": "job", "id": "7", "owner": "alice", "vo": "demo", "site": "lab"}
        }"#;
        let req: AuthzRequest = serde_json::from_str(json).unwrap();
        assert_eq!(req.action, Action::ReadJob);
        assert_eq!(req.resource.owner(), Some("alice"));
    }
}
