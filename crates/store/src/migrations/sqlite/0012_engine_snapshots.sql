-- Schema version 12 for SQLite (issue 14, start-up): a persisted engine snapshot per tenant —
-- the engine's whole image in one compact binary blob (snapshot.rs), tagged with the tenant
-- version it reflects. A start reads it in one pass and catches up through the change log from
-- its version; without one (or when it is of another format, damaged, or older than the log
-- reaches) the tenant is loaded from its tables as before. It is a cache: deleting the row
-- changes nothing but the time a start takes.

CREATE TABLE engine_snapshots (
    tenant_key INTEGER PRIMARY KEY REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    -- The tenant version (`tenants.version`) the engine reflected when it was taken.
    version INTEGER NOT NULL,
    -- The snapshot format (snapshot.rs `SNAPSHOT_FORMAT`); another format is not read.
    format INTEGER NOT NULL,
    -- Milliseconds since the Unix epoch.
    written_at INTEGER NOT NULL,
    data BLOB NOT NULL
);
