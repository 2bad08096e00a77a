//! Versioned, forward-only schema migrations, one list and one runner for both backends: each
//! migration has a SQL file per backend (`src/migrations/<backend>/`), `open` applies the missing
//! ones, each in its own transaction recorded in `schema_migrations`, and refuses a database
//! whose schema is newer than this binary knows. Instances opening one database together take
//! turns: SQLite's write lock, PostgreSQL's migration advisory lock ([`Migrate::begin_step`]).

use crate::error::StoreError;
use crate::sql::{Param, ReadRow, Session, Transaction};

/// The schema version this binary writes: the version of the last migration.
pub const SCHEMA_VERSION: u64 = 17;

/// One step of the schema, in each backend's SQL.
pub(crate) struct Migration {
    pub(crate) version: u64,
    pub(crate) name: &'static str,
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

/// The schema's migrations, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sqlite: include_str!("migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "access tokens and audit log",
        sqlite: include_str!("migrations/sqlite/0002_security.sql"),
        postgres: include_str!("migrations/postgres/0002_security.sql"),
    },
    Migration {
        version: 3,
        name: "directory attributes",
        sqlite: include_str!("migrations/sqlite/0003_directory_attributes.sql"),
        postgres: include_str!("migrations/postgres/0003_directory_attributes.sql"),
    },
    Migration {
        version: 4,
        name: "subscription lifecycles",
        sqlite: include_str!("migrations/sqlite/0004_subscription_lifecycles.sql"),
        postgres: include_str!("migrations/postgres/0004_subscription_lifecycles.sql"),
    },
    Migration {
        version: 5,
        name: "processing instances",
        sqlite: include_str!("migrations/sqlite/0005_processing_instances.sql"),
        postgres: include_str!("migrations/postgres/0005_processing_instances.sql"),
    },
    Migration {
        version: 6,
        name: "nested groups",
        sqlite: include_str!("migrations/sqlite/0006_nested_groups.sql"),
        postgres: include_str!("migrations/postgres/0006_nested_groups.sql"),
    },
    Migration {
        version: 7,
        name: "change notifications",
        sqlite: include_str!("migrations/sqlite/0007_notifications.sql"),
        postgres: include_str!("migrations/postgres/0007_notifications.sql"),
    },
    Migration {
        version: 8,
        name: "alert rules",
        sqlite: include_str!("migrations/sqlite/0008_alert_rules.sql"),
        postgres: include_str!("migrations/postgres/0008_alert_rules.sql"),
    },
    Migration {
        version: 9,
        name: "user attributes",
        sqlite: include_str!("migrations/sqlite/0009_user_attributes.sql"),
        postgres: include_str!("migrations/postgres/0009_user_attributes.sql"),
    },
    Migration {
        version: 10,
        name: "dynamic groups",
        sqlite: include_str!("migrations/sqlite/0010_dynamic_groups.sql"),
        postgres: include_str!("migrations/postgres/0010_dynamic_groups.sql"),
    },
    Migration {
        version: 11,
        name: "spend: prices, activity, seat history",
        sqlite: include_str!("migrations/sqlite/0011_spend.sql"),
        postgres: include_str!("migrations/postgres/0011_spend.sql"),
    },
    Migration {
        version: 12,
        name: "engine snapshots",
        sqlite: include_str!("migrations/sqlite/0012_engine_snapshots.sql"),
        postgres: include_str!("migrations/postgres/0012_engine_snapshots.sql"),
    },
    Migration {
        version: 13,
        name: "reclamation policies and notices",
        sqlite: include_str!("migrations/sqlite/0013_reclamation.sql"),
        postgres: include_str!("migrations/postgres/0013_reclamation.sql"),
    },
    Migration {
        version: 14,
        name: "change events",
        sqlite: include_str!("migrations/sqlite/0014_change_events.sql"),
        postgres: include_str!("migrations/postgres/0014_change_events.sql"),
    },
    Migration {
        version: 15,
        name: "alert digest windows",
        sqlite: include_str!("migrations/sqlite/0015_alert_digests.sql"),
        postgres: include_str!("migrations/postgres/0015_alert_digests.sql"),
    },
    Migration {
        version: 16,
        name: "delivery event ranges",
        sqlite: include_str!("migrations/sqlite/0016_delivery_event_ranges.sql"),
        postgres: include_str!("migrations/postgres/0016_delivery_event_ranges.sql"),
    },
    Migration {
        version: 17,
        name: "chunked change-event expansions",
        sqlite: include_str!("migrations/sqlite/0017_chunked_expansions.sql"),
        postgres: include_str!("migrations/postgres/0017_chunked_expansions.sql"),
    },
];

/// What the runner needs of a backend.
pub(crate) trait Migrate: Session {
    type Step<'a>: Transaction
    where
        Self: 'a;

    /// The table recording applied migrations, in the backend's dialect.
    const CREATE_SCHEMA_MIGRATIONS: &'static str;

    /// The backend's SQL of `migration`.
    fn script(migration: &Migration) -> &'static str;

    /// Starts the transaction of one migration step, holding the lock that makes other
    /// instances migrating the same database wait until it ends.
    fn begin_step(&mut self) -> Result<Self::Step<'_>, StoreError>;
}

/// The schema version the database is at.
pub(crate) fn applied_version(session: &mut impl Session) -> Result<u64, StoreError> {
    let version = session.query_optional(
        "reading the schema version",
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        &[],
        |row| row.integer(0),
    )?;
    crate::load::logical_time(version.unwrap_or(0), "the schema version")
}

/// Applies the missing migrations one by one, each step re-reading the version under the lock
/// (another instance may have applied it meanwhile).
pub(crate) fn migrate<M: Migrate>(database: &mut M) -> Result<(), StoreError> {
    loop {
        let mut step = database.begin_step()?;
        step.run_script("creating schema_migrations", M::CREATE_SCHEMA_MIGRATIONS)?;
        let applied = applied_version(&mut step)?;
        check_not_too_new(applied)?;
        let Some(migration) = MIGRATIONS.iter().find(|migration| migration.version > applied) else {
            return step.commit("committing the schema check");
        };
        let action = format!("applying migration {} ({})", migration.version, migration.name);
        step.run_script(&action, M::script(migration))?;
        step.execute(
            &action,
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[
                Param::Integer(migration.version as i64),
                Param::Text(migration.name),
            ],
        )?;
        step.commit(&action)?;
    }
}

/// Refuses a database migrated by a newer binary.
pub(crate) fn check_not_too_new(found: u64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_by_one_up_to_the_schema_version_with_sql_for_both_backends() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as u64 + 1, "{}", migration.name);
            assert!(!migration.sqlite.trim().is_empty(), "{}", migration.name);
            assert!(!migration.postgres.trim().is_empty(), "{}", migration.name);
        }
        assert_eq!(
            MIGRATIONS.last().map(|migration| migration.version),
            Some(SCHEMA_VERSION)
        );
    }
}
