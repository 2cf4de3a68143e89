use serde::{Deserialize, Serialize};

use super::*;

const ITEMS: Table<String> = Table::new("items");

struct Items;

#[derive(Serialize, Deserialize)]
enum ItemCommand {
    Put(String, String),
    /// Refused by the machine after writing, to prove that a refusal rolls back.
    PutThenRefuse(String, String),
    /// Removes at most `.1` entries with keys before `.0`.
    RemoveBefore(String, usize),
}

#[derive(Debug, thiserror::Error)]
enum ItemError {
    #[error("refused")]
    Refused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StateMachine for Items {
    const NAME: &'static str = "items";
    type Command = ItemCommand;
    type Output = ();
    type Error = ItemError;

    fn apply(&self, txn: &WriteTxn, command: &ItemCommand) -> Result<(), ItemError> {
        match command {
            ItemCommand::Put(k, v) => Ok(ITEMS.insert(txn, k, v)?),
            ItemCommand::PutThenRefuse(k, v) => {
                ITEMS.insert(txn, k, v)?;
                Err(ItemError::Refused)
            }
            ItemCommand::RemoveBefore(end, limit) => {
                for (key, _) in ITEMS.list_before_w(txn, end, *limit)? {
                    ITEMS.remove(txn, &key)?;
                }
                Ok(())
            }
        }
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("s.redb")).expect("open");
    (dir, store)
}

#[test]
fn commands_apply_in_order_and_survive_reopen() {
    let (dir, store) = open();
    store
        .execute(&Items, ItemCommand::Put("a".into(), "1".into()))
        .unwrap();
    store
        .execute(&Items, ItemCommand::Put("a".into(), "2".into()))
        .unwrap();
    assert_eq!(store.applied_index().unwrap(), 2);
    drop(store);
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    assert_eq!(
        store.read(|r| ITEMS.get(r, "a")).unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(store.applied_index().unwrap(), 2);
}

#[test]
fn a_refused_command_changes_nothing() {
    let (_dir, store) = open();
    let err = store.execute(&Items, ItemCommand::PutThenRefuse("b".into(), "x".into()));
    assert!(matches!(err, Err(ItemError::Refused)));
    assert_eq!(store.read(|r| ITEMS.get(r, "b")).unwrap(), None);
    assert_eq!(store.applied_index().unwrap(), 0);
}

#[test]
fn an_unknown_encoding_version_is_reported_not_misread() {
    let (_dir, store) = open();
    store
        .execute(&Items, ItemCommand::Put("c".into(), "v".into()))
        .unwrap();
    let txn = store.db.begin_write().unwrap();
    {
        let mut t = txn
            .open_table(TableDefinition::<&str, &[u8]>::new("items"))
            .unwrap();
        t.insert("c", [9u8, 1, 2].as_slice()).unwrap();
    }
    txn.commit().unwrap();
    let err = store.read(|r| ITEMS.get(r, "c")).unwrap_err();
    assert!(err.to_string().contains("encoding version 9"), "{err}");
}

#[test]
fn reading_a_table_never_written_is_empty() {
    let (_dir, store) = open();
    assert!(store.read(|r| ITEMS.list(r)).unwrap().is_empty());
}

#[test]
fn execute_many_applies_all_or_nothing() {
    let (_dir, store) = open();
    store
        .execute_many(
            &Items,
            &[
                ItemCommand::Put("a".into(), "1".into()),
                ItemCommand::Put("b".into(), "2".into()),
            ],
        )
        .expect("batch");
    assert_eq!(store.applied_index().expect("index"), 2);
    let refused = store.execute_many(
        &Items,
        &[
            ItemCommand::Put("c".into(), "3".into()),
            ItemCommand::PutThenRefuse("d".into(), "4".into()),
        ],
    );
    assert!(matches!(refused, Err(ItemError::Refused)));
    assert_eq!(store.applied_index().expect("index"), 2);
    let items = store.read(|r| ITEMS.list(r)).expect("list");
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b"], "a refused batch writes nothing");
}

#[test]
fn list_before_takes_the_oldest_keys_first_and_stops_at_the_limit() {
    let (_dir, store) = open();
    for k in ["t03", "t01", "t07", "t05", "t02"] {
        store
            .execute(&Items, ItemCommand::Put(k.into(), k.into()))
            .expect("put");
    }
    store
        .execute(&Items, ItemCommand::RemoveBefore("t05".into(), 2))
        .expect("first sweep");
    let keys = |store: &Store| -> Vec<String> {
        store
            .read(|r| ITEMS.list(r))
            .expect("list")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(
        keys(&store),
        ["t03", "t05", "t07"],
        "the two oldest went first"
    );
    store
        .execute(&Items, ItemCommand::RemoveBefore("t05".into(), 100))
        .expect("second sweep");
    assert_eq!(keys(&store), ["t05", "t07"], "the end key itself is kept");
}

#[test]
fn unsynced_batches_are_read_at_once_and_kept_in_order_by_the_next_sync() {
    let (dir, store) = open();
    store
        .execute_many_unsynced(
            &Items,
            &[
                ItemCommand::Put("a".into(), "1".into()),
                ItemCommand::Put("b".into(), "1".into()),
            ],
        )
        .unwrap();
    store
        .execute_many_unsynced(&Items, &[ItemCommand::Put("a".into(), "2".into())])
        .unwrap();
    assert_eq!(
        store.read(|r| ITEMS.get(r, "a")).unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(store.applied_index().unwrap(), 3);
    store.sync().unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    assert_eq!(
        store.read(|r| ITEMS.get(r, "a")).unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        store.read(|r| ITEMS.get(r, "b")).unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(store.applied_index().unwrap(), 3);
}

#[test]
fn a_refused_unsynced_batch_writes_nothing() {
    let (_dir, store) = open();
    let refused = store.execute_many_unsynced(
        &Items,
        &[
            ItemCommand::Put("a".into(), "1".into()),
            ItemCommand::PutThenRefuse("b".into(), "1".into()),
        ],
    );
    assert!(matches!(refused, Err(ItemError::Refused)));
    assert_eq!(store.read(|r| ITEMS.get(r, "a")).unwrap(), None);
    assert_eq!(store.applied_index().unwrap(), 0);
}
