-- Schema version 12 for SQLite (issue 19, spend): reclamation policies and the notices they gave.
-- A policy acts on the seats of users who are inactive for `inactive_days`, disabled or have left
-- (`reason`), for one product (`sku_id`) or all; a seat first gets a notice (`act_at` = when the
-- policy acts on it, `notice_days` after the notice) unless the notice period is 0. A notice is
-- `pending` until then, `review` when the seat is held through a group that cannot be edited by
-- hand (dynamic or nested). What an action removed is in its audit record ("Reclaim license").

CREATE TABLE reclamation_policies (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    policy_id BLOB NOT NULL,
    display_name TEXT NOT NULL,
    -- inactive, disabled or left
    reason TEXT NOT NULL,
    inactive_days INTEGER NOT NULL,
    -- NULL: every product.
    sku_id BLOB,
    notice_days INTEGER NOT NULL,
    -- Whether the background processor runs it.
    enabled INTEGER NOT NULL,
    -- Space-separated object ids of exempt users and groups.
    excluded_users TEXT NOT NULL,
    excluded_groups TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_run_at INTEGER,
    PRIMARY KEY (tenant_key, policy_id)
) WITHOUT ROWID;

CREATE TABLE reclamation_notices (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    policy_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    sku_id BLOB NOT NULL,
    -- Milliseconds since the Unix epoch.
    noticed_at INTEGER NOT NULL,
    act_at INTEGER NOT NULL,
    -- pending or review
    state TEXT NOT NULL,
    PRIMARY KEY (tenant_key, policy_id, user_id, sku_id)
) WITHOUT ROWID;
