-- Schema version 5 for SQLite: the instances that process queues (issue 14, tenants spread
-- across instances). Each running processor renews its row; the live rows are the instances
-- among which the tenants' processing is shared out (rendezvous hashing in the runtime), so N
-- instances each process about 1/N of the tenants instead of the first one taking them all.

CREATE TABLE processing_instances (
    instance_id TEXT PRIMARY KEY,
    -- Milliseconds since the Unix epoch, by the database's clock.
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
