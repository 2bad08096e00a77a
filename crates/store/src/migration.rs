//! Versioned, forward-only schema migrations: each backend lists its migrations in order, `open`
//! applies the missing ones, each in its own transaction recorded in `schema_migrations`, and
//! refuses a database whose schema is newer than this binary knows.

use crate::error::StoreError;

/// The schema version this binary writes: the version of the last migration of each backend.
pub const SCHEMA_VERSION: u64 = 4;

/// One step of a backend's schema.
pub(crate) struct Migration {
    pub(crate) version: u64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
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

    fn check_sequence(migrations: &[Migration]) {
        for (index, migration) in migrations.iter().enumerate() {
            assert_eq!(migration.version, index as u64 + 1, "{}", migration.name);
            assert!(!migration.sql.trim().is_empty());
        }
        assert_eq!(
            migrations.last().map(|migration| migration.version),
            Some(SCHEMA_VERSION)
        );
    }

    #[test]
    fn both_backends_number_their_migrations_one_by_one_up_to_the_schema_version() {
        check_sequence(crate::sqlite::MIGRATIONS);
        check_sequence(crate::postgres::MIGRATIONS);
    }
}
