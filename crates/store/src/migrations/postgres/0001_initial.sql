-- Schema version 1 for PostgreSQL: tenants, their catalog, directory, license assignment states,
-- work queue, change log and processing leases.
--
-- Every row belongs to a tenant through `tenant_key`, the compact integer key of `tenants`.
-- Products, groups and users are known outside by their GUIDs (native `uuid` values here) and inside
-- by per-tenant integer keys handed out in creation order and never reused, so that the order
-- of the keys is the engine's order, rows of the high-volume tables stay small, and a batch of
-- users processed in queue order writes neighbouring rows.
--
-- The small tables reference their parents with foreign keys. The high-volume tables (users,
-- their memberships, direct licenses, license assignment states, queue entries and the change
-- log) carry none: checking a key per row made bulk writes several times slower. The store
-- keeps them consistent itself: it resolves every GUID of a write to a stored key (refusing the
-- write otherwise) and deletes a user's or a group's rows together with it.

CREATE TABLE tenants (
    tenant_key BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id UUID NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    -- An ISO 3166-1 alpha-2 code, or NULL.
    default_usage_location TEXT,
    self_healing BOOLEAN NOT NULL,
    -- The engine's logical clock.
    clock BIGINT NOT NULL,
    -- Bumped by every write; the version of the latest `tenant_changes` row.
    version BIGINT NOT NULL,
    -- The next keys to hand out.
    next_sku_key BIGINT NOT NULL DEFAULT 1,
    next_group_key BIGINT NOT NULL DEFAULT 1,
    next_user_key BIGINT NOT NULL DEFAULT 1,
    next_queue_position BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE service_plans (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    plan_id UUID NOT NULL,
    -- Stable for the plan's lifetime: bit `plan_number` of a state's plan bitset is this plan.
    plan_number BIGINT NOT NULL,
    -- Registration order.
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- Space-separated GUIDs.
    mutually_exclusive_with TEXT NOT NULL,
    -- Space-separated GUIDs.
    requires_any_of TEXT NOT NULL,
    -- Space-separated ISO 3166-1 alpha-2 codes.
    unavailable_in TEXT NOT NULL,
    needs_unique_proxy_address BOOLEAN NOT NULL,
    PRIMARY KEY (tenant_key, plan_id),
    UNIQUE (tenant_key, plan_number)
);

CREATE TABLE skus (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    sku_key BIGINT NOT NULL,
    sku_id UUID NOT NULL,
    sku_part_number TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- `User` or `Company`.
    applies_to TEXT NOT NULL,
    prepaid_units BIGINT NOT NULL,
    -- `Enabled`, `Warning`, `Suspended`, `LockedOut` or `Deleted`.
    capability_status TEXT NOT NULL,
    PRIMARY KEY (tenant_key, sku_key),
    UNIQUE (tenant_key, sku_id)
);

CREATE TABLE sku_plans (
    tenant_key BIGINT NOT NULL,
    sku_key BIGINT NOT NULL,
    position BIGINT NOT NULL,
    plan_id UUID NOT NULL,
    PRIMARY KEY (tenant_key, sku_key, position),
    FOREIGN KEY (tenant_key, sku_key) REFERENCES skus (tenant_key, sku_key) ON DELETE CASCADE,
    FOREIGN KEY (tenant_key, plan_id) REFERENCES service_plans (tenant_key, plan_id)
);

CREATE INDEX sku_plans_by_plan ON sku_plans (tenant_key, plan_id);

CREATE TABLE groups (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    group_key BIGINT NOT NULL,
    group_id UUID NOT NULL,
    display_name TEXT NOT NULL,
    -- The logical time at which the group last went from no products to some.
    licensed_since BIGINT NOT NULL,
    PRIMARY KEY (tenant_key, group_key),
    UNIQUE (tenant_key, group_id)
);

CREATE TABLE group_licenses (
    tenant_key BIGINT NOT NULL,
    group_key BIGINT NOT NULL,
    position BIGINT NOT NULL,
    sku_key BIGINT NOT NULL,
    -- Space-separated GUIDs.
    disabled_plans TEXT NOT NULL,
    PRIMARY KEY (tenant_key, group_key, position),
    FOREIGN KEY (tenant_key, group_key) REFERENCES groups (tenant_key, group_key) ON DELETE CASCADE,
    FOREIGN KEY (tenant_key, sku_key) REFERENCES skus (tenant_key, sku_key)
);

CREATE INDEX group_licenses_by_sku ON group_licenses (tenant_key, sku_key);

CREATE TABLE users (
    tenant_key BIGINT NOT NULL,
    user_key BIGINT NOT NULL,
    user_id UUID NOT NULL,
    user_principal_name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    usage_location TEXT,
    -- Space-separated proxy addresses (an address never contains white space).
    proxy_addresses TEXT NOT NULL,
    account_enabled BOOLEAN NOT NULL,
    PRIMARY KEY (tenant_key, user_key),
    UNIQUE (tenant_key, user_id)
);

CREATE TABLE direct_licenses (
    tenant_key BIGINT NOT NULL,
    user_key BIGINT NOT NULL,
    position BIGINT NOT NULL,
    sku_key BIGINT NOT NULL,
    -- Space-separated GUIDs.
    disabled_plans TEXT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (tenant_key, user_key, position)
);

CREATE INDEX direct_licenses_by_sku ON direct_licenses (tenant_key, sku_key);

CREATE TABLE memberships (
    tenant_key BIGINT NOT NULL,
    user_key BIGINT NOT NULL,
    position BIGINT NOT NULL,
    group_key BIGINT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (tenant_key, user_key, position),
    UNIQUE (tenant_key, group_key, user_key)
);

CREATE TABLE license_states (
    tenant_key BIGINT NOT NULL,
    user_key BIGINT NOT NULL,
    sku_key BIGINT NOT NULL,
    -- The assigning group's key, or 0 for a direct assignment.
    source_key BIGINT NOT NULL,
    -- `Active`, `ActiveWithError`, `Disabled` or `Error`.
    status TEXT NOT NULL,
    -- Graph's error name (`CountViolation`, ...) when the state has an error, else NULL.
    error_kind TEXT,
    -- The error's cause in the store's tagged binary encoding, else NULL.
    cause BYTEA,
    -- Bitsets over `service_plans.plan_number`; `granted_plans` is NULL when nothing is granted.
    disabled_plans BYTEA NOT NULL,
    granted_plans BYTEA,
    since BIGINT NOT NULL,
    -- Milliseconds since the Unix epoch.
    last_updated BIGINT NOT NULL,
    PRIMARY KEY (tenant_key, user_key, sku_key, source_key)
);

-- Users in error per group (or direct), and per product and error; only rows in error are indexed.
CREATE INDEX license_states_errors_by_source
    ON license_states (tenant_key, source_key, user_key) WHERE error_kind IS NOT NULL;
CREATE INDEX license_states_errors_by_sku
    ON license_states (tenant_key, sku_key, error_kind, user_key) WHERE error_kind IS NOT NULL;

CREATE TABLE work_queue (
    tenant_key BIGINT NOT NULL,
    -- First in, first out: ascending positions.
    position BIGINT NOT NULL,
    user_key BIGINT NOT NULL,
    PRIMARY KEY (tenant_key, position),
    UNIQUE (tenant_key, user_key)
);

CREATE TABLE tenant_changes (
    tenant_key BIGINT NOT NULL,
    version BIGINT NOT NULL,
    -- Milliseconds since the Unix epoch, by the database's clock.
    recorded_at BIGINT NOT NULL,
    settings BOOLEAN NOT NULL,
    service_plans BOOLEAN NOT NULL,
    queue BOOLEAN NOT NULL,
    -- Set when the write touched too many entities to list: reload the whole tenant.
    everything BOOLEAN NOT NULL,
    -- The changed entities' GUIDs as concatenated 16-byte values.
    skus BYTEA NOT NULL,
    users BYTEA NOT NULL,
    groups BYTEA NOT NULL,
    deleted_users BYTEA NOT NULL,
    deleted_groups BYTEA NOT NULL,
    PRIMARY KEY (tenant_key, version)
);

CREATE TABLE processing_leases (
    tenant_key BIGINT PRIMARY KEY REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    -- Milliseconds since the Unix epoch, by the database's clock.
    expires_at BIGINT NOT NULL
);
