//! Tests of the query language: parsing, errors, evaluation, and that no
//! input makes the parser panic.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::{Rng, SeedableRng};

use super::*;
use crate::descriptor::{DynamicSample, ServiceEntry, StaticDescriptor};

fn record() -> NodeRecord {
    let mut d = StaticDescriptor::example("node-7", "site-a");
    d.cores = 8;
    d.memory_bytes = 16 << 30;
    d.disk_bytes = 500 << 30;
    d.os = "Debian GNU/Linux 12 (bookworm)".into();
    d.roles = vec!["resource".into(), "core".into()];
    d.tags.insert("gpu".into());
    d.labels.insert("rack".into(), "r12".into());
    d.vos.insert("physics".into());
    d.services.push(ServiceEntry {
        kind: "vo".into(),
        address: "h:1".into(),
        healthy: true,
    });
    d.services.push(ServiceEntry {
        kind: "osd".into(),
        address: "h:2".into(),
        healthy: false,
    });
    NodeRecord {
        descriptor: Arc::new(d),
        dynamic: Some(DynamicSample {
            seq: 1,
            sampled_unix_ms: 0,
            free_cores: 2.5,
            free_memory_bytes: 4 << 30,
            load: 0.7,
            running_jobs: 3,
            free_disk_bytes: 100 << 30,
        }),
        alive: true,
    }
}

fn matches(q: &str, r: &NodeRecord) -> bool {
    match Query::parse(q) {
        Ok(q) => q.matches(r),
        Err(e) => panic!("{}", e.render(q)),
    }
}

fn error(q: &str) -> QueryError {
    match Query::parse(q) {
        Ok(parsed) => panic!("{q:?} parsed as {parsed:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_empty_query_matches_everything() {
    let r = record();
    for q in ["", "   ", "\n\t"] {
        let parsed = Query::parse(q).unwrap();
        assert!(parsed.matches(&r));
        assert_eq!((parsed.sort_keys(), parsed.limit()), (&[][..], None));
    }
}

#[test]
fn numeric_comparisons_with_units() {
    let r = record();
    for yes in [
        "cores>=4",
        "cores=8",
        "cores==8",
        "cores!=4",
        "cores<9",
        "cores<=8",
        "cores>7.5",
        "mem>=16GiB",
        "memory==16G",
        "mem>17GB",
        "mem<18GB",
        "disk>=500GiB",
        "disk<0.5TiB",
        "free_cores==2.5",
        "free_mem>=4096MiB",
        "free_disk>99GiB",
        "load<=0.7",
        "load>0.69",
        "jobs==3",
        "cores in [2, 8, 16]",
        "mem in [16GiB]",
    ] {
        assert!(matches(yes, &r), "{yes}");
    }
    for no in [
        "cores>8",
        "mem>16GiB",
        "load<0.7",
        "jobs in [1,2]",
        "cores in []",
    ] {
        assert!(!matches(no, &r), "{no}");
    }
}

#[test]
fn text_and_selector_atoms() {
    let r = record();
    for yes in [
        "arch==x86_64",
        "name==node-7",
        "site in [site-b, site-a]",
        "os==\"Debian GNU/Linux 12 (bookworm)\"",
        "kernel==6.1.0",
        "arch!=arm64",
        "state==alive",
        "state!=dead",
        "tag:gpu",
        "label:rack",
        "label:rack==r12",
        "label:rack=\"r12\"",
        "vo:physics",
        "service:vo",
        "role:core",
        "role:resource",
    ] {
        assert!(matches(yes, &r), "{yes}");
    }
    for no in [
        "arch==X86_64",
        "state==dead",
        "tag:fpga",
        "label:zone",
        "label:rack==r1",
        "vo:chemistry",
        "service:osd",
        "role:client",
    ] {
        assert!(!matches(no, &r), "{no}");
    }
}

#[test]
fn connectives_and_precedence() {
    let r = record();
    assert!(matches("cores>=4 && tag:gpu && vo:physics", &r));
    assert!(!matches("cores>=4 && tag:fpga", &r));
    assert!(matches("tag:fpga || cores>=4", &r));
    // && binds tighter than ||.
    assert!(matches("tag:gpu || tag:fpga && cores>100", &r));
    assert!(!matches("(tag:gpu || tag:fpga) && cores>100", &r));
    assert!(matches("!tag:fpga", &r));
    assert!(matches("!!tag:gpu", &r));
    assert!(!matches("!(tag:gpu && cores==8)", &r));
    assert!(matches("((((cores==8))))", &r));
}

#[test]
fn dynamic_attributes_are_false_without_a_sample() {
    let mut r = record();
    r.dynamic = None;
    for q in [
        "load<100",
        "load>=0",
        "load!=5",
        "free_cores>=0",
        "jobs in [0]",
        "free_mem>=0",
    ] {
        assert!(!matches(q, &r), "{q}");
    }
    assert!(matches("!(load>5)", &r));
    assert!(matches("cores==8", &r));
}

#[test]
fn dead_records_have_state_dead() {
    let mut r = record();
    r.alive = false;
    assert!(matches("state==dead", &r));
    assert!(!matches("state in [alive]", &r));
}

#[test]
fn sort_and_limit_clauses_in_either_order() {
    let q = Query::parse("cores>=4 && tag:gpu sort -load,cores limit 5").unwrap();
    assert_eq!(
        q.sort_keys(),
        [
            SortKey {
                attribute: Attribute::Load,
                descending: true
            },
            SortKey {
                attribute: Attribute::Cores,
                descending: false
            },
        ]
    );
    assert_eq!(q.limit(), Some(5));
    assert!(q.matches(&record()));

    let q = Query::parse("limit 3 sort name").unwrap();
    assert_eq!(q.limit(), Some(3));
    assert_eq!(q.sort_keys()[0].attribute, Attribute::Name);
    assert!(q.matches(&record()));

    let q = q
        .with_sort(vec![SortKey::parse("-free_mem").unwrap()])
        .with_limit(9);
    assert_eq!(q.limit(), Some(9));
    assert_eq!(q.sort_keys()[0].to_string(), "-free_mem");
    assert_eq!(q.text(), "limit 3 sort name", "the original text is kept");
}

#[test]
fn sort_key_parsing() {
    assert_eq!(
        SortKey::parse("-load").unwrap(),
        SortKey {
            attribute: Attribute::Load,
            descending: true
        }
    );
    assert_eq!(
        "memory".parse::<SortKey>().unwrap(),
        SortKey {
            attribute: Attribute::Memory,
            descending: false
        }
    );
    let e = SortKey::parse("-lod").unwrap_err();
    assert_eq!((e.position, e.token.as_str()), (1, "lod"));
    assert!(e.message.contains("cores, mem"), "{e}");
    assert!(SortKey::parse("").is_err());
    assert!(SortKey::parse("-").is_err());
}

#[test]
fn named_sites_follow_positive_site_constraints() {
    let sites = |q: &str| Query::parse(q).unwrap().named_sites();
    let set = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    assert_eq!(sites(""), None);
    assert_eq!(sites("cores>4"), None);
    assert_eq!(sites("site==a"), set(&["a"]));
    assert_eq!(
        sites("cores>4 && site in [a,b] sort -load"),
        set(&["a", "b"])
    );
    assert_eq!(sites("site in [a,b] && (site==b && tag:x)"), set(&["b"]));
    assert_eq!(sites("site in [a,b] && site==c"), set(&[]));
    assert_eq!(sites("site==a || site in [b]"), set(&["a", "b"]));
    assert_eq!(sites("site==a || tag:x"), None);
    assert_eq!(sites("site!=a"), None);
    assert_eq!(sites("!(site==a)"), None);
}

#[test]
fn text_and_display_keep_the_original() {
    let text = "cores>=4  &&   tag:gpu";
    let q: Query = text.parse().unwrap();
    assert_eq!(q.text(), text);
    assert_eq!(q.to_string(), text);
}

/// (query, byte position, token, a fragment of the message)
const ERRORS: &[(&str, usize, &str, &str)] = &[
    (
        "cores>=4 && mem>==8GiB",
        15,
        ">==",
        "expected a value after `>=`",
    ),
    ("cores>=", 7, "", "expected a value after `>=`"),
    ("cores>= && x", 8, "&&", "expected a value after `>=`"),
    ("cores=>4", 5, "=>", "did you mean `>=`"),
    (
        "cors>=4",
        0,
        "cors",
        "unknown attribute; known attributes: cores, mem,",
    ),
    ("cores>=4GiB", 7, "4GiB", "size unit `GiB` on `cores`"),
    ("cores<abc", 6, "abc", "`cores` is numeric"),
    ("cores<\"4\"", 6, "\"4\"", "quoted string"),
    ("mem>8XB", 4, "8XB", "unknown size unit `XB`"),
    ("name<b", 4, "<", "`name` is text"),
    ("state==zombie", 7, "zombie", "`alive` or `dead`"),
    ("(cores>4", 8, "", "expected `)` to close the `(` at 0"),
    ("cores>4)", 7, ")", "unbalanced `)`"),
    (
        "site in [a, b",
        13,
        "",
        "expected `,` or `]` to close the `[` at 8",
    ),
    ("site in a", 8, "a", "expected `[` after `in`"),
    ("site in [a,]", 11, "]", "expected a value in the list"),
    (
        "cores>4 mem>2",
        8,
        "mem",
        "expected `&&`, `||`, `sort`, `limit`",
    ),
    ("cores>4 limit 0", 14, "0", "positive integer"),
    ("limit -3", 6, "-3", "positive integer"),
    ("limit", 5, "", "positive integer"),
    ("limit 2 limit 3", 8, "limit", "given twice"),
    ("sort load sort jobs", 10, "sort", "given twice"),
    ("sort", 4, "", "expected an attribute to sort by"),
    ("sort -lod", 6, "lod", "unknown attribute"),
    ("cores", 5, "", "expected an operator"),
    ("&& cores>4", 0, "&&", "expected a condition"),
    ("cores>4 &&", 10, "", "expected a condition"),
    ("gpu:x", 0, "gpu", "unknown selector"),
    ("tag:", 4, "", "expected a name after `tag:`"),
    ("label:rack!=r1", 10, "!=", "labels compare with `==` only"),
    ("cores>4 & x", 8, "&", "expected `&&`"),
    ("name==a$b", 7, "$", "unexpected character"),
];

#[test]
fn errors_name_the_token_and_position() {
    for &(q, position, token, fragment) in ERRORS {
        let e = error(q);
        assert_eq!(
            (e.position, e.token.as_str()),
            (position, token),
            "{q}: {e}"
        );
        assert!(e.message.contains(fragment), "{q}: {e}");
        assert!(e.to_string().starts_with(&format!("at {position} ")), "{e}");
    }
}

#[test]
fn errors_render_with_carets() {
    let text = "cores>=4 && mem>==8GiB";
    assert_eq!(
        error(text).render(text),
        "cores>=4 && mem>==8GiB\n               ^^^ expected a value after `>=`"
    );
}

#[test]
fn hostile_sizes_and_nesting_are_refused() {
    let long = format!("name=={}", "a".repeat(MAX_QUERY_BYTES));
    assert!(error(&long).message.contains("longer than 4096"));

    let deep = format!("{}cores>1{}", "(".repeat(65), ")".repeat(65));
    assert!(error(&deep).message.contains("nesting deeper than 64"));
    let ok = format!("{}cores>1{}", "(".repeat(64), ")".repeat(64));
    assert!(Query::parse(&ok).is_ok());
    assert!(error(&"!".repeat(4000)).message.contains("nesting"));
    assert!(error(&"(".repeat(4000)).message.contains("nesting"));

    // Long flat chains are iterative, not recursive.
    let wide = vec!["tag:a"; 500].join("||");
    assert!(!Query::parse(&wide).unwrap().matches(&record()));
}

const SEEDS: &[&str] = &[
    "cores>=4 && mem>=8GiB && arch==x86_64 && site in [a,b] && tag:gpu sort -load limit 5",
    "!(label:rack==\"r 1\" || vo:physics) && service:vo && role:core limit 3 sort name,-cores",
    "free_cores>0.5 || load<=2 && jobs in [0, 1] && state==alive && os==\"Debian \\\"x\\\"\"",
];

const PIECES: &[&str] = &[
    "(", ")", "[", "]", "!", "&&", "||", "==", "=", ">=", "<", ",", ":", "\"", "\\", " ", "cores",
    "mem", "tag", "in", "sort", "limit", "-", "8GiB", "é", "\0", "1e999", "-load",
];

#[test]
fn random_input_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let r = record();
    let alphabet = b"()[]!&|=<>:,\" \\-_.0123456789abcdefgiklmnorstuvxGKMTBi";
    for _ in 0..20_000 {
        // Random bytes (lossily made text) ...
        let len = rng.random_range(0..80);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        check_no_panic(&String::from_utf8_lossy(&bytes), &r);
        // ... strings over the query alphabet ...
        let len = rng.random_range(0..60);
        let text: String = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
            .collect();
        check_no_panic(&text, &r);
        // ... and mutations of valid queries.
        let mut text = SEEDS[rng.random_range(0..SEEDS.len())].to_owned();
        for _ in 0..rng.random_range(1..4) {
            let mut at = rng.random_range(0..=text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match rng.random_range(0..3) {
                0 => text.insert_str(at, PIECES[rng.random_range(0..PIECES.len())]),
                1 => {
                    let mut end = (at + rng.random_range(1..6)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => text.truncate(at),
            }
        }
        check_no_panic(&text, &r);
    }
}

fn check_no_panic(text: &str, r: &NodeRecord) {
    match Query::parse(text) {
        Ok(q) => {
            let _ = q.matches(r);
            let _ = q.named_sites();
        }
        Err(e) => {
            assert!(e.position <= text.len(), "{text:?}: {e}");
            let _ = e.render(text);
        }
    }
}
