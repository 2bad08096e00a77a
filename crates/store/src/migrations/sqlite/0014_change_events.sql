-- Schema version 12 for SQLite: change events (issue 16, fan-out at delivery time). A write
-- that changed users or groups some subscription of its tenant may watch records what changed
-- once, in its own transaction: one row of encoded changes, however many subscriptions match.
-- The delivery worker expands each row into the outbox (one delivery per matching
-- subscription) and deletes it, in one transaction: nothing is lost and nothing expanded twice.

CREATE TABLE change_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    -- When the change was made (milliseconds since the Unix epoch): subscriptions are matched
    -- as they stood then (created before it, not expired).
    created_at INTEGER NOT NULL,
    -- The changed objects, encoded by the runtime (opaque to the store).
    changes BLOB NOT NULL
);
