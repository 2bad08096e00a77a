-- Schema version 7 for PostgreSQL (issue 19, spend): prices per product, users' activity as the
-- identity provider reports it, the seat history of each product, reclamation policies and the
-- notices they gave. None of it is part of the engine's image: the engine is handed prices and
-- activity for its cost and idle-seat reports.

CREATE TABLE sku_prices (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    sku_id UUID NOT NULL,
    -- Per seat and month, in the currency's minor unit (cents).
    price_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (tenant_key, sku_id)
);

CREATE TABLE user_activity (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    user_id UUID NOT NULL,
    -- Milliseconds since the Unix epoch; NULL when not known.
    last_sign_in BIGINT,
    leave_date BIGINT,
    PRIMARY KEY (tenant_key, user_id)
);

CREATE INDEX user_activity_last_sign_in ON user_activity (tenant_key, last_sign_in);
CREATE INDEX user_activity_leave_date ON user_activity (tenant_key, leave_date);

CREATE TABLE seat_history (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    sku_id UUID NOT NULL,
    -- Milliseconds since the Unix epoch.
    taken_at BIGINT NOT NULL,
    purchased BIGINT NOT NULL,
    consumed BIGINT NOT NULL,
    waiting BIGINT NOT NULL,
    in_error BIGINT NOT NULL,
    PRIMARY KEY (tenant_key, sku_id, taken_at)
);
