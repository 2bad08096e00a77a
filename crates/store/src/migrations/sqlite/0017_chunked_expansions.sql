-- Schema version 17 for SQLite: change events expanded in chunks (issue 16). The delivery worker
-- first fixes a range of change events in one small transaction (the events are marked
-- `expanded` and one row here per tenant names the range), then writes the range's deliveries
-- in chunks of subscriptions, each chunk its own short transaction that moves the range's cursor
-- (`done_created_at`, `done_subscription`: the last subscription expanded, in the order
-- created_at, subscription_id) and deletes the row after the last chunk. A worker killed between
-- chunks leaves the row: the next one goes on from the cursor, so no subscription gets a
-- range twice or never. Expanded events are kept while a range here or a pending delivery
-- reaches them.

CREATE TABLE change_expansions (
    expansion_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    first_event INTEGER NOT NULL,
    last_event INTEGER NOT NULL,
    done_created_at INTEGER,
    done_subscription BLOB
);
