//! Typed tables: string keys, values encoded with postcard behind a version
//! byte, so that a later release can read what an earlier one wrote.

use std::marker::PhantomData;

use redb::{ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, StoreError};

const VALUE_ENCODING_V1: u8 = 1;

/// A write transaction handed to [`crate::StateMachine::apply`].
pub struct WriteTxn {
    pub(crate) txn: redb::WriteTransaction,
}

/// A read snapshot handed to [`crate::Store::read`].
pub struct ReadTxn {
    pub(crate) txn: redb::ReadTransaction,
}

/// A table of `V` values under string keys.
pub struct Table<V> {
    name: &'static str,
    _value: PhantomData<fn() -> V>,
}

impl<V: Serialize + DeserializeOwned> Table<V> {
    pub const fn new(name: &'static str) -> Self {
        Table {
            name,
            _value: PhantomData,
        }
    }

    fn def(&self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.name)
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<V> {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: self.name,
            key: key.to_owned(),
            reason,
        };
        match bytes.split_first() {
            Some((&VALUE_ENCODING_V1, rest)) => {
                postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))
            }
            Some((version, _)) => Err(corrupt(format!("encoding version {version}"))),
            None => Err(corrupt("empty value".into())),
        }
    }

    fn encode(value: &V) -> Result<Vec<u8>> {
        let mut out = vec![VALUE_ENCODING_V1];
        out.extend(postcard::to_stdvec(value).map_err(StoreError::Encode)?);
        Ok(out)
    }

    /// Reads a value in a read snapshot; a table never written reads as empty.
    pub fn get(&self, r: &ReadTxn, key: &str) -> Result<Option<V>> {
        let table = match r.txn.open_table(self.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match table.get(key)? {
            Some(v) => Ok(Some(self.decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// All entries in key order.
    pub fn list(&self, r: &ReadTxn) -> Result<Vec<(String, V)>> {
        let table = match r.txn.open_table(self.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let key = k.value().to_owned();
            let value = self.decode(&key, v.value())?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Reads a value inside a write transaction (sees its own writes).
    pub fn get_w(&self, w: &WriteTxn, key: &str) -> Result<Option<V>> {
        let table = w.txn.open_table(self.def())?;
        match table.get(key)? {
            Some(v) => Ok(Some(self.decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// All entries in key order, inside a write transaction.
    pub fn list_w(&self, w: &WriteTxn) -> Result<Vec<(String, V)>> {
        let table = w.txn.open_table(self.def())?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let key = k.value().to_owned();
            let value = self.decode(&key, v.value())?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The first `limit` entries whose keys sort before `end`, in key order,
    /// inside a write transaction: with time-ordered keys, what is older
    /// than a moment, without reading the rest of the table.
    pub fn list_before_w(&self, w: &WriteTxn, end: &str, limit: usize) -> Result<Vec<(String, V)>> {
        let table = w.txn.open_table(self.def())?;
        let mut out = Vec::new();
        for entry in table.range::<&str>(..end)?.take(limit) {
            let (k, v) = entry?;
            let key = k.value().to_owned();
            let value = self.decode(&key, v.value())?;
            out.push((key, value));
        }
        Ok(out)
    }

    pub fn insert(&self, w: &WriteTxn, key: &str, value: &V) -> Result<()> {
        let bytes = Self::encode(value)?;
        let mut table = w.txn.open_table(self.def())?;
        table.insert(key, bytes.as_slice())?;
        Ok(())
    }

    pub fn remove(&self, w: &WriteTxn, key: &str) -> Result<bool> {
        let mut table = w.txn.open_table(self.def())?;
        Ok(table.remove(key)?.is_some())
    }
}
