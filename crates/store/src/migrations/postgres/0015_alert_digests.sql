-- Schema version 15 for PostgreSQL: digest windows of license alert rules (issue 16) and the
-- policy of reclamation alert rules (issue 19). An error
-- rule with a window (`digest_window_seconds` > 0) does not send one message per write or
-- processing step: the matches of a window are held in `alert_digests` (written in the
-- transaction of the change that matched), merged (the count and the first samples), and sent
-- as one message when the window closes. A held digest survives a restart: it is in the store
-- until it is sent.

-- A reclamation rule (`reclamationNoticed`, `reclamationActed`) names its reclamation policy.
ALTER TABLE alert_rules ADD COLUMN policy_id UUID;

ALTER TABLE alert_rules ADD COLUMN digest_window_seconds BIGINT NOT NULL DEFAULT 0;

CREATE TABLE alert_digests (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    rule_id UUID NOT NULL,
    -- When the first match of the window was made, and when the window closes (milliseconds
    -- since the Unix epoch).
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    -- Users entered (true) or left (false) an error.
    entered BOOLEAN NOT NULL,
    -- Every match of the window.
    count BIGINT NOT NULL,
    -- The first matches, as a JSON array.
    samples TEXT NOT NULL,
    PRIMARY KEY (tenant_key, rule_id, window_start)
);

CREATE INDEX alert_digests_by_end ON alert_digests (window_end);
