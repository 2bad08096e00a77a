-- Schema version 7 for SQLite: license alert rules (issue 16). Each rule watches one condition
-- (`kind`, with its parameters in the other columns) and is delivered to `url` in `format`.
-- `alert_firings` holds the subjects a periodic rule (subscription ending, processing lag) is
-- firing for, so it fires once per transition: a row is added when the condition starts and
-- removed when it ends (which re-arms the rule).

CREATE TABLE alert_rules (
    tenant_key INTEGER NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    rule_id BLOB NOT NULL,
    name TEXT NOT NULL,
    -- licenseErrorEntered, licenseErrorLeft, seats, subscriptionEnding, processingLag
    kind TEXT NOT NULL,
    -- Comma-separated Graph error kinds (CountViolation, ...); empty: any.
    error_kinds TEXT NOT NULL,
    group_id BLOB,
    sku_id BLOB,
    -- percentUsed, noneAvailable or overAllocated for seats rules.
    threshold TEXT,
    -- The percentage, days or seconds of the condition.
    amount INTEGER,
    url TEXT NOT NULL,
    -- json, slack or teams
    format TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, rule_id)
) WITHOUT ROWID;

CREATE TABLE alert_firings (
    tenant_key INTEGER NOT NULL,
    rule_id BLOB NOT NULL,
    subject TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, rule_id, subject),
    FOREIGN KEY (tenant_key, rule_id) REFERENCES alert_rules (tenant_key, rule_id) ON DELETE CASCADE
) WITHOUT ROWID;
