-- Schema version 1 for SQLite: tenants, their catalog, directory, license assignment states,
-- work queue, change log and processing leases.
--
-- Every row belongs to a tenant through `tenant_key`, the compact integer key of `tenants`
-- (GUIDs are 16-byte blobs; `tenant_id` is the tenant's GUID). Ordered collections keep the
-- engine's order in a `position` column. Intent tables reference their parents with foreign keys
-- that cascade on delete; the two high-volume tables, `license_states` and `tenant_changes`, do
-- not, and the store deletes their rows itself.

CREATE TABLE tenants (
    tenant_key INTEGER PRIMARY KEY,
    tenant_id BLOB NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    -- An ISO 3166-1 alpha-2 code, or NULL.
    default_usage_location TEXT,
    self_healing INTEGER NOT NULL,
    -- The engine's logical clock.
    clock INTEGER NOT NULL,
    -- Bumped by every write; the version of the latest `tenant_changes` row.
    version INTEGER NOT NULL
);

CREATE TABLE service_plans (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    plan_id BLOB NOT NULL,
    -- Stable for the plan's lifetime: bit `plan_number` of a state's plan bitset is this plan.
    plan_number INTEGER NOT NULL,
    -- Registration order.
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- Space-separated GUIDs.
    mutually_exclusive_with TEXT NOT NULL,
    -- Space-separated GUIDs.
    requires_any_of TEXT NOT NULL,
    -- Space-separated ISO 3166-1 alpha-2 codes.
    unavailable_in TEXT NOT NULL,
    needs_unique_proxy_address INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, plan_id),
    UNIQUE (tenant_key, plan_number)
) WITHOUT ROWID;

CREATE TABLE skus (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    sku_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    sku_part_number TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- `User` or `Company`.
    applies_to TEXT NOT NULL,
    prepaid_units INTEGER NOT NULL,
    -- `Enabled`, `Warning`, `Suspended`, `LockedOut` or `Deleted`.
    capability_status TEXT NOT NULL,
    PRIMARY KEY (tenant_key, sku_id)
) WITHOUT ROWID;

CREATE TABLE sku_plans (
    tenant_key INTEGER NOT NULL,
    sku_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    plan_id BLOB NOT NULL,
    PRIMARY KEY (tenant_key, sku_id, position),
    FOREIGN KEY (tenant_key, sku_id) REFERENCES skus (tenant_key, sku_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_key, plan_id) REFERENCES service_plans (tenant_key, plan_id)
) WITHOUT ROWID;

CREATE INDEX sku_plans_by_plan ON sku_plans (tenant_key, plan_id);

CREATE TABLE groups (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    group_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    display_name TEXT NOT NULL,
    -- The logical time at which the group last went from no products to some.
    licensed_since INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, group_id)
) WITHOUT ROWID;

CREATE INDEX groups_by_position ON groups (tenant_key, position);

CREATE TABLE group_licenses (
    tenant_key INTEGER NOT NULL,
    group_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    sku_id BLOB NOT NULL,
    -- Space-separated GUIDs.
    disabled_plans TEXT NOT NULL,
    PRIMARY KEY (tenant_key, group_id, position),
    FOREIGN KEY (tenant_key, group_id) REFERENCES groups (tenant_key, group_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_key, sku_id) REFERENCES skus (tenant_key, sku_id)
) WITHOUT ROWID;

CREATE INDEX group_licenses_by_sku ON group_licenses (tenant_key, sku_id);

CREATE TABLE users (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    user_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    user_principal_name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    usage_location TEXT,
    -- Space-separated proxy addresses (an address never contains white space).
    proxy_addresses TEXT NOT NULL,
    account_enabled INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, user_id)
) WITHOUT ROWID;

CREATE INDEX users_by_position ON users (tenant_key, position);

CREATE TABLE direct_licenses (
    tenant_key INTEGER NOT NULL,
    user_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    sku_id BLOB NOT NULL,
    -- Space-separated GUIDs.
    disabled_plans TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, user_id, position),
    FOREIGN KEY (tenant_key, user_id) REFERENCES users (tenant_key, user_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_key, sku_id) REFERENCES skus (tenant_key, sku_id)
) WITHOUT ROWID;

CREATE INDEX direct_licenses_by_sku ON direct_licenses (tenant_key, sku_id);

CREATE TABLE memberships (
    tenant_key INTEGER NOT NULL,
    user_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    group_id BLOB NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, user_id, position),
    UNIQUE (tenant_key, group_id, user_id),
    FOREIGN KEY (tenant_key, user_id) REFERENCES users (tenant_key, user_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_key, group_id) REFERENCES groups (tenant_key, group_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE license_states (
    tenant_key INTEGER NOT NULL,
    user_id BLOB NOT NULL,
    sku_id BLOB NOT NULL,
    -- The assigning group's id, or 16 zero bytes for a direct assignment.
    source BLOB NOT NULL,
    -- `Active`, `ActiveWithError`, `Disabled` or `Error`.
    status TEXT NOT NULL,
    -- Graph's error name (`CountViolation`, ...) when the state has an error, else NULL.
    error_kind TEXT,
    -- The error's cause in the store's tagged binary encoding, else NULL.
    cause BLOB,
    -- Bitsets over `service_plans.plan_number`; `granted_plans` is NULL when nothing is granted.
    disabled_plans BLOB NOT NULL,
    granted_plans BLOB,
    since INTEGER NOT NULL,
    -- Milliseconds since the Unix epoch.
    last_updated INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, user_id, sku_id, source)
) WITHOUT ROWID;

-- Users in error per group (or direct), and per product and error; only rows in error are indexed.
CREATE INDEX license_states_errors_by_source
    ON license_states (tenant_key, source, user_id) WHERE error_kind IS NOT NULL;
CREATE INDEX license_states_errors_by_sku
    ON license_states (tenant_key, sku_id, error_kind, user_id) WHERE error_kind IS NOT NULL;

CREATE TABLE work_queue (
    tenant_key INTEGER NOT NULL,
    -- First in, first out: ascending positions.
    position INTEGER NOT NULL,
    user_id BLOB NOT NULL,
    PRIMARY KEY (tenant_key, position),
    UNIQUE (tenant_key, user_id),
    FOREIGN KEY (tenant_key, user_id) REFERENCES users (tenant_key, user_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE tenant_changes (
    tenant_key INTEGER NOT NULL,
    version INTEGER NOT NULL,
    -- Milliseconds since the Unix epoch, by the database's clock.
    recorded_at INTEGER NOT NULL,
    settings INTEGER NOT NULL,
    service_plans INTEGER NOT NULL,
    queue INTEGER NOT NULL,
    -- Set when the write touched too many entities to list: reload the whole tenant.
    everything INTEGER NOT NULL,
    -- The changed entities' GUIDs as concatenated 16-byte values.
    skus BLOB NOT NULL,
    users BLOB NOT NULL,
    groups BLOB NOT NULL,
    deleted_users BLOB NOT NULL,
    deleted_groups BLOB NOT NULL,
    PRIMARY KEY (tenant_key, version)
) WITHOUT ROWID;

CREATE TABLE processing_leases (
    tenant_key INTEGER PRIMARY KEY REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    -- Milliseconds since the Unix epoch, by the database's clock.
    expires_at INTEGER NOT NULL
);
