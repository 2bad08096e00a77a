-- Schema version 6 for PostgreSQL: nested groups and transitive licensing (issue 17).
--
-- A group can be a member of a group: one row per edge, keyed by the two groups' GUIDs (the
-- writer deletes a deleted group's edges with it), with the engine's logical time the edge was
-- added (it orders the engine's evaluation like a membership's). The tenant setting chooses
-- whether members of nested groups receive the products of the groups above them.

CREATE TABLE group_nestings (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    group_id UUID NOT NULL,
    member_group_id UUID NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (tenant_key, group_id, member_group_id)
);

ALTER TABLE tenants ADD COLUMN transitive_licensing BOOLEAN NOT NULL DEFAULT false;
