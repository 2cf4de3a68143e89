//! What a node remembers about the site it belongs to, through the store.

use serde::{Deserialize, Serialize};
use xtreem_security::SecurityError;
use xtreem_store::{ReadTxn, StateMachine, Table, WriteTxn};
use xtreem_util::names::{NodeName, SiteName};

const MEMBERSHIP: Table<Membership> = Table::new("node_membership");
const KEY: &str = "self";

/// The site this node is enrolled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub site: SiteName,
    pub authority: NodeName,
    /// `host:port` of the authority's RPC listener.
    pub authority_endpoint: String,
}

pub struct MembershipMachine;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MembershipCommand {
    Joined(Membership),
}

impl StateMachine for MembershipMachine {
    const NAME: &'static str = "membership";
    type Command = MembershipCommand;
    type Output = ();
    type Error = SecurityError;

    fn apply(&self, txn: &WriteTxn, command: &MembershipCommand) -> Result<(), SecurityError> {
        match command {
            MembershipCommand::Joined(m) => {
                if let Some(existing) = MEMBERSHIP.get_w(txn, KEY)?
                    && existing.site != m.site
                {
                    return Err(SecurityError::SiteExists(existing.site.to_string()));
                }
                MEMBERSHIP.insert(txn, KEY, m)?;
                Ok(())
            }
        }
    }
}

pub fn load(r: &ReadTxn) -> Result<Option<Membership>, SecurityError> {
    Ok(MEMBERSHIP.get(r, KEY)?)
}
