//! VO credentials: JWTs shaped like the WLCG Common JWT Profile, signed with
//! EdDSA (Ed25519), published as a JWKS, verified offline on every node, and
//! narrowed by delegation.
//!
//! Main types:
//! - [`Claims`]: `iss sub aud exp nbf iat jti wlcg.ver wlcg.groups scope`,
//!   plus `xtreem.roles` and an RFC 8693 `act` chain for delegation.
//! - [`SigningKey`]: a VO's Ed25519 key; [`PublicKey`] its JWK.
//! - [`Verifier`]: the keys a node trusts, by issuer and key id, and the
//!   audiences it accepts. Xtreem signs with Ed25519 only, so every other algorithm (none, HS256,
//!   RS256, ES256...) is refused by name.
//! - [`delegate`]: the rules of token exchange: never a wider scope, never a
//!   later expiry, never another audience than allowed.
//!
//! ```
//! use xtreem_token::{Claims, SigningKey, Verifier, Audience};
//! let key = SigningKey::generate("demo-1").unwrap();
//! let now = 1_900_000_000;
//! let claims = Claims::new("xtreem://lab/vo/demo", "alice", Audience::ANY_SITE, now, 3600)
//!     .with_groups(vec!["/demo".into()])
//!     .with_scope("compute.read vo.read");
//! let token = key.sign(&claims).unwrap();
//! let mut verifier = Verifier::new(vec![Audience::ANY_SITE.into()]);
//! verifier.trust("xtreem://lab/vo/demo", key.public());
//! assert_eq!(verifier.verify_at(&token, now + 10).unwrap().sub, "alice");
//! ```
//!
//! Architecture invariant: `token` does no IO and keeps no state beyond the
//! keys it is given.

mod claims;
mod delegation;
mod error;
mod keys;
mod verify;

pub use claims::{Actor, Audience, Claims, WLCG_VERSION};
pub use delegation::{DelegationRequest, delegate};
pub use error::TokenError;
pub use keys::{Jwks, PublicKey, SigningKey};
pub use verify::Verifier;

/// Clock skew tolerated on `nbf` and `exp`.
pub const CLOCK_SKEW_SECS: u64 = 60;
