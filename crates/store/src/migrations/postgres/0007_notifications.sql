-- Schema version 6 for PostgreSQL: change notifications (issue 16). `change_subscriptions`
-- holds Graph's subscriptions (`POST /v1.0/subscriptions`) of a tenant; `outbox` holds
-- deliveries: "POST this body to this URL with these headers for this owner", written in the
-- same transaction as the change that caused them and delivered at least once by the delivery
-- workers of every instance (claimed with `FOR UPDATE SKIP LOCKED` and a lease, retried with
-- exponential backoff, kept for the status pages).

CREATE TABLE change_subscriptions (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    subscription_id UUID NOT NULL,
    resource TEXT NOT NULL,
    -- Graph's comma-separated list: created,updated,deleted.
    change_types TEXT NOT NULL,
    notification_url TEXT NOT NULL,
    lifecycle_notification_url TEXT,
    client_state TEXT,
    -- Milliseconds since the Unix epoch.
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Set when licensd removed the subscription (its endpoint kept failing).
    removed_at BIGINT,
    PRIMARY KEY (tenant_key, subscription_id)
);

CREATE TABLE outbox (
    delivery_id BIGSERIAL PRIMARY KEY,
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    -- Who asked for the delivery: `graph-subscription`, `graph-lifecycle`, `alert`, ...
    owner_kind TEXT NOT NULL,
    owner_id UUID NOT NULL,
    url TEXT NOT NULL,
    -- `name: value` lines.
    headers TEXT NOT NULL,
    body BYTEA NOT NULL,
    -- How many notifications the body carries.
    items BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- `pending`, `delivered` or `abandoned`.
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_attempt_at BIGINT,
    last_status BIGINT,
    last_error TEXT,
    finished_at BIGINT
);

CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_owner ON outbox (tenant_key, owner_id, delivery_id);
