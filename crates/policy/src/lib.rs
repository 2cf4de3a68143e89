//! Hierarchical authorization policy of Xtreem, evaluated with Cedar.
//!
//! This crate owns the policy language seen by administrators and users: the
//! Cedar schema (namespace `Xtreem`, see [`SCHEMA_TEXT`]), the three levels
//! at which policy is set ([`Level`]: a VO's, a site's, a user's), the checks
//! a policy passes before it is accepted, and how the levels combine into a
//! [`Decision`].
//!
//! Main types:
//!
//! - [`PolicyStore`]: `set` (parse, validate in strict mode, accept or refuse
//!   with Cedar's diagnostics), `show`, `remove`, `check`, and `authorize`.
//! - [`AuthzRequest`]: the question, as typed facts ([`UserFacts`],
//!   [`Action`], [`Resource`], [`RequestContext`]).
//! - [`Decision`]: allowed or not, the policy ids that decided, and any
//!   evaluation errors.
//!
//! Semantics: default deny; a satisfied `forbid` at any applying level wins
//! (so a site can always override a VO); an evaluation error anywhere is a
//! deny and is logged. [`PolicyStore`] documents which levels apply to a
//! request and whose permits count.
//!
//! ```
//! use xtreem_policy::{Action, AuthzRequest, Level, PolicyStore, RequestContext, Resource, UserFacts};
//!
//! let mut store = PolicyStore::new();
//! store.set(
//!     Level::Vo("demo".into()),
//!     r#"permit(principal, action == Xtreem::Action::"submit_job", resource)
//!        when { principal.vo == "demo" && resource.site == "lab" };"#,
//! )?;
//! store.set(
//!     Level::Site("lab".into()),
//!     r#"forbid(principal, action, resource is Xtreem::Node) when { resource.tags.contains("maintenance") };"#,
//! )?;
//!
//! let mut req = AuthzRequest {
//!     principal: UserFacts { subject: "alice".into(), vo: "demo".into(), ..Default::default() },
//!     action: Action::SubmitJob,
//!     resource: Resource::Node { name: "n1".into(), site: "lab".into(), tags: vec![] },
//!     context: RequestContext { time_unix: 1_700_000_000, cores: 4 },
//! };
//! let decision = store.authorize(&req);
//! assert!(decision.allowed);
//! assert_eq!(decision.reasons, ["vo:demo#0"]);
//!
//! req.resource = Resource::Node { name: "n1".into(), site: "lab".into(), tags: vec!["maintenance".into()] };
//! assert!(!store.authorize(&req).allowed);
//! # Ok::<(), xtreem_policy::PolicyError>(())
//! ```
//!
//! Architecture invariant: policy never does IO. Policy text arrives as a
//! string and leaves as a string; storing and distributing it is the job of
//! the crates above.

mod decision;
mod diag;
mod error;
mod level;
mod request;
mod schema;
mod store;

pub use decision::Decision;
pub use error::{PolicyError, Result};
pub use level::{LEVEL_NAME_MAX_BYTES, Level};
pub use request::{AuthzRequest, RequestContext, Resource, UserFacts};
pub use schema::{Action, SCHEMA_TEXT};
pub use store::{POLICIES_PER_LEVEL_MAX, POLICY_TEXT_MAX_BYTES, PolicyStore, PolicySummary};

#[cfg(test)]
mod tests;
