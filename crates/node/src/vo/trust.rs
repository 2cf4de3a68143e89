//! The trust document: everything a node needs to decide about a VO
//! credential on its own — which issuers and keys to trust, which VOs this
//! site serves on which nodes, and the policies to evaluate. The site
//! authority builds it; members receive it with their heartbeats and
//! install it; no node asks anyone per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xtreem_policy::{Level, PolicyStore};
use xtreem_security::site::ServedVo;
use xtreem_token::{Audience, PublicKey, Verifier};

/// A VO issuer and its published keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedIssuer {
    pub vo: String,
    pub issuer: String,
    /// Site whose VO service hosts the VO.
    pub site: String,
    pub keys: Vec<PublicKey>,
}

/// One stored policy text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEntry {
    /// "vo", "site" or "user".
    pub kind: String,
    pub name: String,
    pub text: String,
}

impl PolicyEntry {
    pub fn level(&self) -> Option<Level> {
        match self.kind.as_str() {
            "vo" => Some(Level::Vo(self.name.clone())),
            "site" => Some(Level::Site(self.name.clone())),
            "user" => Some(Level::User(self.name.clone())),
            _ => None,
        }
    }
}

/// What a site keeps of another site's bundle: its VOs and their policies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignVos {
    pub issuers: Vec<TrustedIssuer>,
    pub policies: Vec<PolicyEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustDocument {
    pub site: String,
    pub issuers: Vec<TrustedIssuer>,
    pub served: Vec<ServedVo>,
    pub policies: Vec<PolicyEntry>,
}

impl TrustDocument {
    /// Content hash, so a node can say which version it holds.
    pub fn version(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..16])
    }
}

/// What a node derives from the document it holds.
pub struct Trusted {
    pub version: String,
    pub doc: TrustDocument,
    pub verifier: Verifier,
    pub policy: PolicyStore,
    issuer_vo: HashMap<String, String>,
}

impl Trusted {
    fn build(doc: TrustDocument) -> Trusted {
        let mut verifier = Verifier::new(vec![
            Audience::ANY_SITE.to_owned(),
            Audience::site(&doc.site),
        ]);
        let mut issuer_vo = HashMap::new();
        for issuer in &doc.issuers {
            for key in &issuer.keys {
                verifier.trust(&issuer.issuer, key.clone());
            }
            issuer_vo.insert(issuer.issuer.clone(), issuer.vo.clone());
        }
        let mut policy = PolicyStore::new();
        for entry in &doc.policies {
            let Some(level) = entry.level() else { continue };
            // The authority validated these before storing them; a failure
            // here means a schema change, and the level then grants nothing.
            if let Err(e) = policy.set(level, &entry.text) {
                tracing::error!(kind = %entry.kind, name = %entry.name, error = %e, "stored policy no longer validates; ignoring it (deny)");
            }
        }
        Trusted {
            version: doc.version(),
            doc,
            verifier,
            policy,
            issuer_vo,
        }
    }

    /// The VO an issuer speaks for.
    pub fn vo_of_issuer(&self, issuer: &str) -> Option<&str> {
        self.issuer_vo.get(issuer).map(String::as_str)
    }

    pub fn served(&self, vo: &str) -> Option<&ServedVo> {
        self.doc.served.iter().find(|s| s.vo == vo)
    }
}

/// The node's current trust, swapped whole when a new document arrives.
pub struct TrustState {
    current: RwLock<Arc<Trusted>>,
}

impl Default for TrustState {
    fn default() -> Self {
        TrustState {
            current: RwLock::new(Arc::new(Trusted::build(TrustDocument::default()))),
        }
    }
}

impl TrustState {
    pub fn current(&self) -> Arc<Trusted> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            // A poisoned lock: trust nothing rather than something stale.
            Err(_) => Arc::new(Trusted::build(TrustDocument::default())),
        }
    }

    pub fn version(&self) -> String {
        self.current().version.clone()
    }

    pub fn install(&self, doc: TrustDocument) {
        let trusted = Arc::new(Trusted::build(doc));
        if let Ok(mut w) = self.current.write() {
            *w = trusted;
        }
    }

    /// Installs a document received as JSON; a bad one is refused and logged.
    pub fn install_json(&self, json: &str) -> Result<(), serde_json::Error> {
        let doc: TrustDocument = serde_json::from_str(json)?;
        self.install(doc);
        Ok(())
    }
}
