-- Schema version 12 for PostgreSQL (issue 19, spend): reclamation policies and the notices they gave.
-- A policy acts on the seats of users who are inactive for `inactive_days`, disabled or have left
-- (`reason`), for one product (`sku_id`) or all; a seat first gets a notice (`act_at` = when the
-- policy acts on it, `notice_days` after the notice) unless the notice period is 0. A notice is
-- `pending` until then, `review` when the seat is held through a group that cannot be edited by
-- hand (dynamic or nested). What an action removed is in its audit record ("Reclaim license").

CREATE TABLE reclamation_policies (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    policy_id UUID NOT NULL,
    display_name TEXT NOT NULL,
    -- inactive, disabled or left
    reason TEXT NOT NULL,
    inactive_days BIGINT NOT NULL,
    -- NULL: every product.
    sku_id UUID,
    notice_days BIGINT NOT NULL,
    -- Whether the background processor runs it.
    enabled BOOLEAN NOT NULL,
    -- Space-separated object ids of exempt users and groups.
    excluded_users TEXT NOT NULL,
    excluded_groups TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_run_at BIGINT,
    PRIMARY KEY (tenant_key, policy_id)
);

CREATE TABLE reclamation_notices (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    policy_id UUID NOT NULL,
    user_id UUID NOT NULL,
    sku_id UUID NOT NULL,
    -- Milliseconds since the Unix epoch.
    noticed_at BIGINT NOT NULL,
    act_at BIGINT NOT NULL,
    -- pending or review
    state TEXT NOT NULL,
    PRIMARY KEY (tenant_key, policy_id, user_id, sku_id)
);
