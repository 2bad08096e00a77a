-- Schema version 3 for PostgreSQL: directory attributes (issue 9, SCIM provisioning).
--
-- What a provisioning client keeps with a user or group beyond what licensing models (SCIM's
-- externalId, name, enterprise extension...), as the opaque text the engine was given
-- (`Command::SetDirectoryAttributes`). Keyed by the object's GUID: a user or a group. Rows go
-- with their object (the writer deletes them with the user or group).

CREATE TABLE directory_attributes (
    tenant_key BIGINT NOT NULL REFERENCES tenants (tenant_key) ON DELETE CASCADE,
    object_id UUID NOT NULL,
    attributes TEXT NOT NULL,
    PRIMARY KEY (tenant_key, object_id)
);
