//! `StoreError`: every way the store can fail, each naming what it was doing, so a log line or an
//! API error says which operation on which tenant went wrong.

use licensd_engine::{CommandError, Uuid};

/// Why a store operation failed. Nothing was written when a write fails: each write is one
/// transaction that is rolled back on any error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database address is neither a SQLite path nor a PostgreSQL URL.
    #[error("cannot use database {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// SQLite refused or failed an operation.
    #[error("SQLite failed while {action}: {source}")]
    Sqlite {
        action: String,
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL refused or failed an operation.
    #[error("PostgreSQL failed while {action}: {source}")]
    Postgres {
        action: String,
        #[source]
        source: postgres::Error,
    },
    /// The database was migrated by a newer licensd; this binary must not touch it.
    #[error(
        "the database schema is at version {found}, newer than version {supported} that this licensd \
         supports; run a newer licensd against this database"
    )]
    SchemaTooNew { found: u64, supported: u64 },
    /// No tenant with this id is stored.
    #[error("tenant {tenant_id} does not exist")]
    UnknownTenant { tenant_id: Uuid },
    /// `create_tenant` was asked to create a tenant that is already stored.
    #[error("tenant {tenant_id} already exists")]
    TenantExists { tenant_id: Uuid },
    /// Optimistic concurrency: the write expected the tenant at `expected` but another writer
    /// had already moved it to `found`. Nothing was written.
    #[error(
        "the tenant was changed concurrently: the write expected version {expected} but found \
         version {found}; nothing was written"
    )]
    Conflict { expected: u64, found: u64 },
    /// A write batch contradicts itself or the tenant it is written to.
    #[error("invalid write batch for tenant {tenant_id}: {reason}")]
    InvalidBatch { tenant_id: Uuid, reason: String },
    /// Stored data cannot be decoded into an image (a bug or a hand-edited database).
    #[error("stored data is inconsistent: {what}")]
    Corrupt { what: String },
    /// The stored tenant was read but the engine refused to be rebuilt from it.
    #[error("the stored tenant cannot be rebuilt: {0}")]
    Restore(#[source] licensd_engine::image::RestoreError),
    /// Building a write batch asked the engine for an entity it does not know.
    #[error("the engine does not know {what}: {source}")]
    Engine {
        what: String,
        #[source]
        source: Box<CommandError>,
    },
}

impl StoreError {
    /// A closure that wraps a SQLite error with what was being done, for `map_err`.
    pub(crate) fn sqlite(action: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            action: action.to_string(),
            source,
        }
    }

    /// A closure that wraps a PostgreSQL error with what was being done, for `map_err`.
    pub(crate) fn postgres(action: &str) -> impl FnOnce(postgres::Error) -> StoreError + '_ {
        move |source| StoreError::Postgres {
            action: action.to_string(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
        StoreError::Corrupt { what: what.into() }
    }
}
