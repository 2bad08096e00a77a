-- Schema version 7 for SQLite (issue 19, spend): prices per product, users' activity as the
-- identity provider reports it, the seat history of each product, reclamation policies and the
-- notices they gave. None of it is part of the engine's image: the engine is handed prices and
-- activity for its cost and idle-seat reports.

CREATE TABLE sku_prices (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    sku_id BLOB NOT NULL,
    -- Per seat and month, in the currency's minor unit (cents).
    price_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (tenant_key, sku_id)
) WITHOUT ROWID;

CREATE TABLE user_activity (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    user_id BLOB NOT NULL,
    -- Milliseconds since the Unix epoch; NULL when not known.
    last_sign_in INTEGER,
    leave_date INTEGER,
    PRIMARY KEY (tenant_key, user_id)
) WITHOUT ROWID;

CREATE INDEX user_activity_last_sign_in ON user_activity (tenant_key, last_sign_in);
CREATE INDEX user_activity_leave_date ON user_activity (tenant_key, leave_date);

CREATE TABLE seat_history (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    sku_id BLOB NOT NULL,
    -- Milliseconds since the Unix epoch.
    taken_at INTEGER NOT NULL,
    purchased INTEGER NOT NULL,
    consumed INTEGER NOT NULL,
    waiting INTEGER NOT NULL,
    in_error INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, sku_id, taken_at)
) WITHOUT ROWID;
