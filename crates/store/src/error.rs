//! Errors of the store. A machine's own refusals stay in the machine's error
//! type; this one only says that the store itself failed.

use std::path::{Path, PathBuf};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("store failed: {0}")]
    Db(Box<redb::Error>),
    #[error("cannot encode a record: {0}")]
    Encode(#[source] postcard::Error),
    #[error("record {key:?} in table {table} is corrupt or of an unknown version: {reason}")]
    Corrupt {
        table: &'static str,
        key: String,
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn open(path: &Path, source: redb::DatabaseError) -> Self {
        StoreError::Open {
            path: path.to_owned(),
            source,
        }
    }
}

macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(e: $ty) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
