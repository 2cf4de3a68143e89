//! Ordering query results by sort keys. Each record's key values are read
//! once into a flat table before sorting, so that comparisons during the
//! sort touch that table instead of chasing every record's descriptor.

use std::cmp::Ordering;

use super::SortKey;
use super::attribute::AttributeKind;
use super::eval::{number, text};
use crate::index::NodeRecord;

#[derive(Clone, Copy)]
enum KeyValue<'a> {
    Number(f64),
    Text(&'a str),
    /// A dynamic value of a record without a sample; sorts last.
    Missing,
}

impl SortKey {
    fn value<'a>(&self, record: &'a NodeRecord) -> KeyValue<'a> {
        if self.attribute.kind() == AttributeKind::Text {
            text(record, self.attribute).map_or(KeyValue::Missing, KeyValue::Text)
        } else {
            number(record, self.attribute).map_or(KeyValue::Missing, KeyValue::Number)
        }
    }

    fn compare(&self, a: KeyValue<'_>, b: KeyValue<'_>) -> Ordering {
        let order = match (a, b) {
            (KeyValue::Number(x), KeyValue::Number(y)) => x.total_cmp(&y),
            (KeyValue::Text(x), KeyValue::Text(y)) => x.cmp(y),
            // Missing last whatever the direction, so not reversed below.
            (KeyValue::Missing, KeyValue::Missing) => return Ordering::Equal,
            (KeyValue::Missing, _) => return Ordering::Greater,
            (_, KeyValue::Missing) => return Ordering::Less,
            // One attribute never yields both kinds.
            _ => Ordering::Equal,
        };
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

/// Indices into `records` of the first `limit` records in key order. Ties
/// keep the order of `records`, which the directory passes sorted by name.
pub(crate) fn sorted_indices(
    keys: &[SortKey],
    records: &[&NodeRecord],
    limit: Option<usize>,
) -> Vec<usize> {
    let width = keys.len();
    let table: Vec<KeyValue<'_>> = records
        .iter()
        .flat_map(|r| keys.iter().map(move |k| k.value(r)))
        .collect();
    let row = |i: usize| table.get(i * width..(i + 1) * width).unwrap_or(&[]);
    let order = |a: &usize, b: &usize| {
        keys.iter()
            .zip(row(*a).iter().zip(row(*b)))
            .map(|(key, (x, y))| key.compare(*x, *y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.cmp(b))
    };
    let mut indices: Vec<usize> = (0..records.len()).collect();
    if let Some(limit) = limit.filter(|&l| l < indices.len()) {
        // Partition first so that only the kept records get sorted.
        if limit > 0 {
            indices.select_nth_unstable_by(limit - 1, order);
        }
        indices.truncate(limit);
    }
    indices.sort_unstable_by(order);
    indices
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::descriptor::{DynamicSample, StaticDescriptor};

    fn record(name: &str, cores: u32, load: Option<f32>) -> NodeRecord {
        let mut d = StaticDescriptor::example(name, "site-a");
        d.cores = cores;
        NodeRecord {
            descriptor: Arc::new(d),
            dynamic: load.map(|load| DynamicSample {
                seq: 1,
                sampled_unix_ms: 0,
                free_cores: 0.0,
                free_memory_bytes: 0,
                load,
                running_jobs: 0,
                free_disk_bytes: 0,
            }),
            alive: true,
        }
    }

    fn keys(spec: &[&str]) -> Vec<SortKey> {
        spec.iter().map(|s| SortKey::parse(s).unwrap()).collect()
    }

    #[test]
    fn sorts_by_several_keys_with_missing_values_last() {
        let recs = [
            record("a", 4, Some(2.0)),
            record("b", 8, None),
            record("c", 4, Some(1.0)),
            record("d", 8, Some(1.0)),
        ];
        let refs: Vec<&NodeRecord> = recs.iter().collect();
        assert_eq!(
            sorted_indices(&keys(&["-cores", "load"]), &refs, None),
            [3, 1, 2, 0]
        );
        assert_eq!(sorted_indices(&keys(&["-load"]), &refs, None), [0, 2, 3, 1]);
        assert_eq!(sorted_indices(&keys(&["load"]), &refs, None), [2, 3, 0, 1]);
        assert_eq!(sorted_indices(&keys(&["-name"]), &refs, None), [3, 2, 1, 0]);
    }

    #[test]
    fn limits_keep_the_head_of_the_order_and_ties_keep_input_order() {
        let recs: Vec<NodeRecord> = (0..50)
            .map(|i| record(&format!("n{i}"), i % 3 + 1, None))
            .collect();
        let refs: Vec<&NodeRecord> = recs.iter().collect();
        let full = sorted_indices(&keys(&["-cores"]), &refs, None);
        for limit in [0, 1, 5, 17, 50, 80] {
            let head = sorted_indices(&keys(&["-cores"]), &refs, Some(limit));
            assert_eq!(head, full[..limit.min(50)], "limit {limit}");
        }
        assert_eq!(full[..3], [2, 5, 8]);
    }
}
