//! The database a benchmark runs on: a SQLite file in the benchmark's directory, or with
//! `LICENSD_BENCH_DATABASE=postgres` a fresh schema on `LICENSD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped by [`BenchDatabase::drop_schema`].

// Included by several benchmarks (`#[path]`), each of which uses part of it.
#![allow(dead_code)]

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The database URL to open, and the PostgreSQL base URL and schema to drop at the end.
pub struct BenchDatabase {
    pub url: String,
    pub name: &'static str,
    postgres_schema: Option<(String, String)>,
}

impl BenchDatabase {
    pub fn from_environment(directory: &std::path::Path, schema_prefix: &str) -> BenchResult<BenchDatabase> {
        match std::env::var("LICENSD_BENCH_DATABASE").as_deref() {
            Ok("postgres") => {
                let base = std::env::var("LICENSD_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
                let schema = format!("{schema_prefix}_{}", std::process::id());
                let mut client = postgres::Client::connect(&base, postgres::NoTls)?;
                client.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))?;
                let separator = if base.contains('?') { '&' } else { '?' };
                Ok(BenchDatabase {
                    url: format!("{base}{separator}options=-csearch_path%3D{schema}"),
                    name: "PostgreSQL",
                    postgres_schema: Some((base, schema)),
                })
            }
            _ => Ok(BenchDatabase {
                url: format!("sqlite://{}", directory.join("bench.db").display()),
                name: "SQLite",
                postgres_schema: None,
            }),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres_schema.is_some()
    }

    /// Drops the PostgreSQL schema (nothing to do on SQLite: the directory goes away).
    pub fn drop_schema(&self) -> BenchResult<()> {
        if let Some((base, schema)) = &self.postgres_schema {
            let mut client = postgres::Client::connect(base, postgres::NoTls)?;
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        }
        Ok(())
    }
}
