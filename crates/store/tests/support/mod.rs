//! The database each store test runs on, shared by the store's test binaries: SQLite on a
//! temporary file, or PostgreSQL at `LICENSD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own, dropped when the test ends.
//! When PostgreSQL is unreachable its tests print why and pass, unless
//! `LICENSD_REQUIRE_POSTGRES` is set (as in CI).

// Each test binary uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use licensd_store::Store;

/// A database for one test; a PostgreSQL schema is dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    _directory: Option<tempfile::TempDir>,
    postgres_schema: Option<(String, String)>,
}

static SCHEMA_COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("licensd.db");
        TestDatabase {
            url: format!("sqlite://{}", path.display()),
            _directory: Some(directory),
            postgres_schema: None,
        }
    }

    /// A fresh schema named after `test`; `None` (after saying why) when PostgreSQL is
    /// unreachable and not required.
    pub fn postgres(test: &str) -> Option<TestDatabase> {
        let base = std::env::var("LICENSD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let mut client = match ::postgres::Client::connect(&base, ::postgres::NoTls) {
            Ok(client) => client,
            Err(error) => {
                if std::env::var("LICENSD_REQUIRE_POSTGRES").is_ok_and(|value| !value.is_empty()) {
                    panic!("PostgreSQL is required but {base} is unreachable: {error}");
                }
                println!("skipping PostgreSQL tests: cannot connect to {base}: {error}");
                return None;
            }
        };
        let schema = format!(
            "licensd_test_{test}_{}_{}",
            std::process::id(),
            SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .expect("create the test schema");
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(TestDatabase {
            url: format!("{base}{separator}options=-csearch_path%3D{schema}"),
            _directory: None,
            postgres_schema: Some((base, schema)),
        })
    }

    pub fn open(&self) -> Store {
        Store::open(&self.url).expect("open the store")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.postgres_schema {
            if let Ok(mut client) = ::postgres::Client::connect(base, ::postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// Runs each test case on SQLite and on PostgreSQL.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $case() {
                    super::$case(super::TestDatabase::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $case() {
                    if let Some(database) = super::TestDatabase::postgres(stringify!($case)) {
                        super::$case(database);
                    }
                }
            )*
        }
    };
}
