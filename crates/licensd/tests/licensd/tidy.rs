//! Repository rules checked as tests: every Rust source file says why it exists in a `//!` line,
//! and the engine stays pure (no async runtime, database, HTTP, JSON or OS dependency).

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|name| name == "target" || name == "node_modules")
            {
                continue;
            }
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_comment() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:#?}"
    );
}

#[test]
fn the_engine_depends_on_no_runtime_database_http_or_json_crate() {
    let manifest =
        std::fs::read_to_string(workspace_root().join("crates/engine/Cargo.toml")).unwrap_or_default();
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or_default()
        .to_string();
    assert!(!dependencies.is_empty(), "no [dependencies] section found");
    for forbidden in [
        "tokio",
        "async-std",
        "sqlx",
        "rusqlite",
        "postgres",
        "axum",
        "hyper",
        "reqwest",
        "serde_json",
        "getrandom",
        "libc",
    ] {
        assert!(
            !dependencies
                .lines()
                .any(|line| line.trim_start().starts_with(forbidden)),
            "the engine must not depend on {forbidden}"
        );
    }
    let workspace = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap_or_default();
    let rand_line = workspace
        .lines()
        .find(|line| line.starts_with("rand "))
        .unwrap_or_default();
    assert!(
        rand_line.contains("default-features = false"),
        "rand must not bring in OS randomness: {rand_line}"
    );
}
