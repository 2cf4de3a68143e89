//! The Cedar schema policies are validated against, the actions it defines,
//! and the Cedar names built from it once so that no request parses a type
//! name.

use std::fmt;
use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema};
use serde::{Deserialize, Serialize};

/// The schema in Cedar's human-readable syntax, as `xos policy schema` would
/// print it. Every entity type and action lives in namespace `Xtreem`.
pub const SCHEMA_TEXT: &str = include_str!("schema.cedarschema");

/// Something a user asks to do; each action applies to one kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Log in to a node.
    Login,
    /// Submit a job to a node.
    SubmitJob,
    /// Run on a node (for example as a job's placement).
    UseNode,
    /// See a job's state and output.
    ReadJob,
    /// Send a signal to a job (suspend, resume, kill).
    SignalJob,
    /// Change a VO's settings and policy.
    ManageVo,
    /// Add or remove VO members and groups.
    ManageMembers,
    /// See a VO's members and settings.
    ReadVo,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Login,
        Action::SubmitJob,
        Action::UseNode,
        Action::ReadJob,
        Action::SignalJob,
        Action::ManageVo,
        Action::ManageMembers,
        Action::ReadVo,
    ];

    /// The action's id in policies: `Xtreem::Action::"<this>"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::SubmitJob => "submit_job",
            Action::UseNode => "use_node",
            Action::ReadJob => "read_job",
            Action::SignalJob => "signal_job",
            Action::ManageVo => "manage_vo",
            Action::ManageMembers => "manage_members",
            Action::ReadVo => "read_vo",
        }
    }

    pub(crate) fn index(self) -> usize {
        // ALL lists the variants in declaration order.
        self as usize
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?}"))
    }
}

/// The parsed schema. The text is a constant of this crate, so failing to
/// parse it is a bug caught by the unit tests, never an operating error.
pub(crate) fn load() -> Schema {
    match Schema::from_cedarschema_str(SCHEMA_TEXT) {
        Ok((schema, _warnings)) => schema,
        Err(e) => panic!("built-in Cedar schema does not parse: {e}"),
    }
}

/// Entity type names and action uids, built once per store.
pub(crate) struct CedarNames {
    pub user: EntityTypeName,
    pub vo: EntityTypeName,
    pub group: EntityTypeName,
    pub site: EntityTypeName,
    pub node: EntityTypeName,
    pub job: EntityTypeName,
    actions: Vec<EntityUid>,
}

impl CedarNames {
    pub fn new() -> Self {
        let ty = |name: &str| match EntityTypeName::from_str(&format!("Xtreem::{name}")) {
            Ok(t) => t,
            Err(e) => panic!("built-in entity type name {name} does not parse: {e}"),
        };
        let action_type = ty("Action");
        let actions = Action::ALL
            .iter()
            .map(|a| {
                EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str()))
            })
            .collect();
        CedarNames {
            user: ty("User"),
            vo: ty("Vo"),
            group: ty("Group"),
            site: ty("Site"),
            node: ty("Node"),
            job: ty("Job"),
            actions,
        }
    }

    pub fn action(&self, action: Action) -> &EntityUid {
        &self.actions[action.index()]
    }

    pub fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parses_and_defines_every_action() {
        let schema = load();
        let names = CedarNames::new();
        let defined: Vec<String> = schema.actions().map(ToString::to_string).collect();
        for action in Action::ALL {
            let uid = names.action(action).to_string();
            assert!(defined.contains(&uid), "{uid} not in schema: {defined:?}");
            assert_eq!(names.action(action).id().unescaped(), action.as_str());
            assert_eq!(action.as_str().parse::<Action>().unwrap(), action);
        }
        assert_eq!(defined.len(), Action::ALL.len());
    }
}
