-- Schema version 2 for SQLite: access tokens and the audit log (issue 5).
--
-- A token is stored only as the SHA-256 hash of its secret; the secret is shown once, when the
-- token is created. The audit log is append-only: every accepted or refused change and every
-- background run per group, written in the same transaction as the change it records.

CREATE TABLE access_tokens (
    token_id BLOB PRIMARY KEY,
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_by_tenant ON access_tokens (tenant_key, created_at);

CREATE TABLE audit_log (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    audit_id BLOB NOT NULL UNIQUE,
    activity_date_time INTEGER NOT NULL,
    category TEXT NOT NULL,
    activity TEXT NOT NULL,
    operation_type TEXT NOT NULL,
    result TEXT NOT NULL,
    result_reason TEXT NOT NULL,
    actor_id BLOB,
    actor_name TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id BLOB,
    target_name TEXT NOT NULL,
    -- JSON: [{"displayName", "oldValue", "newValue"}].
    modified_properties TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_key, sequence);
CREATE INDEX audit_log_by_time ON audit_log (activity_date_time);
