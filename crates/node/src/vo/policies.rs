//! Stored policy texts, by level, as a state machine. The text is validated
//! against the schema before the command is built; the machine only keeps it.

use serde::{Deserialize, Serialize};
use xtreem_security::SecurityError;
use xtreem_store::{ReadTxn, StateMachine, Table, WriteTxn};

use super::trust::PolicyEntry;

const POLICIES: Table<PolicyEntry> = Table::new("policies");

fn key(kind: &str, name: &str) -> String {
    format!("{kind}:{name}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PolicyCommand {
    Set(PolicyEntry),
}

pub struct PolicyMachine;

impl StateMachine for PolicyMachine {
    const NAME: &'static str = "policies";
    type Command = PolicyCommand;
    type Output = ();
    type Error = SecurityError;

    fn apply(&self, txn: &WriteTxn, command: &PolicyCommand) -> Result<(), SecurityError> {
        match command {
            PolicyCommand::Set(entry) => {
                let k = key(&entry.kind, &entry.name);
                if entry.text.trim().is_empty() {
                    POLICIES.remove(txn, &k)?;
                } else {
                    POLICIES.insert(txn, &k, entry)?;
                }
                Ok(())
            }
        }
    }
}

pub fn all(r: &ReadTxn) -> Result<Vec<PolicyEntry>, SecurityError> {
    Ok(POLICIES.list(r)?.into_iter().map(|(_, p)| p).collect())
}

pub fn get(r: &ReadTxn, kind: &str, name: &str) -> Result<Option<PolicyEntry>, SecurityError> {
    Ok(POLICIES.get(r, &key(kind, name))?)
}
