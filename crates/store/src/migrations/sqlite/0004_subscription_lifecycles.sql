-- Schema version 4 for SQLite: the lifecycle of each product's subscription (issue 15,
-- Graph's companySubscription): when it started, when its term ends (the next lifecycle date
-- while it is Enabled) and whether it is a trial. The status itself stays the product's
-- capability status in `skus`, changed through the engine; a missing row means no lifecycle
-- (the subscription never expires).

CREATE TABLE subscription_lifecycles (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    sku_id BLOB NOT NULL,
    -- Milliseconds since the Unix epoch; NULL when not set.
    created_at INTEGER,
    ends_at INTEGER,
    is_trial INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, sku_id)
) WITHOUT ROWID;
