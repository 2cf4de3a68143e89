//! Combining the answers of the levels that apply to a request into one
//! decision. Each level is evaluated by Cedar on its own; together they
//! behave as Cedar would on their union (default deny, a satisfied forbid
//! wins over any permit) with two additions:
//!
//! - any evaluation error in any level is a deny, because the erroring policy
//!   might have been a forbid that should have won;
//! - a permit counts only if its level has authority over the resource (a VO
//!   cannot grant access to another VO's jobs); such permits are reported as
//!   `ignored`.

use cedar_policy::{AuthorizationError, Decision as CedarDecision, Response};
use serde::Serialize;

/// The answer to an [`AuthzRequest`](crate::AuthzRequest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[must_use]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Ids of the policies that determined the decision: the permits that
    /// allowed it, or the forbids (and erroring policies) that denied it.
    /// Empty for a default deny.
    pub reasons: Vec<String>,
    /// Evaluation errors, each naming its policy; any error means deny.
    pub errors: Vec<String>,
    /// Permits that matched but came from a level without authority over the
    /// resource, so they did not count.
    pub ignored: Vec<String>,
}

/// What one level said about a request.
pub(crate) struct LevelAnswer {
    pub response: Response,
    /// Whether this level's permits may allow this request.
    pub may_grant: bool,
}

/// Folds the levels' answers. An empty list is a default deny.
pub(crate) fn combine(answers: impl IntoIterator<Item = LevelAnswer>) -> Decision {
    let mut permits = Vec::new();
    let mut forbids = Vec::new();
    let mut errored = Vec::new();
    let mut errors = Vec::new();
    let mut ignored = Vec::new();
    for answer in answers {
        let diagnostics = answer.response.diagnostics();
        let reasons = diagnostics.reason().map(ToString::to_string);
        // Cedar's reasons are the satisfied permits when it allows and the
        // satisfied forbids when it denies.
        match answer.response.decision() {
            CedarDecision::Allow if answer.may_grant => permits.extend(reasons),
            CedarDecision::Allow => ignored.extend(reasons),
            CedarDecision::Deny => forbids.extend(reasons),
        }
        for error in diagnostics.errors() {
            let AuthorizationError::PolicyEvaluationError(e) = error;
            errored.push(e.policy_id().to_string());
            errors.push(error.to_string());
        }
    }
    let (allowed, mut reasons) = if !errors.is_empty() {
        forbids.extend(errored);
        (false, forbids)
    } else if !forbids.is_empty() {
        (false, forbids)
    } else if !permits.is_empty() {
        (true, permits)
    } else {
        (false, Vec::new())
    };
    // Cedar reports reasons as a set; sort so decisions compare and log
    // the same way every time.
    reasons.sort();
    reasons.dedup();
    errors.sort();
    ignored.sort();
    Decision {
        allowed,
        reasons,
        errors,
        ignored,
    }
}

/// A deny for a request that could not even be put to Cedar.
pub(crate) fn unanswerable(error: String) -> Decision {
    Decision {
        allowed: false,
        reasons: Vec::new(),
        errors: vec![error],
        ignored: Vec::new(),
    }
}
