//! The policies of every level, checked when they are set and evaluated
//! together for each request. Which levels apply to a request, and whose
//! permits count, is documented on [`PolicyStore`] because it is part of
//! the contract with administrators.
//!
//! Everything costly (parsing, validation, id assignment, splitting by
//! action) happens in [`PolicyStore::set`]; a request costs building a
//! handful of entities plus one Cedar evaluation per applying level, over
//! only that level's policies for the requested action.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use cedar_policy::{
    ActionConstraint, Authorizer, Effect, Policy, PolicyId, PolicySet, ValidationMode, Validator,
};
use serde::Serialize;

use crate::decision::{self, Decision, LevelAnswer};
use crate::diag::describe;
use crate::error::{PolicyError, Result};
use crate::level::Level;
use crate::request::{self, AuthzRequest};
use crate::schema::{self, Action, CedarNames};

/// Longest policy text accepted for one level.
pub const POLICY_TEXT_MAX_BYTES: usize = 256 * 1024;
/// Most policies (permit or forbid statements) accepted for one level.
pub const POLICIES_PER_LEVEL_MAX: usize = 1024;

/// What was accepted for a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySummary {
    pub level: Level,
    /// Ids given to the policies, in text order: `LEVEL#N` for the N-th
    /// statement (from 0), or `LEVEL#NAME` for one annotated `@id("NAME")`.
    pub ids: Vec<String>,
    pub permits: usize,
    pub forbids: usize,
    /// Cedar validator warnings (for example a policy that can never
    /// apply); they do not stop a policy from being accepted.
    pub warnings: Vec<String>,
}

/// The accepted text of a level and what was built from it.
struct LevelPolicies {
    text: String,
    /// The level's policies split by the action their scope admits, indexed
    /// by `Action::index`. A policy whose scope excludes the action is false
    /// before its condition runs, so leaving it out changes neither
    /// decisions nor errors; it only saves evaluating it. The split is exact
    /// because the schema has no action groups (a unit test checks that).
    by_action: Vec<PolicySet>,
    summary: PolicySummary,
}

impl LevelPolicies {
    fn for_action(&self, action: Action) -> &PolicySet {
        &self.by_action[action.index()]
    }
}

/// Policies of all levels on one node.
///
/// Which levels apply to a request:
///
/// | level | applies when | its permits count | its forbids count |
/// |---|---|---|---|
/// | VO `v` | the principal acts for `v` | if the resource belongs to `v` or to no VO (nodes) | always |
/// | site `s` | the resource lives at `s` (nodes, jobs) | always | always |
/// | user `u` | the resource is owned by `u` (jobs) | always | refused at `set` |
///
/// So a VO's policy never touches another VO's users nor grants on another
/// VO's resources, a site can forbid anything on its resources (a site
/// always overrides a VO), and a user can only share what they own: their
/// policy is consulted for nothing else and may not forbid, so it cannot
/// take away what their VO or site granted. Within that, Cedar's rules
/// hold: default deny, a satisfied forbid wins. Any evaluation error is a
/// deny (see [`Decision`]).
///
/// Reads (`authorize`, `show`) take `&self` and the store is `Send + Sync`,
/// so a node can share it behind a lock or swap in a new copy when a policy
/// changes.
pub struct PolicyStore {
    validator: Validator,
    names: CedarNames,
    authorizer: Authorizer,
    // One map per kind so a request looks up its levels by `&str` without
    // building a `Level`.
    vo: HashMap<String, LevelPolicies>,
    site: HashMap<String, LevelPolicies>,
    user: HashMap<String, LevelPolicies>,
    /// Decisions already taken. A decision is a pure function of the
    /// request (whose context carries the time) and the policies, so a
    /// repeated request (a burst of submissions, every launch of a user's
    /// jobs) is answered from here until a policy changes; building the
    /// Cedar request and its entities is most of a decision's cost.
    decided: Mutex<HashMap<AuthzRequest, Decision>>,
}

/// Decisions kept at most; the memo starts over when full.
const DECIDED_MAX: usize = 4096;

impl Default for PolicyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyStore {
    /// An empty store: every request is denied until policies are set.
    pub fn new() -> Self {
        PolicyStore {
            validator: Validator::new(schema::load()),
            names: CedarNames::new(),
            authorizer: Authorizer::new(),
            vo: HashMap::new(),
            site: HashMap::new(),
            user: HashMap::new(),
            decided: Mutex::new(HashMap::new()),
        }
    }

    /// Parses and validates `text` for `level` without storing it: what
    /// `xos policy test` runs before anything is changed.
    pub fn check(&self, level: &Level, text: &str) -> Result<PolicySummary> {
        self.build(level, text).map(|built| built.summary)
    }

    /// Replaces the policy of `level` with `text` once it parses, fits the
    /// schema in strict mode and respects the level's rules. On refusal the
    /// previous policy stays in force.
    pub fn set(&mut self, level: Level, text: &str) -> Result<PolicySummary> {
        let built = self.build(&level, text)?;
        let summary = built.summary.clone();
        tracing::info!(
            level = %level,
            permits = summary.permits,
            forbids = summary.forbids,
            "policy set"
        );
        self.map_mut(&level).insert(level.name().to_string(), built);
        Ok(summary)
    }

    /// The text of `level` exactly as it was set.
    pub fn show(&self, level: &Level) -> Option<&str> {
        self.get(level).map(|p| p.text.as_str())
    }

    /// The summary of what is in force for `level`.
    pub fn summary(&self, level: &Level) -> Option<&PolicySummary> {
        self.get(level).map(|p| &p.summary)
    }

    /// Removes the policy of `level`; returns whether there was one.
    pub fn remove(&mut self, level: &Level) -> bool {
        let removed = self.map_mut(level).remove(level.name()).is_some();
        if removed {
            tracing::info!(level = %level, "policy removed");
        }
        removed
    }

    /// Every level that has a policy, sorted.
    pub fn levels(&self) -> Vec<Level> {
        let mut levels: Vec<Level> = (self.vo.keys().cloned().map(Level::Vo))
            .chain(self.site.keys().cloned().map(Level::Site))
            .chain(self.user.keys().cloned().map(Level::User))
            .collect();
        levels.sort();
        levels
    }

    /// Decides a request. Never fails: anything that prevents a clean
    /// evaluation is a deny with the reason in `errors`, logged as a
    /// warning.
    pub fn authorize(&self, req: &AuthzRequest) -> Decision {
        let decision = self.decide_once(req);
        if !decision.errors.is_empty() {
            tracing::warn!(
                principal = %req.principal.subject,
                action = %req.action,
                resource = %req.resource.describe(),
                errors = ?decision.errors,
                "policy evaluation failed; request denied"
            );
        } else {
            tracing::debug!(
                principal = %req.principal.subject,
                action = %req.action,
                resource = %req.resource.describe(),
                allowed = decision.allowed,
                reasons = ?decision.reasons,
                ignored = ?decision.ignored,
                "policy decision"
            );
        }
        decision
    }

    fn decide_once(&self, req: &AuthzRequest) -> Decision {
        if let Ok(decided) = self.decided.lock()
            && let Some(d) = decided.get(req)
        {
            return d.clone();
        }
        let decision = self.decide(req);
        if let Ok(mut decided) = self.decided.lock() {
            if decided.len() >= DECIDED_MAX {
                decided.clear();
            }
            decided.insert(req.clone(), decision.clone());
        }
        decision
    }

    fn decide(&self, req: &AuthzRequest) -> Decision {
        let resource = &req.resource;
        let vo = self.vo.get(&req.principal.vo).map(|p| {
            let may_grant = resource.vo().is_none_or(|v| v == req.principal.vo);
            (p, may_grant)
        });
        let site = resource
            .site()
            .and_then(|s| self.site.get(s))
            .map(|p| (p, true));
        let user = resource
            .owner()
            .and_then(|o| self.user.get(o))
            .map(|p| (p, true));
        // A level with no policy for this action cannot allow, forbid or
        // err; skipping it also skips building the request when none has.
        let levels: Vec<(&LevelPolicies, bool)> = [vo, site, user]
            .into_iter()
            .flatten()
            .filter(|(p, _)| p.for_action(req.action).policies().next().is_some())
            .collect();
        if levels.is_empty() {
            return Decision::default();
        }
        let (cedar_req, entities) =
            match request::to_cedar(req, &self.names, self.validator.schema()) {
                Ok(built) => built,
                Err(e) => return decision::unanswerable(e),
            };
        decision::combine(levels.into_iter().map(|(policies, may_grant)| LevelAnswer {
            response: self.authorizer.is_authorized(
                &cedar_req,
                policies.for_action(req.action),
                &entities,
            ),
            may_grant,
        }))
    }

    fn get(&self, level: &Level) -> Option<&LevelPolicies> {
        match level {
            Level::Vo(n) => self.vo.get(n),
            Level::Site(n) => self.site.get(n),
            Level::User(n) => self.user.get(n),
        }
    }

    /// The policies of `level`'s kind, to change: every decision taken so
    /// far may change with them.
    fn map_mut(&mut self, level: &Level) -> &mut HashMap<String, LevelPolicies> {
        if let Ok(decided) = self.decided.get_mut() {
            decided.clear();
        }
        match level {
            Level::Vo(_) => &mut self.vo,
            Level::Site(_) => &mut self.site,
            Level::User(_) => &mut self.user,
        }
    }

    /// Parses, renames and validates; the only place policy text becomes a
    /// `PolicySet`.
    fn build(&self, level: &Level, text: &str) -> Result<LevelPolicies> {
        level.check()?;
        if text.len() > POLICY_TEXT_MAX_BYTES {
            return Err(PolicyError::TooLarge {
                level: level.clone(),
                bytes: text.len(),
                max: POLICY_TEXT_MAX_BYTES,
            });
        }
        let parsed: PolicySet =
            text.parse()
                .map_err(|e: cedar_policy::ParseErrors| PolicyError::Syntax {
                    level: level.clone(),
                    diagnostics: join(e.iter().map(|d| describe(d, text))),
                })?;
        if let Some(template) = parsed.templates().next() {
            return Err(PolicyError::Template {
                level: level.clone(),
                id: template.id().to_string(),
            });
        }
        let count = parsed.policies().count();
        if count > POLICIES_PER_LEVEL_MAX {
            return Err(PolicyError::TooMany {
                level: level.clone(),
                count,
                max: POLICIES_PER_LEVEL_MAX,
            });
        }

        // Cedar numbers policies policy0, policy1, ... in every text; give
        // them ids that are unique across levels and say whose they are.
        // Cedar does not promise to iterate in text order, so sort by its
        // numbering to number them as the author wrote them.
        let mut policies: Vec<_> = parsed.policies().collect();
        policies.sort_by_key(|p| cedar_index(p.id().as_ref()));
        let mut set = PolicySet::new();
        let mut by_action = vec![PolicySet::new(); Action::ALL.len()];
        let mut ids = Vec::with_capacity(count);
        let mut seen = HashSet::new();
        let (mut permits, mut forbids) = (0, 0);
        for (index, policy) in policies.into_iter().enumerate() {
            let local = policy
                .annotation("id")
                .map_or_else(|| index.to_string(), str::to_string);
            let id = level.policy_id(&local);
            if !seen.insert(id.clone()) {
                return Err(PolicyError::DuplicateId {
                    level: level.clone(),
                    id: local,
                });
            }
            match policy.effect() {
                Effect::Permit => permits += 1,
                Effect::Forbid => {
                    if let Level::User(_) = level {
                        return Err(PolicyError::UserForbid {
                            level: level.clone(),
                            id,
                        });
                    }
                    forbids += 1;
                }
            }
            let policy = policy.new_id(PolicyId::new(&id));
            let admitted = Action::ALL.into_iter().filter(|&a| self.admits(&policy, a));
            // Ids are unique (checked above), so adding cannot fail; map the
            // error anyway rather than trust that.
            let duplicate = |_| PolicyError::DuplicateId {
                level: level.clone(),
                id: local.clone(),
            };
            for action in admitted {
                by_action[action.index()]
                    .add(policy.clone())
                    .map_err(duplicate)?;
            }
            set.add(policy).map_err(duplicate)?;
            ids.push(id);
        }

        let result = self.validator.validate(&set, ValidationMode::Strict);
        if !result.validation_passed() {
            return Err(PolicyError::Invalid {
                level: level.clone(),
                diagnostics: join(result.validation_errors().map(|d| describe(d, text))),
            });
        }
        let warnings = result
            .validation_warnings()
            .map(|d| describe(d, text))
            .collect();
        Ok(LevelPolicies {
            text: text.to_string(),
            by_action,
            summary: PolicySummary {
                level: level.clone(),
                ids,
                permits,
                forbids,
                warnings,
            },
        })
    }
}

impl PolicyStore {
    /// Whether the action scope of `policy` admits `action`.
    fn admits(&self, policy: &Policy, action: Action) -> bool {
        let uid = self.names.action(action);
        match policy.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => &a == uid,
            ActionConstraint::In(list) => list.contains(uid),
        }
    }
}

/// Position of a policy Cedar numbered `policyN` while parsing a text.
fn cedar_index(id: &str) -> usize {
    id.strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// One diagnostic per line block, in Cedar's order, without repeats.
/// Cedar may report one mistake once per action it could apply to; beyond
/// this many the rest is counted, not printed.
const DIAGNOSTICS_SHOWN_MAX: usize = 10;

/// Cedar's diagnostics in its order, without repeats, at most
/// `DIAGNOSTICS_SHOWN_MAX` of them.
fn join(lines: impl Iterator<Item = String>) -> String {
    let mut seen = HashSet::new();
    let unique: Vec<String> = lines.filter(|l| seen.insert(l.clone())).collect();
    let mut out = unique
        .iter()
        .take(DIAGNOSTICS_SHOWN_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if unique.len() > DIAGNOSTICS_SHOWN_MAX {
        let more = unique.len() - DIAGNOSTICS_SHOWN_MAX;
        out.push_str(&format!("\n... and {more} more"));
    }
    out
}
