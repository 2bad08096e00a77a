//! What the store's shared routines (the order of a write, migrations, leases, the small reads)
//! need of a database connection, so they are written once for both backends: statements in one
//! dialect, parameters of the few column types the schema uses, and rows read by column index.
//!
//! Shared statements are written with PostgreSQL's `$1, $2, …` placeholders (and no other `$`)
//! and `{now}` for the database's clock in milliseconds since the Unix epoch; each backend's
//! [`Session`] turns them into its own dialect ([`Dialect::spell`]). Statements that move many
//! rows (upserts of states, users, groups, …) differ between the backends in more than their
//! spelling — SQLite binds rows one by one into multi-row statements, PostgreSQL sends arrays or
//! streams `COPY` — so they are methods of [`crate::write::WriteTransaction`] instead.

use std::borrow::Cow;

use licensd_engine::Uuid;

use crate::error::StoreError;

/// A statement parameter, typed as the schema's columns are. Each backend binds them natively
/// (a GUID is a 16-byte blob on SQLite and a `uuid` on PostgreSQL; a flag an integer or a
/// `boolean`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    Integer(i64),
    OptionalInteger(Option<i64>),
    Text(&'a str),
    OptionalText(Option<&'a str>),
    Flag(bool),
    Id(Uuid),
    OptionalId(Option<Uuid>),
    Bytes(&'a [u8]),
}

/// One row of a result, read by column index; every read checks the column's type. Text and
/// bytes are borrowed from the row.
pub(crate) trait ReadRow {
    fn integer(&self, index: usize) -> Result<i64, StoreError>;
    fn optional_integer(&self, index: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, index: usize) -> Result<&str, StoreError>;
    fn optional_text(&self, index: usize) -> Result<Option<&str>, StoreError>;
    fn flag(&self, index: usize) -> Result<bool, StoreError>;
    fn id(&self, index: usize) -> Result<Uuid, StoreError>;
    fn optional_id(&self, index: usize) -> Result<Option<Uuid>, StoreError>;
    fn bytes(&self, index: usize) -> Result<&[u8], StoreError>;
    fn optional_bytes(&self, index: usize) -> Result<Option<&[u8]>, StoreError>;
}

/// A connection or transaction that runs shared statements (see the module documentation for
/// their dialect). `action` says what the statement does, for the error.
pub(crate) trait Session {
    /// A row of a result (the backend's own type, so reading columns costs no dynamic call
    /// when a tenant's millions of rows are loaded).
    type Row<'r>: ReadRow;

    /// Runs a statement; returns the number of rows it changed.
    fn execute(&mut self, action: &str, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError>;

    /// Runs a query and hands each row to `on_row`, in the order the query returns them.
    fn for_each_row(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        on_row: impl FnMut(&Self::Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Runs a query and reads every row with `read`.
    fn query_all<T>(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        mut read: impl FnMut(&Self::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut values = Vec::new();
        self.for_each_row(action, sql, params, |row| {
            values.push(read(row)?);
            Ok(())
        })?;
        Ok(values)
    }

    /// Runs a query that returns at most one row and reads it with `read`.
    fn query_optional<T>(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        read: impl FnOnce(&Self::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut read = Some(read);
        let mut value = None;
        self.for_each_row(action, sql, params, |row| {
            if let Some(read) = read.take() {
                value = Some(read(row)?);
            }
            Ok(())
        })?;
        Ok(value)
    }
}

/// A transaction of shared statements; dropped without [`Transaction::commit`], it rolls back.
pub(crate) trait Transaction: Session {
    /// Runs several statements separated by semicolons (a migration's script), without
    /// parameters and in the backend's own dialect.
    fn run_script(&mut self, action: &str, sql: &str) -> Result<(), StoreError>;

    fn commit(self, action: &str) -> Result<(), StoreError>;
}

/// A backend's connection: shared statements on their own, or in a transaction.
pub(crate) trait Database: Session {
    type Transaction<'a>: Transaction
    where
        Self: 'a;

    /// Starts a transaction that writes. (SQLite takes the database's write lock at once, so
    /// the transaction does not fail halfway because another connection writes.)
    fn begin(&mut self, action: &str) -> Result<Self::Transaction<'_>, StoreError>;

    /// Starts a read-only transaction whose reads all see one snapshot, however long it takes
    /// and whatever other connections write meanwhile.
    fn begin_snapshot(&mut self, action: &str) -> Result<Self::Transaction<'_>, StoreError>;

    /// The channel other instances listen on for this database's notices (PostgreSQL's
    /// `LISTEN`/`NOTIFY`); `None` where there are none (SQLite serves one instance).
    fn notice_channel(&self) -> Option<String> {
        None
    }
}

/// The SQL dialect of a backend, into which shared statements are spelled.
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The database clock's mark in shared statements.
const NOW: &str = "{now}";

impl Dialect {
    /// The database's clock in milliseconds since the Unix epoch.
    fn now_milliseconds(&self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Dialect::Postgres => "(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        }
    }

    /// A shared statement in this dialect: SQLite numbers its parameters `?1, ?2, …` (a `$1`
    /// would be a named parameter, numbered by first appearance instead), and `{now}` becomes
    /// the backend's clock. Statements without either come back as they are.
    pub(crate) fn spell<'s>(&self, sql: &'s str) -> Cow<'s, str> {
        let placeholders = matches!(self, Dialect::Sqlite) && sql.contains('$');
        if !placeholders && !sql.contains(NOW) {
            return Cow::Borrowed(sql);
        }
        let mut text = sql.replace(NOW, self.now_milliseconds());
        if placeholders {
            text = text.replace('$', "?");
        }
        Cow::Owned(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_statements_take_each_backends_placeholders_and_clock() {
        let sql = "UPDATE leases SET expires_at = {now} + $3 WHERE tenant_key = $1 AND id = $2";
        assert_eq!(
            Dialect::Sqlite.spell(sql),
            "UPDATE leases SET expires_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) \
             + ?3 WHERE tenant_key = ?1 AND id = ?2"
        );
        assert_eq!(
            Dialect::Postgres.spell(sql),
            "UPDATE leases SET expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $3 \
             WHERE tenant_key = $1 AND id = $2"
        );
        assert!(matches!(
            Dialect::Postgres.spell("SELECT 1 FROM t WHERE a = $1"),
            Cow::Borrowed(_)
        ));
    }
}
