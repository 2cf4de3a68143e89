//! The state-machine interface through which all durable changes flow.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{StoreError, WriteTxn};

/// A service's durable state, changed only by applying commands in order.
///
/// `apply` must be deterministic: the same commands applied to the same state
/// give the same state and output on every replica. Anything random (keys,
/// token secrets, timestamps) is chosen before the command is built and
/// travels inside it.
pub trait StateMachine {
    /// Name written beside each command in the log.
    const NAME: &'static str;
    type Command: Serialize + DeserializeOwned;
    type Output;
    /// The machine's own refusals; a store failure converts into it.
    type Error: From<StoreError>;

    fn apply(&self, txn: &WriteTxn, command: &Self::Command) -> Result<Self::Output, Self::Error>;
}
