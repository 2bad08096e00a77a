//! Repository rules checked as tests: every Rust source file says why it exists in a `//!` line,
//! the engine stays pure, each crate links nothing its invariant in ARCHITECTURE.md forbids (read
//! from `cargo metadata`; the runtime no HTTP crate), only the store links a database driver,
//! every crate the workspace names is built in one version, and no surface of the server imports
//! another surface.

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

/// The workspace's resolved dependency graph, from `cargo metadata`: each package id with the
/// ids it depends on through normal (non-dev, non-build) dependencies, and each workspace
/// member's direct dependencies of every kind.
struct DependencyGraph {
    /// Package id → (name, version).
    packages: std::collections::HashMap<String, (String, String)>,
    /// Package id → ids of its normal dependencies.
    normal: std::collections::HashMap<String, Vec<String>>,
    /// Package id → ids of all its direct dependencies (normal, dev and build).
    direct: std::collections::HashMap<String, Vec<String>>,
    members: Vec<String>,
}

impl DependencyGraph {
    fn load() -> DependencyGraph {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let output = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(workspace_root())
            .output()
            .expect("cargo metadata runs");
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
        let packages = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|package| {
                (
                    text(&package["id"]),
                    (text(&package["name"]), text(&package["version"])),
                )
            })
            .collect();
        let mut normal = std::collections::HashMap::new();
        let mut direct = std::collections::HashMap::new();
        for node in metadata["resolve"]["nodes"].as_array().expect("resolve nodes") {
            let id = text(&node["id"]);
            let mut normal_ids = Vec::new();
            let mut direct_ids = Vec::new();
            for dependency in node["deps"].as_array().expect("deps") {
                let dependency_id = text(&dependency["pkg"]);
                let is_normal = dependency["dep_kinds"]
                    .as_array()
                    .expect("dep_kinds")
                    .iter()
                    .any(|kind| kind["kind"].is_null());
                if is_normal {
                    normal_ids.push(dependency_id.clone());
                }
                direct_ids.push(dependency_id);
            }
            normal.insert(id.clone(), normal_ids);
            direct.insert(id, direct_ids);
        }
        let members = metadata["workspace_members"]
            .as_array()
            .expect("workspace members")
            .iter()
            .map(text)
            .collect();
        DependencyGraph {
            packages,
            normal,
            direct,
            members,
        }
    }

    fn name(&self, id: &str) -> &str {
        self.packages
            .get(id)
            .map(|(name, _)| name.as_str())
            .unwrap_or_default()
    }

    fn member(&self, name: &str) -> String {
        self.members
            .iter()
            .find(|id| self.name(id) == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not a workspace member"))
    }

    /// Names of every package `crate_name` links (its normal dependencies, transitively).
    fn linked(&self, crate_name: &str) -> std::collections::BTreeSet<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![self.member(crate_name)];
        let mut visited = std::collections::HashSet::new();
        while let Some(id) = stack.pop() {
            for dependency in self.normal.get(&id).into_iter().flatten() {
                if visited.insert(dependency.clone()) {
                    seen.insert(self.name(dependency).to_string());
                    stack.push(dependency.clone());
                }
            }
        }
        seen
    }
}

/// Each crate's invariant from ARCHITECTURE.md, stated as what it must never link (directly or
/// through another crate).
#[test]
fn each_crate_links_nothing_its_invariant_forbids() {
    let graph = DependencyGraph::load();
    let http = ["axum", "hyper", "tower", "tower-http", "reqwest", "axum-server"];
    let database = ["rusqlite", "postgres", "tokio-postgres", "sqlx"];
    let rules: [(&str, Vec<&str>, &str); 7] = [
        (
            "licensd-delivery",
            vec![
                "axum",
                "axum-server",
                "maud",
                "utoipa",
                "licensd-server",
                "licensd-api-types",
            ],
            "delivery sends what it is given: no HTTP server, no wire shapes",
        ),
        (
            "licensd-engine",
            [&http[..], &database[..], &["tokio", "serde_json"]].concat(),
            "the engine knows nothing of tokio, SQL, HTTP or JSON",
        ),
        (
            "licensd-runtime",
            [
                &http[..],
                &["http", "maud", "utoipa", "utoipa-axum", "licensd-server"],
            ]
            .concat(),
            "the runtime knows nothing of HTTP: the surfaces render its decisions",
        ),
        (
            "licensd-store",
            [&http[..], &["licensd-server", "licensd-api-types"]].concat(),
            "the store knows nothing of HTTP or the wire shapes",
        ),
        (
            "licensd-api-types",
            [
                &database[..],
                &["licensd-engine", "licensd-server", "licensd-store"],
            ]
            .concat(),
            "the wire types link neither the engine nor the server",
        ),
        (
            "licensd-client",
            [
                &database[..],
                &["licensd-engine", "licensd-server", "licensd-store"],
            ]
            .concat(),
            "the CLI's client only knows the wire types",
        ),
        (
            "licensd-import",
            [&http[..], &database[..], &["licensd-server", "licensd-store"]].concat(),
            "import reads files and builds tenants through engine commands; no SQL, no HTTP",
        ),
    ];
    for (crate_name, forbidden, invariant) in rules {
        let linked = graph.linked(crate_name);
        let violations: Vec<&&str> = forbidden.iter().filter(|name| linked.contains(**name)).collect();
        assert!(
            violations.is_empty(),
            "{crate_name} links {violations:?}, but {invariant}"
        );
    }
}

/// Only `licensd-delivery` makes outbound HTTP requests from the server process (the CLI's
/// `licensd-client` talks to licensd's own API): no other crate depends on an HTTP client.
#[test]
fn only_the_delivery_crate_depends_on_an_http_client() {
    let graph = DependencyGraph::load();
    for member in &graph.members {
        let name = graph.name(member);
        if name == "licensd-delivery" || name == "licensd-client" {
            continue;
        }
        for dependency in graph.normal.get(member).into_iter().flatten() {
            let dependency_name = graph.name(dependency);
            assert!(
                !["reqwest", "ureq", "hyper-rustls", "isahc", "attohttpc"].contains(&dependency_name),
                "{name} depends on {dependency_name}: only licensd-delivery makes outbound HTTP requests"
            );
        }
    }
}

/// Only the store talks to a database driver.
#[test]
fn only_the_store_depends_on_a_database_driver() {
    let graph = DependencyGraph::load();
    for member in &graph.members {
        let name = graph.name(member);
        if name == "licensd-store" {
            continue;
        }
        for dependency in graph.normal.get(member).into_iter().flatten() {
            let dependency_name = graph.name(dependency);
            assert!(
                !["rusqlite", "postgres", "tokio-postgres", "sqlx"].contains(&dependency_name),
                "{name} depends on {dependency_name}: only licensd-store writes SQL"
            );
        }
    }
}

/// Every crate the workspace names itself is built in one version (a second version of the
/// same crate means two copies compiled and linked; bump ours to match the tree instead).
#[test]
fn every_crate_the_workspace_names_is_built_in_one_version() {
    let graph = DependencyGraph::load();
    // Kept in two versions by crates we do not control, with the reason.
    let tolerated = [(
        "getrandom",
        "ring 0.17 (rustls' crypto provider) still depends on getrandom 0.2",
    )];
    let mut versions: std::collections::HashMap<&str, std::collections::BTreeSet<&str>> =
        std::collections::HashMap::new();
    for (name, version) in graph.packages.values() {
        versions.entry(name).or_default().insert(version);
    }
    let mut duplicated = std::collections::BTreeSet::new();
    for member in &graph.members {
        for dependency in graph.direct.get(member).into_iter().flatten() {
            let name = graph.name(dependency);
            let count = versions.get(name).map_or(0, |found| found.len());
            if count > 1
                && !tolerated
                    .iter()
                    .any(|(tolerated_name, _)| *tolerated_name == name)
            {
                duplicated.insert(format!("{name} {:?}", versions[name]));
            }
        }
    }
    assert!(
        duplicated.is_empty(),
        "crates built in several versions: {duplicated:?}"
    );
}

/// Test fixtures (the seed world, the generator) stay out of the production code path: only the
/// `licensd` binary (for `demo` and `gen`) links them; every other crate may use them in its tests
/// and benchmarks only.
#[test]
fn only_the_binary_links_the_fixtures() {
    let graph = DependencyGraph::load();
    for member in &graph.members {
        let name = graph.name(member);
        if name == "licensd" || name == "licensd-fixtures" {
            continue;
        }
        for dependency in graph.normal.get(member).into_iter().flatten() {
            assert_ne!(
                graph.name(dependency),
                "licensd-fixtures",
                "{name} links licensd-fixtures outside its tests: fixtures are not production code"
            );
        }
    }
}

/// The first path segments a line names after `crate::`, whether alone (`crate::graph::users`)
/// or grouped (`crate::{api, graph::users}`).
fn crate_modules_named(line: &str) -> Vec<String> {
    let identifier = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut named = Vec::new();
    for (index, _) in line.match_indices("crate::") {
        let rest = &line[index + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = group.split('}').next().unwrap_or_default();
                named.extend(group.split(',').map(identifier));
            }
            None => named.push(identifier(rest)),
        }
    }
    named
}

/// The server's surfaces (Graph, the admin API, SCIM, the console, metrics) share only glue (`api`,
/// `auth`, `odata`, ...), never each other: each guards its own routes and renders its own
/// errors, so one can change without the others.
#[test]
fn no_surface_of_the_server_imports_another_surface() {
    let surfaces = ["graph", "admin", "scim", "console", "metrics"];
    let source = workspace_root().join("crates/server/src");
    let mut violations = Vec::new();
    for surface in surfaces {
        let mut files = Vec::new();
        rust_files(&source.join(surface), &mut files);
        assert!(!files.is_empty(), "no files under crates/server/src/{surface}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (number, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for named in crate_modules_named(line) {
                    if named != surface && surfaces.contains(&named.as_str()) {
                        violations.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "a surface imports another surface: {violations:#?}"
    );
}

#[test]
fn the_surface_import_scan_reads_plain_and_grouped_paths() {
    assert_eq!(crate_modules_named("use crate::graph::users::x;"), ["graph"]);
    assert_eq!(
        crate_modules_named("use crate::{api::ApiError, console::ConsoleError};"),
        ["api", "console"]
    );
    assert!(crate_modules_named("use super::error::ScimError;").is_empty());
}
// ----- licensd-protocols (issue 13) --------------------------------------------------------------

/// The protocol grammars are grammar only (ARCHITECTURE.md): no HTTP crate, and neither the
/// engine's state, the store nor the server, directly or through another crate.
#[test]
fn the_protocols_crate_links_no_http_crate_and_no_engine_store_or_server() {
    let graph = DependencyGraph::load();
    let linked = graph.linked("licensd-protocols");
    let forbidden = [
        "axum",
        "axum-core",
        "axum-server",
        "hyper",
        "hyper-util",
        "http",
        "http-body",
        "tower",
        "tower-http",
        "reqwest",
        "tokio",
        "licensd-engine",
        "licensd-store",
        "licensd-server",
        "licensd-runtime",
    ];
    let violations: Vec<&str> = forbidden
        .iter()
        .copied()
        .filter(|name| linked.contains(*name))
        .collect();
    assert!(
        violations.is_empty(),
        "licensd-protocols links {violations:?}, but the protocol grammars know nothing of HTTP and hold no engine state"
    );
}
