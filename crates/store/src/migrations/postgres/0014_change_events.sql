-- Schema version 12 for PostgreSQL: change events (issue 16, fan-out at delivery time). A write
-- that changed users or groups some subscription of its tenant may watch records what changed
-- once, in its own transaction: one row of encoded changes, however many subscriptions match.
-- The delivery workers of every instance expand each row into the outbox (one delivery per
-- matching subscription) and delete it, in one transaction (rows claimed with
-- `FOR UPDATE SKIP LOCKED`): nothing is lost and nothing expanded twice.

CREATE TABLE change_events (
    event_id BIGSERIAL PRIMARY KEY,
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    -- When the change was made (milliseconds since the Unix epoch): subscriptions are matched
    -- as they stood then (created before it, not expired).
    created_at BIGINT NOT NULL,
    -- The changed objects, encoded by the runtime (opaque to the store).
    changes BYTEA NOT NULL
);
