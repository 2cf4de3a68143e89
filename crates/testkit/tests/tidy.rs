//! Workspace hygiene as an ordinary test: the crate layering of
//! ARCHITECTURE.md holds, and every source file says what it is for.

use std::path::{Path, PathBuf};

/// The layering: a crate may depend only on crates before it.
const LAYERS: &[(&str, &str)] = &[
    ("util", "xtreem-util"),
    ("proto", "xtreem-proto"),
    ("store", "xtreem-store"),
    ("audit", "xtreem-audit"),
    ("policy", "xtreem-policy"),
    ("ldapauth", "xtreem-ldapauth"),
    ("net", "xtreem-net"),
    ("security", "xtreem-security"),
    ("accounts", "xtreem-accounts"),
    ("token", "xtreem-token"),
    ("vo", "xtreem-vo"),
    ("directory", "xtreem-directory"),
    ("gossip", "xtreem-gossip"),
    ("sim", "xtreem-sim"),
    ("job", "xtreem-job"),
    ("exec", "xtreem-exec"),
    ("node", "xtreem-node"),
    ("client", "xtreem-client"),
    ("testkit", "xtreem-testkit"),
    ("xosd", "xosd"),
    ("xos", "xos"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn normal_dependencies(manifest: &str) -> Vec<String> {
    let value: toml::Value = toml::from_str(manifest).expect("manifest parses");
    value
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let crates_dir = workspace().join("crates");
    let mut on_disk: Vec<String> = std::fs::read_dir(&crates_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = LAYERS.iter().map(|(dir, _)| dir.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every crate must have its place in LAYERS (and ARCHITECTURE.md)"
    );

    for (position, (dir, _)) in LAYERS.iter().enumerate() {
        let manifest = std::fs::read_to_string(crates_dir.join(dir).join("Cargo.toml")).unwrap();
        for dep in normal_dependencies(&manifest) {
            if let Some(dep_position) = LAYERS.iter().position(|(_, name)| *name == dep) {
                assert!(
                    dep_position < position,
                    "crate {dir} depends on {dep}, which is not below it in the layering"
                );
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let mut files = Vec::new();
    for (dir, _) in LAYERS {
        rust_files(
            &workspace().join("crates").join(dir).join("src"),
            &mut files,
        );
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let is_test_module = f.file_name().is_some_and(|n| n == "tests.rs");
            !is_test_module && !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! doc comment: {missing:#?}"
    );
}
